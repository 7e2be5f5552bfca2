"""Known-wrong Assignment 1 implementations. ``<student_name>__<mistake>``; each loses specific checks.

- record_activations__keeps_hooks: never removes its hooks -> fails test_record_activations_cleanup.
- record_activations__no_finally: removes hooks only after a successful forward -> fails cleanup.
- record_activations__not_detached: returns outputs still attached to the graph -> fails values.
- record_activations__aliased: keeps ``output.detach()`` without a copy, so an in-place ReLU or
  ``out += identity`` after the layer overwrites it -> fails values.
- top_channels__max_not_mean: ranks channels by their max, not mean, activation -> fails test_top_channels.
"""

import torch

from solutions.hooks import record_activations


def record_activations__keeps_hooks(model, layer_names, x):
    activations = {}
    for name in layer_names:
        def hook(module, inputs, output, name=name):
            activations[name] = output.detach().clone()
        model.get_submodule(name).register_forward_hook(hook)
    with torch.no_grad():
        model(x)
    return {name: activations[name] for name in layer_names}


def record_activations__no_finally(model, layer_names, x):
    activations = {}
    handles = []
    for name in layer_names:
        def hook(module, inputs, output, name=name):
            activations[name] = output.detach().clone()
        handles.append(model.get_submodule(name).register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return {name: activations[name] for name in layer_names}


def record_activations__not_detached(model, layer_names, x):
    activations = {}
    handles = []
    try:
        for name in layer_names:
            def hook(module, inputs, output, name=name):
                activations[name] = output
            handles.append(model.get_submodule(name).register_forward_hook(hook))
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return {name: activations[name] for name in layer_names}


def record_activations__aliased(model, layer_names, x):
    activations = {}
    handles = []
    try:
        for name in layer_names:
            def hook(module, inputs, output, name=name):
                activations[name] = output.detach()
            handles.append(model.get_submodule(name).register_forward_hook(hook))
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return {name: activations[name] for name in layer_names}


def top_channels__max_not_mean(model, layer_name, x, k=5):
    activation = record_activations(model, [layer_name], x)[layer_name]
    return activation.flatten(2).amax(dim=2).topk(k, dim=1)
