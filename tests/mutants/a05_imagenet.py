"""Known-wrong Assignment 5 implementations. ``<student_name>__<mistake>``; each loses specific checks.

Checks are those of ``autograder/engine/checks/a05_imagenet.py``; ``MUTANTS`` (at the end) lists the
checks each must fail, and it must pass all the others (``tests/test_checks_a05.py``). In a
notebook ``region_shapley`` calls the student's ``coalition_scores``, so a mistake there spreads.

- last_conv_layer__last_before_classifier: the last module before the first ``nn.Linear`` (the
  "last feature layer" reading: AlexNet's ``avgpool``) -> check_last_conv_layer.
- coalition_scores__softmax: records softmax probabilities instead of the raw logit (the values
  of another game) -> check_coalition_scores and every region_shapley check.
- region_shapley__credits_previous_region: each step's marginal contribution goes to the region
  added one step *earlier* (the first step's to the last region): the values still sum to
  f(x) - f(baseline) -> check_region_shapley_additive, check_region_shapley_sampling.
- region_shapley__sums_orders: adds up the marginal contributions of every order and never
  divides by their number -> every region_shapley check.
- region_shapley__no_subtraction: the score v(S + {i}) after adding each region instead of the
  marginal contribution v(S + {i}) - v(S) -> every region_shapley check.
"""

import torch
from torch import nn

from solutions.shapley import coalition_scores


def last_conv_layer__last_before_classifier(model):
    names = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            break
        if name and len(list(module.children())) == 0:
            names.append(name)
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer")
    return names[-1]


def coalition_scores__softmax(model, x, target, regions, order, baseline=0.0, batch_size=32):
    if regions.shape != x.shape[-2:] or torch.unique(regions).numel() != int(regions.max()) + 1 or regions.min() != 0:
        raise ValueError("the region labels must be exactly 0 .. R-1, each used at least once")
    targets = torch.as_tensor(target).long().reshape(-1).expand(x.shape[0])
    images = torch.as_tensor(baseline, dtype=x.dtype).expand_as(x).clone()
    columns = []
    with torch.no_grad():
        columns.append(torch.softmax(model(images), dim=1)[torch.arange(len(x)), targets])
        for region in order:
            images = torch.where(regions == region, x, images)
            columns.append(torch.softmax(model(images), dim=1)[torch.arange(len(x)), targets])
    return torch.stack(columns, dim=1)


def region_shapley__credits_previous_region(model, x, target, regions, n_permutations=16, baseline=0.0, seed=0,
                                            batch_size=32):
    n_regions = int(regions.max()) + 1
    generator = torch.Generator().manual_seed(seed)
    orders = [torch.randperm(n_regions, generator=generator) for _ in range(n_permutations)]
    values = torch.zeros(x.shape[0], n_regions)
    for order in orders:
        scores = coalition_scores(model, x, target, regions, order, baseline, batch_size)
        values[:, order.roll(1)] += scores.diff(dim=1)
    return values / len(orders)


def region_shapley__sums_orders(model, x, target, regions, n_permutations=16, baseline=0.0, seed=0, batch_size=32):
    generator = torch.Generator().manual_seed(seed)
    total = 0
    for _ in range(n_permutations):
        order = torch.randperm(int(regions.max()) + 1, generator=generator)
        scores = coalition_scores(model, x, target, regions, order, baseline, batch_size)
        total = total + (scores[:, 1:] - scores[:, :-1])[:, order.argsort()]
    return total


def region_shapley__no_subtraction(model, x, target, regions, n_permutations=16, baseline=0.0, seed=0, batch_size=32):
    generator = torch.Generator().manual_seed(seed)
    orders = (torch.randperm(int(regions.max()) + 1, generator=generator) for _ in range(n_permutations))
    return torch.stack([coalition_scores(model, x, target, regions, order, baseline, batch_size)[:, 1:][:, order.argsort()]
                        for order in orders]).mean(dim=0)


