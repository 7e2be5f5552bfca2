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


#: The library's methods the notebooks compare, by the name the figures show.
LIBRARY_METHODS = {
    "GradCAM": "GradCAM",              # Selvaraju et al., arXiv 1610.02391
    "GradCAM++": "GradCAMPlusPlus",    # Chattopadhyay et al., arXiv 1710.11063
    "XGradCAM": "XGradCAM",            # Fu et al., arXiv 2008.02312
    "HiResCAM": "HiResCAM",            # Draelos & Carin, arXiv 2011.08891
    "EigenCAM": "EigenCAM",            # Muhammad & Yeasin, arXiv 2008.00299 (no gradients, no target)
    "ScoreCAM": "ScoreCAM",            # Wang et al., arXiv 1910.01279 (one forward pass per channel: slow)
    "LayerCAM": "LayerCAM",            # Jiang et al., IEEE TIP 2021
}


def library_cam(method: str, model: nn.Module, layer_name: str, x: torch.Tensor, targets=None,
                batch_size: int | None = None, channel_weights=None) -> torch.Tensor:
    """Maps of one of pytorch-grad-cam's methods (:data:`LIBRARY_METHODS`), as a tensor.

    Args:
        method: a key of :data:`LIBRARY_METHODS`, e.g. ``"GradCAM++"`` or ``"ScoreCAM"``.
        model: a classifier whose ``forward`` returns logits (B, num_classes); left as it was
            (train/eval mode of every module, the parameters' ``.grad``, no hook left).
        layer_name: the target layer, as in ``model.named_modules()`` (``"layer4"``, ``"layer3.1"``).
        x: input batch (B, 3, H, W); not modified, no ``.grad`` is written to it.
        targets: ``None`` (each image's predicted class), one int for every image, or a
            sequence of B class indices. The score explained is the raw logit.
        batch_size: ScoreCAM only: how many masked images it scores per forward pass
            (the library's default is 16).
        channel_weights: a function of the method's channel weights (a numpy array (B, K)) that
            returns the weights to use instead: what a known mistake gives (the self-checks use
            ``lambda w: np.maximum(w, 0)``, a ReLU on Grad-CAM's weights). ``None``: the method's own.

    Returns:
        float32 tensor (B, H, W) on ``x``'s device, each map in [0, 1] (the library's
        ReLU, min-max scaling and bilinear upsampling to the input size). The library's
        progress bars and warnings are silenced.
    """
    import contextlib
    import io

    import pytorch_grad_cam

    if method not in LIBRARY_METHODS:
        raise ValueError(f"unknown method {method!r}; one of {', '.join(LIBRARY_METHODS)}")
    cam_class = getattr(pytorch_grad_cam, LIBRARY_METHODS[method])
    if channel_weights is not None:
        cam_class = _with_channel_weights(cam_class, channel_weights)
    layer = model.get_submodule(layer_name)
    modes = [(module, module.training) for module in model.modules()]
    grads = [(parameter, parameter.grad) for parameter in model.parameters()]
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            with cam_class(model=model, target_layers=[layer]) as cam:
                if batch_size is not None:
                    cam.batch_size = batch_size
                maps = cam(input_tensor=x.detach(), targets=_target_list(targets, x.shape[0]))
    finally:
        for module, training in modes:
            module.training = training
        for parameter, grad in grads:
            parameter.grad = grad
    return torch.from_numpy(maps).float().to(x.device)


def _with_channel_weights(cam_class, channel_weights):
    """A subclass of the library's ``cam_class`` whose channel weights go through ``channel_weights``."""

    class ChangedWeights(cam_class):
        def get_cam_weights(self, *args, **kwargs):
            return channel_weights(super().get_cam_weights(*args, **kwargs))

    return ChangedWeights


def library_grad_cam(model: nn.Module, layer_name: str, x: torch.Tensor, targets=None,
                     channel_weights=None) -> torch.Tensor:
    """Grad-CAM maps from ``pytorch_grad_cam.GradCAM`` (Selvaraju et al., arXiv 1610.02391).

    Args:
        model: a classifier whose ``forward`` returns logits (B, num_classes).
        layer_name: the target layer, as in ``model.named_modules()`` (``"layer4"``, ``"layer3.1"``).
        x: input batch (B, 3, H, W); not modified, no ``.grad`` is written to it.
        targets: ``None`` (each image's predicted class), one int for every image, or a
            sequence of B class indices. The score explained is the raw logit.
        channel_weights: as for :func:`library_cam` (what a mistake in the weights gives).

    Returns:
        float32 tensor (B, H, W) on ``x``'s device, each map in [0, 1] (the library's
        ReLU, min-max scaling and bilinear upsampling to the input size).
    """
    return library_cam("GradCAM", model, layer_name, x, targets, channel_weights=channel_weights)


