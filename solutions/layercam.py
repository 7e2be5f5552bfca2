"""Reference solutions of Assignment 4, part 1: Layer-CAM.

Layer-CAM (Jiang, Zhang, Hou, Cheng, Wei, "LayerCAM: Exploring Hierarchical Class Activation Maps
for Localization", IEEE Transactions on Image Processing 30, 2021,
https://ieeexplore.ieee.org/document/9462463) keeps Grad-CAM's ingredients, the activations ``A``
of a layer and the gradient ``G = d y^c / d A`` of the class score, but does not average the
gradient over space. Every *position* gets its own weight, the positive part of its gradient:

    Grad-CAM:   cam[b] = ReLU( sum_k  mean_ij(G[b, k]) * A[b, k] )
    Layer-CAM:  cam[b] = ReLU( sum_k  ReLU(G[b, k, i, j]) * A[b, k, i, j] )

Because the weight is local, Layer-CAM also gives useful maps at early, high-resolution layers
(``layer2``: 16x16, ``layer1``: 32x32), where Grad-CAM's single weight per channel blurs
everything together. At ``layer4`` of the CIFAR ResNet-18 the gradient is the same at every
position (global average pooling, then ``fc``), so there Layer-CAM differs from Grad-CAM only by
the ReLU on the gradient.

Numeric conventions follow pytorch-grad-cam 1.5.7 (``pytorch_grad_cam.LayerCAM``), which the
functions here match to about 1e-7 (relative error) on the CIFAR ResNet-18.

Student functions use only ``torch``, ``torch.nn.functional as F`` and the Assignment 2 helpers
``activations_and_gradients`` and ``scale_cams``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from solutions.gradcam import activations_and_gradients, scale_cams


def layer_cam(model: nn.Module, layer_name: str, x: torch.Tensor, targets=None) -> torch.Tensor:
    """Layer-CAM heatmaps of ``model`` at layer ``layer_name`` (Jiang et al., IEEE TIP 2021).

    With ``A`` the layer's activations and ``G = d score / d A`` (both (B, C, h, w), from
    ``activations_and_gradients``), each position is weighted by its own positive gradient:

        cam[b, i, j] = sum_k ReLU(G[b, k, i, j]) * A[b, k, i, j]          (B, h, w)

    then post-processed exactly like Grad-CAM with ``scale_cams`` (ReLU, min-max, bilinear
    upsampling to the input's (H, W), ReLU, min-max).

    Why the ReLU on the gradient: a negative gradient means "more of this activation here
    *lowers* the class score"; Layer-CAM keeps only the positions that speak *for* the class.

    Args:
        model: a classifier returning logits; left unchanged (mode, weights, hooks, ``.grad``).
        layer_name: the target layer, e.g. ``"layer4"`` (4x4), ``"layer3"`` (8x8), ``"layer2"``
            (16x16) or a nested module such as ``"layer3.0.conv1"``.
        x: input batch (B, 3, H, W).
        targets: ``None`` (the predicted class), an ``int`` or B class indices.

    Returns:
        float heatmaps (B, H, W) in [0, 1]; they match
        ``pytorch_grad_cam.LayerCAM(model, [layer])(x, targets=[ClassifierOutputTarget(t), ...])``.
    """
    ### BEGIN SOLUTION
    activations, gradients, _ = activations_and_gradients(model, layer_name, x, targets)
    cams = (F.relu(gradients) * activations).sum(dim=1)
    return scale_cams(cams, tuple(x.shape[-2:]))
    ### END SOLUTION


def fuse_layer_cams(model: nn.Module, layer_names, x: torch.Tensor, targets=None) -> torch.Tensor:
    """One heatmap from the Layer-CAMs of several layers (coarse + fine evidence together).

    Deep layers locate the object coarsely; shallow layers have fine detail but also more
    noise. Fusing them, as pytorch-grad-cam does when ``LayerCAM`` gets several
    ``target_layers``:

    1. For each layer ``l``: the raw Layer-CAM ``cam_l = sum_k ReLU(G_l) * A_l`` (B, h_l, w_l),
       ReLU'd and min-max scaled *at its own resolution*
       (``scale_cams(cam_l, cam_l.shape[-2:])``), then upsampled bilinearly
       (``align_corners=False``) to the input's (H, W). Every layer now lies in [0, 1].
    2. The element-wise **mean** over the layers (B, H, W).
    3. ReLU and min-max again (``scale_cams`` with the same (H, W)).

    Step 1 scales each layer *before* upsampling: scaling after upsampling (e.g. averaging the
    outputs of :func:`layer_cam`) gives other numbers, because bilinear upsampling lowers an
    interior peak. (Other libraries fuse with an element-wise maximum instead of the mean; we
    follow pytorch-grad-cam.) With a single layer the result equals :func:`layer_cam`.

    Args:
        model, x, targets: as for :func:`layer_cam`; all layers explain the same classes.
        layer_names: a non-empty list of layer names, e.g. ``["layer2", "layer3", "layer4"]``.

    Returns:
        float heatmaps (B, H, W) in [0, 1]; they match
        ``pytorch_grad_cam.LayerCAM(model, [model.layer2, model.layer3, model.layer4])(x, targets)``.
    """
    ### BEGIN SOLUTION
    size = tuple(x.shape[-2:])
    per_layer = []
    for layer_name in layer_names:
        activations, gradients, _ = activations_and_gradients(model, layer_name, x, targets)
        cams = (F.relu(gradients) * activations).sum(dim=1)
        scaled = scale_cams(cams, tuple(cams.shape[-2:]))
        per_layer.append(F.interpolate(scaled[:, None], size=size, mode="bilinear", align_corners=False)[:, 0])
    return scale_cams(torch.stack(per_layer).mean(dim=0), size)
    ### END SOLUTION