def region_shapley__captum(model, x, target, regions, n_permutations=16, baseline=0.0, seed=0, batch_size=32):
    """captum's estimator instead of the student's own (not in MUTANTS: in this process captum is
    there; where graded functions run it cannot be imported: tests/test_grading_a05.py)."""
    from captum.attr import ShapleyValueSampling

    attributions = ShapleyValueSampling(model).attribute(x, baselines=baseline, target=target,
                                                         feature_mask=regions[None, None], n_samples=n_permutations)
    first_pixel = [(regions == region).nonzero()[0] for region in range(int(regions.max()) + 1)]
    return torch.stack([attributions[:, 0, row, column] for row, column in first_pixel], dim=1)


_SHAPLEY_CHECKS = frozenset({"check_region_shapley_additive", "check_region_shapley_efficiency",
                             "check_region_shapley_sampling"})
#: mutant -> the checks of ``autograder.engine.checks.a05_imagenet`` it must fail (and no other).
MUTANTS = {
    last_conv_layer__last_before_classifier: frozenset({"check_last_conv_layer"}),
    coalition_scores__softmax: _SHAPLEY_CHECKS | {"check_coalition_scores"},
    region_shapley__credits_previous_region: frozenset({"check_region_shapley_additive",
                                                        "check_region_shapley_sampling"}),
    region_shapley__sums_orders: _SHAPLEY_CHECKS,
    region_shapley__no_subtraction: _SHAPLEY_CHECKS,
}


# --- second round (issue 26): a bare number and a buffer that passed its own cell, now named -------


def coalition_scores__blanks_in_place(model, x, target, regions, order, baseline=0.0, batch_size=32):
    if regions.shape != x.shape[-2:] or torch.unique(regions).numel() != int(regions.max()) + 1 or regions.min() != 0:
        raise ValueError("the region labels must be exactly 0 .. R-1, each used at least once")
    if sorted(torch.as_tensor(order).tolist()) != list(range(int(regions.max()) + 1)):
        raise ValueError("order must be a permutation of the region labels")
    targets = torch.as_tensor(target).long().reshape(-1).expand(x.shape[0])
    blank = torch.as_tensor(baseline, dtype=x.dtype).expand_as(x)
    columns = []
    with torch.no_grad():
        for k in range(len(order) + 1):
            images = x  # wrong: no copy, the caller's images are blanked below
            absent = ~torch.isin(regions, torch.as_tensor(order[:k]))
            images[:, :, absent] = blank[:, :, absent]
            columns.append(model(images)[torch.arange(len(x)), targets])
    return torch.stack(columns, dim=1)


def coalition_scores__long_buffer(model, x, target, regions, order, baseline=0.0, batch_size=32):
    if regions.shape != x.shape[-2:] or torch.unique(regions).numel() != int(regions.max()) + 1 or regions.min() != 0:
        raise ValueError("the region labels must be exactly 0 .. R-1, each used at least once")
    if sorted(torch.as_tensor(order).tolist()) != list(range(int(regions.max()) + 1)):
        raise ValueError("order must be a permutation of the region labels")
    targets = torch.as_tensor(target).long().reshape(-1).expand(x.shape[0])
    images = torch.as_tensor(baseline, dtype=x.dtype).expand_as(x).clone()
    scores = torch.zeros(x.shape[0], len(order) + 1, dtype=torch.long)  # wrong: truncates every logit
    with torch.no_grad():
        scores[:, 0] = model(images)[torch.arange(len(x)), targets]
        for k, region in enumerate(order):
            images = torch.where(regions == region, x, images)
            scores[:, k + 1] = model(images)[torch.arange(len(x)), targets]
    return scores


def region_shapley__credits_by_position(model, x, target, regions, n_permutations=16, baseline=0.0, seed=0,
                                        batch_size=32):
    n_regions = int(regions.max()) + 1
    generator = torch.Generator().manual_seed(seed)
    values = torch.zeros(x.shape[0], n_regions)
    for _ in range(n_permutations):
        order = torch.randperm(n_regions, generator=generator)
        scores = coalition_scores(model, x, target, regions, order, baseline, batch_size)
        values += scores.diff(dim=1)  # wrong: column k is the k-th region of the order, not region k
    return values / n_permutations
