"""Reference solution of Assignment 5, part 2: Shapley values of image regions, by permutation sampling.

**Shapley values** (L. S. Shapley, "A value for n-person games", 1953) share a total payoff
among players. Here the players are the R regions of an image (a grid or superpixels, given as a
label map), and the payoff of a coalition S of regions is the model's score when the regions in
S show the image and all others show a baseline:

    v(S) = f(x_S)[target],    x_S = x on the regions in S, baseline elsewhere

The Shapley value of region i is its marginal contribution averaged over all orders in which
the regions could be added, equivalently over all coalitions of the others:

    phi_i = sum_{S not containing i} |S|! (R - |S| - 1)! / R!  * (v(S + {i}) - v(S))
          = E_{pi uniformly random order} [ v(Pre_pi(i) + {i}) - v(Pre_pi(i)) ]

(``Pre_pi(i)``: the regions before ``i`` in the order ``pi``). They are the only attribution with
*efficiency* (``sum_i phi_i = v(all) - v(empty) = f(x) - f(baseline)``), *symmetry*, *dummy*
(a region that never changes the score gets 0) and *linearity*. For an additive model,
``v(S) = c + sum_{i in S} a_i``, every marginal contribution of i is ``a_i``: ``phi_i = a_i``.

The exact value needs all 2^R coalitions. **Permutation sampling** (Castro, Gomez, Tejada 2009;
Strumbelj & Kononenko, "Explaining prediction models and individual predictions with feature
contributions", KAIS 2014) draws ``n`` random orders and averages the marginal contributions
along each: ``R + 1`` evaluations of the model per order, an unbiased estimate whose standard
error is ``sigma_i / sqrt(n)`` (``sigma_i``: the standard deviation of region i's marginal
contribution over random orders). Along every order the contributions telescope to
``f(x) - f(baseline)``, so efficiency holds exactly for any ``n``. captum's
``ShapleyValueSampling`` is this estimator (with ``feature_mask`` = the region map and
``n_samples`` = the number of orders); ``ShapleyValues`` enumerates every order.

Student functions use only ``torch`` and ``nn``.
"""

from __future__ import annotations

import torch
from torch import nn


def coalition_scores(model: nn.Module, x: torch.Tensor, target, regions: torch.Tensor, order: torch.Tensor,
                     baseline=0.0, batch_size: int = 32) -> torch.Tensor:
    """The class score along one order of the regions: start from the baseline, add one region a step.

    ``x_k`` shows the image on the first ``k`` regions of ``order`` and the baseline elsewhere
    (``x_0`` is the baseline image, ``x_R`` the image itself); the result is

        scores[b, k] = model(x_k)[b, target_b]          k = 0, ..., R

    so ``scores[b, k + 1] - scores[b, k]`` is the marginal contribution of region ``order[k]``
    to the coalition of the regions before it.

    Args:
        model: a classifier returning logits (B', K); run without gradients, R + 1 images per
            input image, in batches of at most ``batch_size`` images; not changed.
        x: images (B, C, H, W).
        target: one ``int`` for every image, or B class indices.
        regions: integer label map (H, W) with the labels 0 .. R-1, each used at least once.
        order: a permutation of 0 .. R-1 (1-D integer tensor).
        baseline: what an absent region shows: a number or a tensor broadcasting to (B, C, H, W).
        batch_size: largest number of images per forward pass.

    Returns:
        float tensor (B, R + 1) on ``x``'s device: raw scores (logits), column 0 the baseline's.

    Raises:
        ValueError: ``regions`` is not (H, W), its labels are not exactly 0 .. R-1, or ``order``
            is not a permutation of them.
    """
    ### BEGIN SOLUTION
    batch, _, height, width = x.shape
    if regions.shape != (height, width):
        raise ValueError(f"regions must be a label map of shape {(height, width)}, got {tuple(regions.shape)}")
    regions = regions.to(x.device).long()
    n_regions = int(regions.max()) + 1
    if int(regions.min()) != 0 or torch.unique(regions).numel() != n_regions:
        raise ValueError("the region labels must be exactly 0 .. R-1, each used at least once")
    order = torch.as_tensor(order, device=x.device).long()
    if not torch.equal(order.sort().values, torch.arange(n_regions, device=x.device)):
        raise ValueError(f"order must be a permutation of 0 .. {n_regions - 1}")
    targets = torch.as_tensor(target, device=x.device).long().reshape(-1).expand(batch)
    baseline = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)
    one_hot = nn.functional.one_hot(regions, n_regions).permute(2, 0, 1).bool()  # (R, H, W)
    # present[k]: the pixels of the first k regions of the order (k = 0 .. R).
    present = torch.cat([torch.zeros_like(one_hot[:1]), one_hot[order].cumsum(dim=0).bool()])
    scores = torch.empty(batch, n_regions + 1, dtype=x.dtype, device=x.device)
    with torch.no_grad():
        for b in range(batch):
            images = torch.where(present[:, None], x[b], baseline[b])  # (R + 1, C, H, W)
            for start in range(0, n_regions + 1, batch_size):
                scores[b, start:start + batch_size] = model(images[start:start + batch_size])[:, targets[b]]
    return scores
    ### END SOLUTION


