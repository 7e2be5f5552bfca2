"""Variants of Grad-CAM for the notebook's exploration (plain helpers, not graded).

* :func:`grad_cam_variant`: Grad-CAM with one design choice switched, the ablations the course's
  student reports ran: no ReLU, no normalisation, one normalisation after upsampling instead of
  two stages, max- instead of average-pooled gradients. With the defaults it *is*
  :func:`solutions.gradcam.grad_cam`.
* :func:`hires_cam` (Draelos & Carin, https://arxiv.org/abs/2011.08891) and :func:`xgrad_cam`
  (Fu et al., https://arxiv.org/abs/2008.02312), with pytorch-grad-cam 1.5.7's raw formulas:

      HiResCAM   cam = sum_k G_k * A_k                        (element-wise, no pooling)
      XGradCAM   w_k = sum_ij G_k A_k / (sum_ij A_k + 1e-7),   cam = sum_k w_k A_k

  At the CIFAR ResNet-18's last block (``layer4``, followed by global average pooling and a
  linear layer) the gradient of a logit is the same at every position, so Grad-CAM, HiResCAM
  and XGradCAM give the same map there; at ``layer3`` they differ.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from solutions.gradcam import activations_and_gradients, gradcam_channel_weights, scale_cams

POOLINGS = ("mean", "max")
#: Added to the denominators exactly as pytorch-grad-cam does.
EPSILON = 1e-7


def min_max_per_image(maps: torch.Tensor) -> torch.Tensor:
    """(B, H, W) -> (B, H, W): per image ``m = c - min(c)``, ``m / (max(m) + 1e-7)``."""
    shifted = maps - maps.amin(dim=(1, 2), keepdim=True)
    return shifted / (shifted.amax(dim=(1, 2), keepdim=True) + EPSILON)


def upsample(maps: torch.Tensor, size) -> torch.Tensor:
    """(B, h, w) -> (B, H, W), bilinear with ``align_corners=False``."""
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def weighted_channel_sum(weights: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """``sum_k weights[b, k] A[b, k]``: weights (B, C), activations (B, C, h, w) -> (B, h, w)."""
    return (weights[:, :, None, None] * activations).sum(dim=1)


def postprocess(cams: torch.Tensor, size, relu: bool = True, normalize: bool = True,
                normalize_after_upsampling: bool = False) -> torch.Tensor:
    """Raw maps (B, h, w) -> (B, H, W) with the chosen steps.

    ``relu``: clamp negative evidence before and after upsampling. ``normalize``: per-image
    min-max. ``normalize_after_upsampling``: one min-max after upsampling only, instead of the
    library's two stages (before and after); it differs from the library only through the 1e-7,
    i.e. visibly only where the raw map is tiny (a random-init model: up to about 1e-3).
    With the defaults this is :func:`solutions.gradcam.scale_cams`.
    """
    if relu and normalize and not normalize_after_upsampling:
        return scale_cams(cams, size)
    if relu:
        cams = F.relu(cams)
    if normalize and not normalize_after_upsampling:
        cams = min_max_per_image(cams)
    cams = upsample(cams, size)
    if relu:
        cams = F.relu(cams)
    return min_max_per_image(cams) if normalize else cams


def channel_weights(gradients: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """(B, C, h, w) -> (B, C): ``"mean"`` is Grad-CAM's average pool, ``"max"`` the ablation."""
    if pooling == "mean":
        return gradcam_channel_weights(gradients)
    if pooling == "max":
        return gradients.amax(dim=(2, 3))
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


def grad_cam_variant(model: nn.Module, layer_name: str, x: torch.Tensor, targets=None, relu: bool = True,
                     normalize: bool = True, normalize_after_upsampling: bool = False,
                     pooling: str = "mean") -> torch.Tensor:
    """Grad-CAM (B, H, W) with one or more steps changed; the defaults give exactly ``grad_cam``.

    Without ``normalize`` the maps keep the raw scale (and are not limited to [0, 1]).
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    activations, gradients, _ = activations_and_gradients(model, layer_name, x, targets)
    cams = weighted_channel_sum(channel_weights(gradients, pooling), activations)
    return postprocess(cams, tuple(x.shape[-2:]), relu, normalize, normalize_after_upsampling)


def hirescam_raw(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """HiResCAM before post-processing: ``sum_k G_k * A_k``, (B, C, h, w) x 2 -> (B, h, w)."""
    return (gradients * activations).sum(dim=1)


def xgradcam_weights(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """XGradCAM's weights ``sum_ij G A / (sum_ij A + 1e-7)``, (B, C, h, w) x 2 -> (B, C)."""
    return (gradients * activations).sum(dim=(2, 3)) / (activations.sum(dim=(2, 3)) + EPSILON)


def hires_cam(model: nn.Module, layer_name: str, x: torch.Tensor, targets=None) -> torch.Tensor:
    """HiResCAM heatmaps (B, H, W) in [0, 1], post-processed like Grad-CAM."""
    activations, gradients, _ = activations_and_gradients(model, layer_name, x, targets)
    return scale_cams(hirescam_raw(activations, gradients), tuple(x.shape[-2:]))


def xgrad_cam(model: nn.Module, layer_name: str, x: torch.Tensor, targets=None) -> torch.Tensor:
    """XGradCAM heatmaps (B, H, W) in [0, 1], post-processed like Grad-CAM."""
    activations, gradients, _ = activations_and_gradients(model, layer_name, x, targets)
    weights = xgradcam_weights(activations, gradients)
    return scale_cams(weighted_channel_sum(weights, activations), tuple(x.shape[-2:]))