def library_scale_cams(cams: torch.Tensor, size) -> torch.Tensor:
    """pytorch-grad-cam's post-processing of raw maps, for comparison with your own.

    The library (``BaseCAM.compute_cam_per_layer`` and ``aggregate_multi_layers``) applies
    ``np.maximum(cam, 0)``, then ``scale_cam_image(cam, size)`` (per-image min-max, then an
    OpenCV bilinear resize), then ``np.maximum(., 0)`` and ``scale_cam_image`` again.

    Args:
        cams: raw maps (B, h, w) at a layer's resolution.
        size: the output size ``(H, W)`` (an ``int`` means ``(size, size)``).

    Returns:
        float32 tensor (B, H, W) on ``cams``' device.
    """
    import numpy as np
    from pytorch_grad_cam.utils.image import scale_cam_image

    height, width = (size, size) if isinstance(size, int) else tuple(size)
    array = cams.detach().float().cpu().numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resized = scale_cam_image(np.maximum(array, 0), (width, height))  # OpenCV sizes are (width, height)
        scaled = scale_cam_image(np.maximum(resized, 0))
    return torch.from_numpy(np.ascontiguousarray(scaled, dtype=np.float32)).to(cams.device)


def library_activations_and_gradients(model: nn.Module, layer_name: str, x: torch.Tensor, targets=None):
    """A layer's activations and the class score's gradient, recorded by pytorch-grad-cam's hooks.

    Same signature and conventions as Assignment 2's ``activations_and_gradients``: the score is
    ``sum_b logits[b, targets[b]]`` (raw logits; ``targets=None`` is each image's predicted
    class, an int is one class for every image), and its gradient is taken with respect to the
    output ``A`` of ``layer_name`` only (``torch.autograd.grad``), so no parameter ``.grad`` is
    filled. The hooks are ``pytorch_grad_cam.activations_and_gradients.ActivationsAndGradients``
    (a forward hook that keeps ``A`` and a tensor hook on it that records the gradient); they
    are removed before returning, also when something raises.

    Returns:
        ``(activations, gradients, logits)``, detached: (B, C, h, w), (B, C, h, w) and (B, K).
    """
    from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients

    recorder = ActivationsAndGradients(model, [model.get_submodule(layer_name)], None, detach=False)
    try:
        with torch.set_grad_enabled(True):  # also inside a caller's torch.no_grad()
            # An input that requires grad keeps A in the graph even when the weights are frozen.
            logits = recorder(x.detach().clone().requires_grad_(True))
            if not recorder.activations:
                raise RuntimeError(f"the forward pass never reached layer {layer_name!r}")
            layer_output = recorder.activations[0]
            chosen = logits.argmax(dim=1) if targets is None else targets
            class_score = sum(target(row) for target, row in zip(_target_list(chosen, len(logits)), logits))
            torch.autograd.grad(class_score, layer_output)  # the library's tensor hook records dS/dA
            gradient = recorder.gradients[0]
    finally:
        # release() would detach_() the recorded tensors in place, which fails on views: drop them first.
        recorder.activations, recorder.gradients = [], []
        recorder.release()
    return layer_output.detach(), gradient.detach(), logits.detach()


def library_guided_backprop(model: nn.Module, x: torch.Tensor, targets=None) -> torch.Tensor:
    """Guided backpropagation (Springenberg et al., arXiv 1412.6806) from captum's ``GuidedBackprop``.

    Same signature as Assignment 3's ``guided_backprop``: the gradient of each image's target
    logit with respect to the input, every ReLU passing back only positive gradients where its
    input was positive. captum is batched (pytorch-grad-cam's ``GuidedBackpropReLUModel`` takes
    one image at a time and leaves the model's ReLUs replaced).

    Args:
        model: a classifier returning logits; its mode, weights and ``.grad`` are left as they were.
        x: input batch (B, 3, H, W); not modified.
        targets: ``None`` (each image's predicted class), one int, or B class indices.

    Returns:
        tensor (B, 3, H, W) on ``x``'s device.
    """
    from captum.attr import GuidedBackprop

    modes = [(module, module.training) for module in model.modules()]
    grads = [(parameter, parameter.grad) for parameter in model.parameters()]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if targets is None:  # each image's predicted class
                with torch.no_grad():
                    chosen = model(x).argmax(dim=1).tolist()
            else:
                chosen = torch.as_tensor(targets).long().reshape(-1).expand(x.shape[0]).tolist()
            gradients = GuidedBackprop(model).attribute(x.detach().clone(), target=chosen)
    finally:
        for module, training in modes:
            module.training = training
        for parameter, grad in grads:
            parameter.grad = grad
    return gradients.detach()


class inplace_relus_off:  # noqa: N801 (a context manager, used like a function)
    """Inside the block, every ``nn.ReLU(inplace=True)`` of ``model`` computes out of place; the
    flags are restored afterwards, also when the block raises.

    pytorch-grad-cam keeps a layer's output with ``output.cpu().detach()``, which on a CPU is the
    tensor itself: an in-place ReLU right after the layer (every convolution of AlexNet and
    VGG) overwrites it, and the library's Grad-CAM mixes the ReLU's output with the gradient
    before it (Assignment 2). Without in-place ReLUs it reads the layer's own output::

        with library_cams.inplace_relus_off(model):
            maps = library_cams.library_grad_cam(model, "features.10", x, targets)
    """

    def __init__(self, model: nn.Module):
        self.relus = [module for module in model.modules() if isinstance(module, nn.ReLU) and module.inplace]

    def __enter__(self):
        for relu in self.relus:
            relu.inplace = False
        return self

    def __exit__(self, *exc_info):
        for relu in self.relus:
            relu.inplace = True
        return False
