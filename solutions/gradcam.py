"""Reference solutions of Assignment 2: Grad-CAM.

Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", https://arxiv.org/abs/1610.02391) explains the score ``y^c`` of a
class ``c`` with the feature maps ``A^k`` of one convolutional layer: each channel ``k`` is
weighted by how much the score changes with it on average,

    alpha_k^c = 1/Z sum_i sum_j  d y^c / d A^k_ij            (global average pool of the gradient)
    L^c       = ReLU( sum_k alpha_k^c A^k )                   (a map at the layer's resolution)

and the map is then upsampled to the image and scaled to [0, 1] for display.

The numeric conventions follow pytorch-grad-cam 1.5.7 (``pytorch_grad_cam.GradCAM``) exactly, so
the functions here agree with it to about 1e-6: the score is the raw logit (not the softmax),
summed over the batch; ``targets=None`` means the predicted class; post-processing is ReLU,
per-image min-max at the layer's resolution, bilinear upsampling, ReLU and min-max again.

The four functions with ``### BEGIN/END SOLUTION`` blocks are what students implement; they use
only ``torch``, ``torch.nn.functional as F``, ``nn`` and each other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def activations_and_gradients(model: nn.Module, layer_name: str, x: torch.Tensor, targets=None):
    """One forward pass and one gradient: what Grad-CAM (https://arxiv.org/abs/1610.02391) needs.

    With ``A`` the output of the layer ``layer_name`` and ``logits = model(x)``, the score is

        score = sum_b logits[b, targets[b]]          (raw logits, summed over the batch)

    and the gradient is ``G = d score / d A``. Because image ``b`` only influences its own logits,
    ``G[b]`` is the gradient of image ``b``'s own class score: one backward pass serves the batch.

    Only the gradient with respect to ``A`` is computed, with ``torch.autograd.grad(score, A)``:
    no ``.backward()``, so no gradient of any weight is computed or left in ``parameter.grad``.

    Args:
        model: a classifier returning logits (B, K); its mode and weights are not changed.
        layer_name: a module name as in ``model.named_modules()``, e.g. ``"layer4"`` or
            ``"layer3.0.conv1"``; its output must be a tensor (B, C, h, w).
        x: input batch, for the CIFAR ResNet-18 of shape (B, 3, 32, 32).
        targets: the class explained for each image: ``None`` (the predicted class, argmax of the
            same forward pass), an ``int`` (the same class for every image), or a list, tuple or
            1-D tensor of B class indices.

    Returns:
        ``(activations, gradients, logits)``, detached: ``A`` and ``G`` of shape (B, C, h, w)
        (for ``layer4`` of the CIFAR ResNet-18: (B, 512, 4, 4)) and the logits (B, K).

    ``A`` is the layer's output *when the layer returned*, and ``G`` the gradient with respect
    to that value. When an in-place operation follows the layer (``ReLU(inplace=True)`` after a
    convolution in AlexNet or VGG, after a BatchNorm in a ResNet block), it would overwrite
    ``A`` and move ``A``'s place in the graph to after the ReLU. The forward hook therefore
    returns ``output.clone()``: the rest of the network (and its in-place operations) works on
    the copy, and ``A`` keeps its value and its place. Grad-CAM is then the same function of the
    network whether its ReLUs are in place or not.

    Works also when called inside ``torch.no_grad()``. The forward hook that records ``A`` is
    removed before returning, also when the forward pass raises.
    """
    ### BEGIN SOLUTION
    recorded = {}

    def save_output(module, inputs, output):
        recorded["activations"] = output
        return output.clone()  # later in-place operations change the copy, not A

    handle = model.get_submodule(layer_name).register_forward_hook(save_output)
    try:
        with torch.enable_grad():
            logits = model(x)
            if "activations" not in recorded:
                raise RuntimeError(f"layer {layer_name!r} did not run in the forward pass")
            activations = recorded["activations"]
            if targets is None:
                targets = logits.argmax(dim=1)
            targets = torch.as_tensor(targets, dtype=torch.long, device=logits.device)
            if targets.ndim == 0:
                targets = targets.expand(len(logits))
            if targets.shape != (len(logits),):
                raise ValueError(f"expected one target per image ({len(logits)}), got shape {tuple(targets.shape)}")
            score = logits.gather(1, targets[:, None]).sum()
            (gradients,) = torch.autograd.grad(score, activations)
    finally:
        handle.remove()
    return activations.detach(), gradients.detach(), logits.detach()
    ### END SOLUTION


def gradcam_channel_weights(gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM's channel weights: the global average pool of the gradients.

        alpha[b, k] = 1/(h w) sum_i sum_j G[b, k, i, j]    (eq. 1 of https://arxiv.org/abs/1610.02391)

    Args:
        gradients: ``G = d score / d A``, shape (B, C, h, w).

    Returns:
        ``alpha``, shape (B, C): one weight per image and channel.
    """
    ### BEGIN SOLUTION
    return gradients.mean(dim=(2, 3))
    ### END SOLUTION


def scale_cams(cams: torch.Tensor, size) -> torch.Tensor:
    """Turn raw maps at the layer's resolution into heatmaps in [0, 1] at the image's size.

    Grad-CAM's map ``ReLU(sum_k alpha_k A^k)`` (eq. 2 of https://arxiv.org/abs/1610.02391) has
    the layer's resolution; to lay it over the image it is upsampled and scaled. The steps, in
    this order (pytorch-grad-cam's convention), each per image ``b``:

    1. ReLU: keep only the evidence *for* the class.
    2. Min-max at the layer's resolution: ``m = c - min(c)``, then ``m / (max(m) + 1e-7)``
       (the 1e-7 keeps an all-zero map at zero instead of dividing by zero).
    3. Bilinear upsampling to ``size``:
       ``F.interpolate(..., size=size, mode="bilinear", align_corners=False)``.
    4. ReLU and the same min-max again.

    A constant map (for example all zeros) becomes all zeros, never NaN.

    Args:
        cams: raw maps (B, h, w), for example ``sum_k alpha[b, k] A[b, k]``.
        size: the output size ``(H, W)`` (an ``int`` means ``(size, size)``).

    Returns:
        float heatmaps (B, H, W) with values in [0, 1].
    """
    ### BEGIN SOLUTION
    def min_max(maps):
        shifted = maps - maps.amin(dim=(1, 2), keepdim=True)
        return shifted / (shifted.amax(dim=(1, 2), keepdim=True) + 1e-7)

    scaled = min_max(F.relu(cams))
    upsampled = F.interpolate(scaled[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return min_max(F.relu(upsampled))
    ### END SOLUTION


def grad_cam(model: nn.Module, layer_name: str, x: torch.Tensor, targets=None) -> torch.Tensor:
    """Grad-CAM heatmaps of ``model`` at layer ``layer_name`` (https://arxiv.org/abs/1610.02391).

        alpha[b, k] = mean_ij G[b, k, i, j]                   with G = d score / d A
        cam[b]      = ReLU( sum_k alpha[b, k] A[b, k] )        (B, h, w), then upsampled to (H, W)

    Uses :func:`activations_and_gradients`, :func:`gradcam_channel_weights` and
    :func:`scale_cams`.

    Args:
        model: a classifier returning logits; its mode, weights and hooks are left as they were
            and no ``parameter.grad`` is left behind.
        layer_name: the target layer, e.g. ``"layer4"`` (4x4 maps) or ``"layer3"`` (8x8).
        x: input batch (B, 3, H, W).
        targets: ``None`` (predicted class), an ``int`` or B class indices.

    Returns:
        float heatmaps (B, H, W) in [0, 1]; they match
        ``pytorch_grad_cam.GradCAM(model, [layer])(x, targets=[ClassifierOutputTarget(t), ...])``.
    """
    ### BEGIN SOLUTION
    activations, gradients, _ = activations_and_gradients(model, layer_name, x, targets)
    weights = gradcam_channel_weights(gradients)
    cams = (weights[:, :, None, None] * activations).sum(dim=1)
    return scale_cams(cams, tuple(x.shape[-2:]))
    ### END SOLUTION
