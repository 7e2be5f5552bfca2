"""Independent correct Assignment 5 implementations a good student might write; each must score full marks.

``ALTERNATIVES`` maps a student function to its alternatives (``<student_name>__<approach>``).
"""

import torch
from torch import nn

from solutions.shapley import coalition_scores


def last_conv_layer__reversed_search(model):
    for name, module in reversed(list(model.named_modules())):
        if isinstance(module, nn.Conv2d):
            return name
    raise ValueError("the model has no convolution")


def last_conv_layer__by_class_name(model):
    """By the class name, then the last of the list (registration order)."""
    convolutions = [name for name, module in model.named_modules() if type(module).__name__ == "Conv2d"]
    if len(convolutions) == 0:
        raise ValueError("no nn.Conv2d in the model")
    return convolutions[len(convolutions) - 1]


def coalition_scores__image_at_a_time(model, x, target, regions, order, baseline=0.0, batch_size=32):
    n_regions = int(regions.max()) + 1
    if tuple(regions.shape) != tuple(x.shape[-2:]) or set(regions.unique().tolist()) != set(range(n_regions)):
        raise ValueError("regions must be an (H, W) map of the labels 0 .. R-1")
    if sorted(torch.as_tensor(order).tolist()) != list(range(n_regions)):
        raise ValueError("order must be a permutation of the region labels")
    targets = torch.as_tensor(target).long().reshape(-1).expand(x.shape[0]).tolist()
    base = torch.as_tensor(baseline, dtype=x.dtype).expand_as(x)
    rows = []
    with torch.no_grad():
        for b, target_b in enumerate(targets):
            image, row = base[b].clone(), []
            row.append(model(image[None])[0, target_b])
            for region in torch.as_tensor(order).tolist():
                image = torch.where(regions == region, x[b], image)
                row.append(model(image[None])[0, target_b])
            rows.append(torch.stack(row))
    return torch.stack(rows)


def coalition_scores__whole_batch_per_step(model, x, target, regions, order, baseline=0.0, batch_size=32):
    order = torch.as_tensor(order).long()
    n_regions = int(regions.max()) + 1
    if regions.shape != x.shape[-2:] or regions.min() < 0 or torch.bincount(regions.flatten()).eq(0).any():
        raise ValueError("regions: labels 0 .. R-1, every one used")
    if order.numel() != n_regions or torch.bincount(order, minlength=n_regions).ne(1).any():
        raise ValueError("order is not a permutation")
    picked = torch.as_tensor(target).long().reshape(-1).expand(x.shape[0])
    shown = torch.zeros(x.shape[-2:], dtype=torch.bool)
    columns = []
    with torch.no_grad():
        for k in range(n_regions + 1):
            if k > 0:
                shown = shown | (regions == order[k - 1])
            columns.append(model(torch.where(shown, x, torch.as_tensor(baseline, dtype=x.dtype)))
                           .gather(1, picked[:, None])[:, 0])
    return torch.stack(columns, dim=1)


def region_shapley__running_mean(model, x, target, regions, n_permutations=16, baseline=0.0, seed=0,
                                 batch_size=32):
    n_regions = int(regions.max()) + 1
    generator = torch.Generator().manual_seed(seed)
    mean = torch.zeros(x.shape[0], n_regions)
    for t in range(1, n_permutations + 1):
        order = torch.randperm(n_regions, generator=generator)
        marginal = torch.empty_like(mean)
        marginal[:, order] = coalition_scores(model, x, target, regions, order, baseline, batch_size).diff(dim=1)
        mean += (marginal - mean) / t
    return mean


def region_shapley__antithetic_orders(model, x, target, regions, n_permutations=16, baseline=0.0, seed=0,
                                      batch_size=32):
    """Each random order is used forwards and backwards (antithetic sampling): still unbiased."""
    n_regions = int(regions.max()) + 1
    generator = torch.Generator().manual_seed(seed)
    orders = []
    for _ in range((n_permutations + 1) // 2):
        order = torch.randperm(n_regions, generator=generator)
        orders += [order, order.flip(0)]
    totals = torch.zeros(x.shape[0], n_regions, dtype=torch.float64)
    for order in orders[:n_permutations]:
        scores = coalition_scores(model, x, target, regions, order, baseline, batch_size).double()
        totals.index_add_(1, order, scores[:, 1:] - scores[:, :-1])
    return (totals / n_permutations).float()


ALTERNATIVES = {
    "last_conv_layer": [last_conv_layer__reversed_search, last_conv_layer__by_class_name],
    "coalition_scores": [coalition_scores__image_at_a_time, coalition_scores__whole_batch_per_step],
    "region_shapley": [region_shapley__running_mean, region_shapley__antithetic_orders],
}
