"""Known-wrong Assignment 1 implementations. ``<student_name>__<mistake>``; each loses specific checks.

- record_activations__keeps_hooks: never removes its hooks -> fails test_record_activations_cleanup.
- record_activations__no_finally: removes hooks only after a successful forward -> fails cleanup.
- record_activations__not_detached: returns outputs still attached to the graph -> fails values.
- record_activations__aliased: keeps ``output.detach()`` without a copy, so an in-place ReLU or
  ``out += identity`` after the layer overwrites it -> fails values.
- top_channels__max_not_mean: ranks channels by their max, not mean, activation -> fails test_top_channels.

The mistakes a student makes on the way (each must fail with a visible message that names it,
tests/test_grading_a01.py ``VISIBLE_MESSAGES``):

- record_activations__sets_eval_mode: calls ``model.eval()`` (a model in train mode is left in
  eval mode) -> fails test_record_activations_cleanup.
- record_activations__getattr_layer_names: ``getattr(model, name)``, which knows no dotted name
  (``"layer4.1.conv2"``) -> fails test_record_activations_cleanup (and the hidden values check).
- top_channels__topk_over_images: ``topk(k, dim=0)``: the top images per channel -> fails test_top_channels.
- top_channels__squeezes_the_batch: ``.squeeze()`` on the (B, C) means, which drops the batch of
  one image -> fails test_top_channels.
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


def record_activations__sets_eval_mode(model, layer_names, x):
    model.eval()  # wrong: changes the caller's model (and it stays so)
    activations = {}
    handles = []
    try:
        for name in layer_names:
            def hook(module, inputs, output, name=name):
                activations[name] = output.detach().clone()
            handles.append(model.get_submodule(name).register_forward_hook(hook))
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return {name: activations[name] for name in layer_names}


def record_activations__getattr_layer_names(model, layer_names, x):
    activations = {}
    handles = []
    try:
        for name in layer_names:
            def hook(module, inputs, output, name=name):
                activations[name] = output.detach().clone()
            handles.append(getattr(model, name).register_forward_hook(hook))  # wrong: no dotted names
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return {name: activations[name] for name in layer_names}


def top_channels__topk_over_images(model, layer_name, x, k=5):
    activation = record_activations(model, [layer_name], x)[layer_name]
    return activation.mean(dim=(2, 3)).topk(k, dim=0)  # wrong: along the batch


def top_channels__squeezes_the_batch(model, layer_name, x, k=5):
    activation = record_activations(model, [layer_name], x)[layer_name]
    means = activation.mean(dim=(2, 3), keepdim=True).squeeze()  # wrong: (1, C, 1, 1) -> (C,)
    return means.topk(k, dim=1)


# --- second round (issue 26): mistakes whose crash must become a sentence naming them ------------


def record_activations__late_bound_name(model, layer_names, x):
    recorded, handles = {}, []
    try:
        for name in layer_names:
            def keep(module, inputs, output):
                recorded[name] = output.detach().clone()  # wrong: `name` is looked up when the hook runs

            handles.append(model.get_submodule(name).register_forward_hook(keep))
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return {name: recorded[name] for name in layer_names}  # KeyError for every name but the last


def top_channels__prints_instead_of_returning(model, layer_name, x, k=5):
    activation = record_activations(model, [layer_name], x)[layer_name]
    values, indices = activation.flatten(2).mean(dim=2).topk(k, dim=1)
    print(values, indices)  # wrong: the caller gets None


#: A debug hook on model.layer4 whose cell ran twice: the first handle was lost, so one hook stays
#: (pasted after the record_activations solution cell's code; tests/test_grading_a01.py).
DEBUG_HOOK_LEFT = '''
for _ in range(2):  # the cell ran twice
    debug_handle = model.layer4.register_forward_hook(lambda module, inputs, output: print("layer4", output.shape))
debug_handle.remove()  # removes the second run's hook only
'''
