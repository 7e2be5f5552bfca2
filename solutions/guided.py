"""Reference solutions of Assignment 3: gradients of the input, guided backpropagation, Guided Grad-CAM.

Grad-CAM (Assignment 2) says *where* the evidence for a class is, at the coarse resolution of
a late layer (8x8 or 4x4 for the CIFAR ResNet-18). Gradients of the class score with respect
to the input pixels are full resolution but noisy. Guided backpropagation (Springenberg et al.,
"Striving for Simplicity: The All Convolutional Net", https://arxiv.org/abs/1412.6806) changes
how gradients pass through every ReLU so that only positive evidence flows back, which gives
sharp, edge-like images; Guided Grad-CAM (Selvaraju et al., https://arxiv.org/abs/1610.02391,
section 3.1) multiplies the two: sharp *and* class-discriminative.

Pieces, in the order the notebook builds them (each may call the ones before it):

    input_gradient     d score / d x                         (B, 3, H, W)
    vanilla_saliency   max_c |d score / d x|                 (B, H, W)
    gradient_to_image  signed gradients -> displayable image (B, H, W, 3) in [0, 1]
    GuidedReLUFunction the guided ReLU as an autograd Function
    guided_backprop    d score / d x with every nn.ReLU guided (B, 3, H, W)
    guided_grad_cam    guided_backprop * upsampled Grad-CAM  (B, 3, H, W)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

try:  # the Assignment 2 reference; the notebook uses the student's own grad_cam instead
    from solutions.gradcam import grad_cam
except ModuleNotFoundError as error:
    if error.name != "solutions.gradcam":
        raise
    from student_src.library_cams import library_grad_cam as grad_cam


def input_gradient(model: nn.Module, x: torch.Tensor, targets=None) -> torch.Tensor:
    """The gradient of the class scores with respect to the input pixels.

    The score of a batch is the sum of each image's raw logit (before softmax) for its target
    class, ``S = sum_b logits[b, targets[b]]``, as in pytorch-grad-cam. Since image ``b`` only
    influences ``logits[b]``, ``dS/dx[b] = d logits[b, targets[b]] / dx[b]``: one backward pass
    explains the whole batch.

    Args:
        model: a classifier, ``model(x)`` returns logits (B, num_classes). Not modified.
        x: input batch (B, 3, H, W). Not modified: work on a detached copy,
            ``x.detach().clone().requires_grad_(True)``, so that the caller's tensor gets no
            ``.grad`` and nothing accumulates between calls.
        targets: ``None`` (each image's predicted class, the argmax of the logits), one int
            (the same class for every image), or a sequence of B class indices.

    Returns:
        tensor (B, 3, H, W), same shape as ``x``, detached. Use ``torch.autograd.grad``: it
        computes only this gradient and leaves no ``.grad`` on the model's parameters (which
        ``score.backward()`` would fill).
    """
    ### BEGIN SOLUTION
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        if targets is None:
            targets = logits.argmax(dim=1)
        targets = torch.as_tensor(targets, device=logits.device).long().reshape(-1).expand(logits.shape[0])
        score = logits.gather(1, targets[:, None]).sum()
        (gradient,) = torch.autograd.grad(score, x)
    return gradient
    ### END SOLUTION


def vanilla_saliency(model: nn.Module, x: torch.Tensor, targets=None) -> torch.Tensor:
    """Image-specific class saliency (Simonyan et al. 2013, https://arxiv.org/abs/1312.6034).

    The saliency of pixel (h, w) is the largest magnitude of the score's gradient over the
    colour channels: ``M[b, h, w] = max_c |dS/dx[b, c, h, w]|`` (their eq. 3 and section 3.1).

    Args:
        model, x, targets: as for :func:`input_gradient`.

    Returns:
        non-negative tensor (B, H, W).
    """
    ### BEGIN SOLUTION
    return input_gradient(model, x, targets).abs().amax(dim=1)
    ### END SOLUTION


def gradient_to_image(gradients) -> np.ndarray:
    """Turn signed gradients into an RGB image for ``plt.imshow``.

    Gradients are tiny, signed and centred near zero, so each image is standardised on its own
    (over all its channels and pixels) and mapped around mid-grey:

        img = clip(0.5 + 0.1 * (g - mean(g)) / (std(g) + 1e-5), 0, 1)

    with the population standard deviation (``np.std``, ``unbiased=False`` in torch). This is
    ``deprocess_image`` of the Grad-CAM reference code (pytorch-grad-cam's
    ``utils/image.py``, after keras-grad-cam) without its final conversion to uint8: grey
    means "no gradient", bright and dark are positive and negative evidence, and about
    +-5 standard deviations fit in the range. An all-zero gradient becomes uniform grey.

    Args:
        gradients: tensor or array (B, 3, H, W), or (3, H, W) for one image.

    Returns:
        float32 ``np.ndarray`` (B, H, W, 3), or (H, W, 3) for one image, values in [0, 1].
    """
    ### BEGIN SOLUTION
    if isinstance(gradients, torch.Tensor):
        gradients = gradients.detach().cpu().numpy()
    g = np.asarray(gradients, dtype=np.float64)
    single = g.ndim == 3
    if single:
        g = g[None]
    axes = (1, 2, 3)
    g = g - g.mean(axis=axes, keepdims=True)
    g = g / (g.std(axis=axes, keepdims=True) + 1e-5)
    images = np.clip(0.5 + 0.1 * g, 0.0, 1.0).transpose(0, 2, 3, 1).astype(np.float32)
    return images[0] if single else images
    ### END SOLUTION


class GuidedReLUFunction(torch.autograd.Function):
    """ReLU whose backward pass follows the guided backpropagation rule.

    Forward: ``y = max(x, 0)``, exactly the ReLU. Backward, for the gradient ``R = dS/dy``
    arriving from the layer above (Springenberg et al. 2014, https://arxiv.org/abs/1412.6806,
    section 3.4 and figure 1):

        plain backprop:   dS/dx = R * [x > 0]             (gated by the forward input)
        "deconvnet":      dS/dx = R * [R > 0]             (gated by the incoming gradient)
        guided backprop:  dS/dx = R * [x > 0] * [R > 0]   (gated by both)

    so a unit passes gradient back only if it was active in the forward pass *and* its
    gradient is positive: only evidence *for* the class flows to the pixels.

    Usage: ``y = GuidedReLUFunction.apply(x)`` for any tensor shape. ``forward`` stores what
    ``backward`` needs with ``ctx.save_for_backward``; ``backward`` returns a new tensor and
    never modifies ``grad_output`` in place (autograd may hand the same gradient tensor to
    several branches, for example both sides of a ResNet's skip connection).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        ctx.save_for_backward(x)
        return x.clamp(min=0)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        (x,) = ctx.saved_tensors
        keep = (x > 0) & (grad_output > 0)
        return torch.where(keep, grad_output, torch.zeros_like(grad_output))
        ### END SOLUTION


def guided_backprop(model: nn.Module, x: torch.Tensor, targets=None) -> torch.Tensor:
    """The input gradient with every ``nn.ReLU`` module of ``model`` following the guided rule.

    Springenberg et al. 2014 (https://arxiv.org/abs/1412.6806). Same score, targets and
    hygiene as :func:`input_gradient` (call it); only the ReLUs' backward pass changes.

    How: for the duration of the call, put a guided module (a small ``nn.Module`` whose
    ``forward`` returns ``GuidedReLUFunction.apply(x)``) in the place of every ``nn.ReLU``
    module. A module sits in its parent under a name (``parent.named_children()`` lists them;
    ``setattr(parent, name, new_module)`` swaps one; ``model.modules()`` walks all parents).
    In ``finally``, put the *original* objects back, so that afterwards the model is exactly
    as before: same module objects, same ``inplace`` flags, plain ReLUs, also when the forward
    pass raises. (pytorch-grad-cam's ``GuidedBackpropReLUModel`` puts back *new*
    ``nn.ReLU()`` objects instead, with ``inplace=False``.)

    Supported: ReLUs that are ``nn.ReLU`` modules, including one module called several times
    (torchvision's ``BasicBlock`` calls its single ``nn.ReLU(inplace=True)`` twice: swapping the
    module swaps both uses) and in-place ones (the guided module computes out of place).
    ``F.relu`` / ``torch.relu`` called inside ``forward`` are not modules and stay plain ReLUs,
    as do other activations (``nn.ReLU6``, ``nn.GELU``, ...).

    Args:
        model: a classifier returning logits; afterwards exactly as before (modules, mode,
            no ``.grad`` on its parameters).
        x: input batch (B, 3, H, W); not modified.
        targets: ``None`` (predicted classes), one int, or a sequence of B class indices.

    Returns:
        tensor (B, 3, H, W): the guided gradient of each image's target score.
    """
    ### BEGIN SOLUTION
    class GuidedReLU(nn.Module):
        def forward(self, inputs):
            return GuidedReLUFunction.apply(inputs)

    guided = GuidedReLU()
    relus = [(parent, name, child) for parent in model.modules()
             for name, child in parent.named_children() if isinstance(child, nn.ReLU)]
    try:
        for parent, name, _ in relus:
            setattr(parent, name, guided)
        return input_gradient(model, x, targets)
    finally:
        for parent, name, relu in relus:
            setattr(parent, name, relu)
    ### END SOLUTION


def guided_grad_cam(model: nn.Module, layer_name: str, x: torch.Tensor, targets=None, cam_fn=None) -> torch.Tensor:
    """Guided Grad-CAM: guided backpropagation weighted by the Grad-CAM map.

    Selvaraju et al. (https://arxiv.org/abs/1610.02391, section 3.1): the Grad-CAM map of the
    class, upsampled to the input resolution, multiplies the guided backpropagation image
    pixel by pixel (the same map for the 3 colour channels):

        G[b, c, h, w] = guided_backprop(x)[b, c, h, w] * up(L_GradCAM)[b, h, w]

    Args:
        model, x, targets: as for :func:`guided_backprop` (both parts explain the same targets).
        layer_name: the Grad-CAM layer, for example ``"layer3"`` or ``"layer4"``.
        cam_fn: the Grad-CAM function, called as ``cam_fn(model, layer_name, x, targets=targets)``
            and returning a tensor of maps (B, h, w) in [0, 1]. Default: the
            notebook's ``grad_cam`` (your Assignment 2 function). If its maps are smaller than
            the image, upsample them to (H, W) with ``F.interpolate(..., mode="bilinear",
            align_corners=False)`` first.

    Returns:
        tensor (B, 3, H, W).
    """
    ### BEGIN SOLUTION
    cam_fn = grad_cam if cam_fn is None else cam_fn
    guided = guided_backprop(model, x, targets)
    maps = torch.as_tensor(cam_fn(model, layer_name, x, targets=targets)).to(guided)
    maps = F.interpolate(maps[:, None], size=guided.shape[-2:], mode="bilinear", align_corners=False)
    return guided * maps
    ### END SOLUTION
