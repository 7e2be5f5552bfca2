"""Reference solutions of Assignment 4, part 2: is a heatmap faithful to the model?

A heatmap looks convincing when it covers the object, but that says nothing about whether the
*model* uses those pixels. The causal metrics of Petsiuk, Das, Saenko ("RISE: Randomized Input
Sampling for Explanation of Black-box Models", BMVC 2018, https://arxiv.org/abs/1806.07421)
ask the model instead:

- **Deletion**: remove the pixels in order of decreasing saliency and watch the probability of
  the explained class. A faithful map names the pixels the decision rests on first, so the
  probability falls fast: a *low* area under the curve is good.
- **Insertion**: start from an image with the information removed (a blurred copy, or the mean
  image) and put the pixels back in the same order. A faithful map makes the probability rise
  fast: a *high* area under the curve is good.

Conventions of this kit (every function below follows them):

- A pixel is a spatial position (h, w): removing it sets all its channels.
- Order: saliency descending, per image; ties keep the pixel order of ``saliency.flatten()``
  (a *stable* sort), so the curves are deterministic.
- ``steps`` equal chunks: after step ``k`` (k = 0 .. steps) the first ``(k * N) // steps`` pixels
  of the order (N = H * W) are changed. Step 0 is the untouched image, step ``steps`` the fully
  changed one, so a curve has ``steps + 1`` points.
- Recorded: the softmax probability of the *given* target class, ``softmax(model(x_k))[b, t_b]``,
  not of whatever class the perturbed image is now predicted as.
- Inputs are normalised images, so ``baseline=0.0`` is the dataset's mean colour.

Student functions use only ``torch`` and ``torch.nn.functional as F`` (and each other).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def deletion_curve(model: nn.Module, x: torch.Tensor, saliency: torch.Tensor, target, steps: int = 16,
                   baseline=0.0) -> torch.Tensor:
    """The deletion curve of Petsiuk et al. 2018 (arXiv 1806.07421): remove the most salient pixels first.

    For each image ``b``, with its N = H * W pixels sorted by ``saliency[b]`` in descending order
    (stable: equal saliencies keep their flattened order), step ``k`` replaces the first
    ``n_k = (k * N) // steps`` pixels of that order by the baseline, in all channels:

        x_k[b, :, h, w] = baseline[b, :, h, w]   if (h, w) is among the first n_k pixels
                          x[b, :, h, w]          otherwise
        curve[b, k]     = softmax(model(x_k))[b, target[b]]                 k = 0, ..., steps

    Args:
        model: a classifier returning logits (B, K), in the mode you want (eval); it is run
            without gradients and not changed.
        x: normalised images (B, C, H, W).
        saliency: heatmaps (B, H, W) at the image's resolution (larger = more important).
        target: the explained class of each image: B class indices (tensor or list) or one ``int``.
        steps: number of equal chunks; ``(k * N) // steps`` pixels are removed after step k.
        baseline: what a removed pixel becomes: a number (``0.0`` is the mean colour in
            normalised space) or a tensor that broadcasts to (B, C, H, W), e.g. a blurred ``x``.

    Returns:
        the probabilities (B, steps + 1); column 0 is the probability on the untouched image.
    """
    ### BEGIN SOLUTION
    batch, _, height, width = x.shape
    n_pixels = height * width
    order = saliency.reshape(batch, n_pixels).to(x.device).argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n_pixels, device=order.device).expand(batch, n_pixels))
    rank = rank.view(batch, 1, height, width)
    baseline = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)
    target = torch.as_tensor(target, dtype=torch.long, device=x.device).expand(batch)
    probabilities = []
    with torch.no_grad():
        for step in range(steps + 1):
            removed = rank < (step * n_pixels) // steps
            logits = model(torch.where(removed, baseline, x))
            probabilities.append(F.softmax(logits, dim=1).gather(1, target[:, None])[:, 0])
    return torch.stack(probabilities, dim=1)
    ### END SOLUTION


def insertion_curve(model: nn.Module, x: torch.Tensor, saliency: torch.Tensor, target, steps: int = 16,
                    baseline=0.0) -> torch.Tensor:
    """The insertion curve of Petsiuk et al. 2018 (arXiv 1806.07421): put the most salient pixels back first.

    Start from the baseline image (no information about the object: Petsiuk et al. use a blurred
    copy of ``x``; ``0.0`` is the mean image) and, in the same order and chunks as
    :func:`deletion_curve`, copy pixels of ``x`` into it:

        x_k[b, :, h, w] = x[b, :, h, w]          if (h, w) is among the first n_k pixels
                          baseline[b, :, h, w]   otherwise
        curve[b, k]     = softmax(model(x_k))[b, target[b]]                 k = 0, ..., steps

    Column 0 is the probability on the baseline image, column ``steps`` on ``x`` itself.
    Hint: this is a deletion curve that starts from the baseline image and "removes" its pixels
    to ``x``.

    Args:
        model, x, saliency, target, steps: as for :func:`deletion_curve`.
        baseline: the starting image: a number or a tensor that broadcasts to (B, C, H, W).

    Returns:
        the probabilities (B, steps + 1).
    """
    ### BEGIN SOLUTION
    start = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)
    return deletion_curve(model, start, saliency, target, steps=steps, baseline=x)
    ### END SOLUTION


def area_under_curve(curve: torch.Tensor) -> torch.Tensor:
    """Area under each curve, by the trapezoidal rule, with the x-axis running from 0 to 1.

    A curve of T = steps + 1 points ``c_0 .. c_{T-1}`` sits at x = 0, 1/(T-1), ..., 1:

        AUC = 1/(T-1) * ( c_0 / 2 + c_1 + ... + c_{T-2} + c_{T-1} / 2 )

    so a constant curve ``p`` has AUC ``p`` and the AUC of probabilities lies in [0, 1]
    (``torch.trapezoid`` computes exactly this).

    Args:
        curve: (B, T) values, one curve per row, T >= 2.

    Returns:
        (B,) areas.
    """
    ### BEGIN SOLUTION
    return torch.trapezoid(curve, dx=1.0 / (curve.shape[-1] - 1), dim=-1)
    ### END SOLUTION