def region_shapley(model: nn.Module, x: torch.Tensor, target, regions: torch.Tensor, n_permutations: int = 16,
                   baseline=0.0, seed: int = 0, batch_size: int = 32) -> torch.Tensor:
    """Shapley values of the regions of each image for one class score, by permutation sampling.

    Draw ``n_permutations`` random orders of the R regions, ``torch.randperm(R, generator=g)`` with
    ``g = torch.Generator().manual_seed(seed)``; along each order ``pi`` the scores
    ``v_0 .. v_R = coalition_scores(...)`` give region ``pi[k]`` the marginal contribution
    ``v_{k+1} - v_k``. The result is the average over the orders:

        phi[b, i] = 1/n * sum_pi (v(Pre_pi(i) + {i}) - v(Pre_pi(i)))

    so ``phi[b].sum() = f(x)[b, t_b] - f(baseline)[b, t_b]`` for any ``n_permutations``
    (efficiency), and for an additive model every order gives every region its own term.

    Args:
        model, x, target, regions, baseline, batch_size: as for :func:`coalition_scores`
            (the model runs on ``n_permutations * (R + 1)`` images per input image).
        n_permutations: how many random orders to average over (at least 1).
        seed: seed of the generator the orders are drawn from (the same seed, the same result).

    Returns:
        float tensor (B, R) on ``x``'s device: ``phi[b, i]`` for region ``i`` of image ``b``, in the
        units of the score (a logit).

    Raises:
        ValueError: ``n_permutations < 1``, or bad ``regions`` (see :func:`coalition_scores`).
    """
    ### BEGIN SOLUTION
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be at least 1, got {n_permutations}")
    n_regions = int(regions.max()) + 1
    orders = torch.Generator().manual_seed(seed)  # the random orders' generator
    values = torch.zeros(x.shape[0], n_regions, dtype=torch.float64, device=x.device)
    for _ in range(n_permutations):
        order = torch.randperm(n_regions, generator=orders).to(x.device)
        scores = coalition_scores(model, x, target, regions, order, baseline, batch_size)
        values[:, order] += (scores[:, 1:] - scores[:, :-1]).double()
    return (values / n_permutations).to(x.dtype)
    ### END SOLUTION


def exact_region_shapley(model: nn.Module, x: torch.Tensor, target, regions: torch.Tensor,
                         baseline=0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact Shapley values of the regions, and the spread of the marginal contributions (grader-side).

    Evaluates the model on all 2^R coalitions (so only for small R), then

        phi_i = sum_{S without i} w(|S|) (v(S + {i}) - v(S)),   w(s) = s! (R - s - 1)! / R!

    and ``sigma_i^2 = sum_S w(|S|) (v(S + {i}) - v(S))^2 - phi_i^2``: the variance of region i's
    marginal contribution along a uniformly random order, so that permutation sampling with
    ``n`` orders has standard error ``sigma_i / sqrt(n)``. Computed in float64.

    Returns:
        ``(phi, sigma)``, each (B, R) float64.
    """
    from math import factorial

    batch, _, height, width = x.shape
    n_regions = int(regions.max()) + 1
    targets = torch.as_tensor(target).long().reshape(-1).expand(batch)
    baseline = torch.as_tensor(baseline, dtype=x.dtype).expand_as(x)
    one_hot = nn.functional.one_hot(regions.long(), n_regions).permute(2, 0, 1).bool()
    coalitions = torch.tensor([[(mask >> i) & 1 for i in range(n_regions)] for mask in range(2 ** n_regions)],
                              dtype=torch.bool)  # (2^R, R); row m = the bits of m
    pixels = (coalitions.float() @ one_hot.flatten(1).float()).bool().view(-1, 1, height, width)
    with torch.no_grad():
        v = torch.stack([model(torch.where(pixels, x[b], baseline[b]))[:, targets[b]] for b in range(batch)]).double()
    weights = torch.tensor([factorial(s) * factorial(n_regions - s - 1) / factorial(n_regions)
                            for s in range(n_regions)], dtype=torch.float64)
    phi = torch.zeros(batch, n_regions, dtype=torch.float64)
    second_moment = torch.zeros_like(phi)
    for i in range(n_regions):
        without = [m for m in range(2 ** n_regions) if not (m >> i) & 1]
        w = weights[[bin(m).count("1") for m in without]]
        marginal = v[:, [m | (1 << i) for m in without]] - v[:, without]
        phi[:, i] = (w * marginal).sum(dim=1)
        second_moment[:, i] = (w * marginal ** 2).sum(dim=1)
    return phi, (second_moment - phi ** 2).clamp(min=0).sqrt()
