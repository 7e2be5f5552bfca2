"""Correct Assignment 1 implementations a good student might write, other than the reference.

Each ``<student_name>__<approach>`` has the student function's signature and gives the
reference's result up to float32 round-off, by another valid route. Every one must get full
marks, visible and hidden checks alike (tests/test_alternatives.py calls the hidden checks
directly; the grading tests paste them into notebooks and grade them through nbgrader). A check
that fails one of these is a bug in the check. Their source runs when pasted alone into the
notebook: it uses only ``torch``, ``nn``, ``np`` and the notebook's own functions.
"""

import numpy as np
import torch

from solutions.hooks import record_activations


def record_activations__hook_returns_a_copy(model, layer_names, x):
    """The hook keeps the output and hands the rest of the network a copy (a hook's return value
    replaces the output), so later in-place operations change the copy, not what was kept."""
    from functools import partial

    kept = {}

    def hook(module, inputs, output, name):
        kept[name] = output.detach()
        return output.clone()

    handles = []
    try:
        for name in layer_names:
            handles.append(model.get_submodule(name).register_forward_hook(partial(hook, name=name)))
        with torch.no_grad():
            model(x)
    finally:
        while handles:
            handles.pop().remove()
    return {name: kept[name] for name in layer_names}


def record_activations__named_modules_and_grad_enabled(model, layer_names, x):
    """Finds the layers through ``dict(model.named_modules())``, runs the forward pass with
    autograd on, and detaches a copy afterwards (no ``torch.no_grad``)."""
    modules = dict(model.named_modules())
    outputs = {}
    handles = []
    try:
        for name in layer_names:
            def keep(module, inputs, output, name=name):
                outputs[name] = output.clone()
            handles.append(modules[name].register_forward_hook(keep))
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return {name: outputs[name].detach() for name in layer_names}


def top_channels__sort_and_slice(model, layer_name, x, k=5):
    """Sorts every channel mean in decreasing order and keeps the first k."""
    activation = record_activations(model, [layer_name], x)[layer_name]
    means = activation.mean(dim=(2, 3))
    values, indices = torch.sort(means, dim=1, descending=True)
    return values[:, :k], indices[:, :k]


def top_channels__argsort_and_gather(model, layer_name, x, k=5):
    """argsort of the means, then the values gathered at those indices."""
    activation = record_activations(model, [layer_name], x)[layer_name]
    means = activation.sum(dim=(2, 3)) / (activation.shape[2] * activation.shape[3])
    indices = torch.argsort(means, dim=1, descending=True)[:, :k]
    return means.gather(1, indices), indices


def top_channels__numpy_per_image(model, layer_name, x, k=5):
    """One image at a time in NumPy (stable argsort of the negated means), back to tensors."""
    activation = record_activations(model, [layer_name], x)[layer_name].cpu().numpy()
    all_values, all_indices = [], []
    for image in activation:
        means = image.reshape(image.shape[0], -1).mean(axis=1)
        order = np.argsort(-means, kind="stable")[:k]
        all_values.append(means[order])
        all_indices.append(order)
    return torch.from_numpy(np.stack(all_values)).to(x.device), torch.from_numpy(np.stack(all_indices)).to(x.device)


#: Every alternative, by the student function it stands in for.
ALTERNATIVES = {
    "record_activations": [record_activations__hook_returns_a_copy,
                           record_activations__named_modules_and_grad_enabled],
    "top_channels": [top_channels__sort_and_slice, top_channels__argsort_and_gather, top_channels__numpy_per_image],
}
