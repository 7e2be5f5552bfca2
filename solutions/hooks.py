"""Reference solutions of Assignment 1: forward hooks.

A forward hook is a function ``hook(module, inputs, output)`` that PyTorch calls right after
``module.forward`` runs; ``module.register_forward_hook(hook)`` returns a handle whose
``remove()`` unregisters it. Hooks let us read (or change) what any layer computes without
editing the model's code. A hook left registered keeps firing on every later forward pass and
keeps its captured tensors alive, so handles are always removed in ``finally``.
"""

from __future__ import annotations

import torch
from torch import nn


def record_activations(model: nn.Module, layer_names, x: torch.Tensor) -> dict:
    """Run ``model(x)`` once and return what each named layer output.

    Args:
        model: any ``nn.Module``; it is not modified (no hook stays registered, mode unchanged).
        layer_names: names as in ``model.named_modules()``, for example ``["layer1", "layer4.1.conv2"]``.
        x: input batch, for the CIFAR ResNet-18 of shape (B, 3, 32, 32).

    Returns:
        ``{name: tensor}`` with each layer's output, detached from the graph, in the order of
        ``layer_names``; for ``layer3`` of the CIFAR ResNet-18 the tensor is (B, 256, 8, 8).
        If a layer runs more than once in the forward pass, its last output is kept.

    The value kept is the output *when the layer returned*. ``output.detach()`` alone is not
    enough: it shares storage with ``output``, so an in-place operation that runs later in the
    forward pass (``ReLU(inplace=True)`` after a BatchNorm or a convolution, ``out += identity``
    after a residual block's last BatchNorm) would overwrite the recorded tensor too. The hook
    therefore keeps a copy, ``output.detach().clone()``.

    Every hook is removed before returning, also when the forward pass raises.
    """
    ### BEGIN SOLUTION
    activations = {}
    handles = []

    def make_hook(name):
        def hook(module, inputs, output):
            activations[name] = output.detach().clone()  # a copy: later in-place ops must not change it
        return hook

    try:
        for name in layer_names:
            handles.append(model.get_submodule(name).register_forward_hook(make_hook(name)))
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return {name: activations[name] for name in layer_names}
    ### END SOLUTION


def top_channels(model: nn.Module, layer_name: str, x: torch.Tensor, k: int = 5):
    """The ``k`` channels of ``layer_name`` with the largest mean activation, per image.

    The mean is over the spatial positions of each channel: ``score[b, c] = mean_hw A[b, c, h, w]``.

    Args:
        model, layer_name, x: as for :func:`record_activations` (one layer name).
        k: how many channels to return (at most the layer's channel count).

    Returns:
        ``(values, indices)``, both of shape (B, k), sorted by decreasing mean activation per
        image (``values[b, 0]`` is the largest mean of image ``b``; ``indices`` are channel numbers).
    """
    ### BEGIN SOLUTION
    activation = record_activations(model, [layer_name], x)[layer_name]
    channel_means = activation.flatten(2).mean(dim=2)
    values, indices = channel_means.topk(k, dim=1, largest=True, sorted=True)
    return values, indices
    ### END SOLUTION
