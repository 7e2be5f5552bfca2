"""Library-backed explanation maps, for comparison and as fallbacks in the notebooks.

These wrap `pytorch-grad-cam <https://github.com/jacobgil/pytorch-grad-cam>`_ (Jacob Gildenblat
et al.) and hold no solutions: they are what a practitioner would call instead of writing the
method. The notebooks use them to compare with the students' own functions, and as the
fallback Grad-CAM of Assignment 3 when a student's Assignment 2 ``grad_cam`` is not at hand.

The wrappers leave the model exactly as they found it, which the library alone does not:
its ``BaseCAM`` calls ``model.eval()`` and leaves every parameter's ``.grad`` filled (it runs
``loss.backward()``). Here the train/eval mode of every module and the parameters' ``.grad``
are restored, the library's hooks are released, and its warnings are silenced (a warning in a
graded nbgrader test cell scores 0).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn


def _target_list(targets, batch_size: int):
    """``None`` -> ``None`` (the library's own argmax); an int or a sequence -> one target per image."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if targets is None:
        return None
    classes = torch.as_tensor(targets).long().reshape(-1).expand(batch_size).tolist()
    return [ClassifierOutputTarget(int(category)) for category in classes]


def library_grad_cam(model: nn.Module, layer_name: str, x: torch.Tensor, targets=None) -> torch.Tensor:
    """Grad-CAM maps from ``pytorch_grad_cam.GradCAM`` (Selvaraju et al., arXiv 1610.02391).

    Args:
        model: a classifier whose ``forward`` returns logits (B, num_classes).
        layer_name: the target layer, as in ``model.named_modules()`` (``"layer4"``, ``"layer3.1"``).
        x: input batch (B, 3, H, W); not modified, no ``.grad`` is written to it.
        targets: ``None`` (each image's predicted class), one int for every image, or a
            sequence of B class indices. The score explained is the raw logit.

    Returns:
        float32 tensor (B, H, W) on ``x``'s device, each map in [0, 1] (the library's
        ReLU, min-max scaling and bilinear upsampling to the input size).
    """
    from pytorch_grad_cam import GradCAM

    layer = model.get_submodule(layer_name)
    modes = [(module, module.training) for module in model.modules()]
    grads = [(parameter, parameter.grad) for parameter in model.parameters()]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with GradCAM(model=model, target_layers=[layer]) as cam:
                maps = cam(input_tensor=x.detach(), targets=_target_list(targets, x.shape[0]))
    finally:
        for module, training in modes:
            module.training = training
        for parameter, grad in grads:
            parameter.grad = grad
    return torch.from_numpy(maps).float().to(x.device)
