"""Correct Assignment 4 implementations that a good student might write. Each must get full marks.

``tests/mutants/a04_beyond.py`` holds known-*wrong* versions of the student functions; this file
holds known-*right* ones. Each is called ``<student_name>__<approach>``, has exactly the
signature of the reference (``solutions/layercam.py``, ``solutions/faithfulness.py``,
``solutions/sanity.py``) and differs from it in approach (its own hooks instead of the
Assignment 2 helpers, one forward pass for several layers, a loop over images instead of a
batch, a mask built by ``scatter`` instead of ranks, ranks by counting instead of
``searchsorted``, numpy instead of torch, ...), not in result: the same values up to float32
round-off and the same side-effect rules (the model unchanged: weights, modes, hooks, no
``.grad``; the caller's tensors untouched).

Each one is pasted into the notebook in place of the student function of its name, renamed (see
``tests.grading_harness.mutant_source``), so its body uses only what the notebook has: ``torch``,
``F``, ``nn``, ``np``, ``copy``, the Assignment 2 helpers ``activations_and_gradients`` and
``scale_cams`` (the hidden Layer-CAM checks put the reference ones in their place) and the other
student functions by their plain names (``deletion_curve``, ``spearman_rank_correlation``). The
imports below only make those names resolvable when this module is imported on its own.
``ALTERNATIVES`` (at the end) lists them by student function; every hidden check of
``autograder/engine/checks/a04_beyond.py`` must pass with each.
"""

import copy

import numpy as np
import torch
import torch.nn.functional as F

from solutions.faithfulness import deletion_curve
from solutions.gradcam import activations_and_gradients, scale_cams
from solutions.sanity import spearman_rank_correlation


# -------------------------------------------------------------------------------------- layer_cam


def layer_cam__einsum(model, layer_name, x, targets=None):
    activations, gradients, _ = activations_and_gradients(model, layer_name, x, targets)
    cams = torch.einsum("bkij,bkij->bij", gradients.clamp(min=0), activations)
    return scale_cams(cams, tuple(x.shape[-2:]))


def layer_cam__own_hooks(model, layer_name, x, targets=None):
    # No Assignment 2 helper for the gradient: a forward hook keeps the layer's output A (and
    # hands the rest of the network a copy, so that an in-place operation after the layer
    # cannot change A), torch.autograd.grad gives dS/dA.
    kept = []

    def keep(module, inputs, output):
        kept.append(output)
        return output.clone()

    handle = model.get_submodule(layer_name).register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = model(x)
            if targets is None:
                targets = logits.argmax(dim=1)
            elif isinstance(targets, int):
                targets = [targets] * logits.shape[0]
            targets = torch.as_tensor(targets, device=logits.device).long()
            score = logits[torch.arange(logits.shape[0], device=logits.device), targets].sum()
            activations = kept[0]
            (gradients,) = torch.autograd.grad(score, activations)
    finally:
        handle.remove()
    cams = (F.relu(gradients) * activations).detach().sum(dim=1)
    return scale_cams(cams, tuple(x.shape[-2:]))


def layer_cam__own_scaling(model, layer_name, x, targets=None):
    # The helper for A and G, the post-processing written out (ReLU, min-max, upsample, again).
    activations, gradients, _ = activations_and_gradients(model, layer_name, x, targets)
    cams = (torch.where(gradients > 0, gradients, torch.zeros_like(gradients)) * activations).sum(dim=1)

    def min_max(maps):
        flat = maps.flatten(1)
        flat = flat - flat.min(dim=1, keepdim=True).values
        return (flat / (flat.max(dim=1, keepdim=True).values + 1e-7)).view_as(maps)

    scaled = min_max(cams.clamp(min=0))
    upsampled = F.interpolate(scaled.unsqueeze(1), size=tuple(x.shape[-2:]), mode="bilinear",
                              align_corners=False).squeeze(1)
    return min_max(upsampled.clamp(min=0))


# -------------------------------------------------------------------------------- fuse_layer_cams


def fuse_layer_cams__running_sum(model, layer_names, x, targets=None):
    height, width = x.shape[-2:]
    total = None
    for layer_name in layer_names:
        activations, gradients, _ = activations_and_gradients(model, layer_name, x, targets)
        cams = torch.einsum("bkij,bkij->bij", F.relu(gradients), activations)
        scaled = scale_cams(cams, (cams.shape[1], cams.shape[2]))
        upsampled = F.interpolate(scaled.unsqueeze(1), size=(height, width), mode="bilinear",
                                  align_corners=False).squeeze(1)
        total = upsampled if total is None else total + upsampled
    return scale_cams(total / len(layer_names), (height, width))


def fuse_layer_cams__one_pass_hooks(model, layer_names, x, targets=None):
    # One forward pass with a hook on every layer, one autograd.grad for all their activations
    # (what pytorch-grad-cam does); the hooks are removed in finally.
    layer_names = list(layer_names)
    kept = {}
    handles = []

    def keeper(index):
        def keep(module, inputs, output):
            kept[index] = output
            return output.clone()
        return keep

    try:
        for index, layer_name in enumerate(layer_names):
            handles.append(model.get_submodule(layer_name).register_forward_hook(keeper(index)))
        with torch.enable_grad():
            logits = model(x)
            if targets is None:
                chosen = logits.argmax(dim=1)
            else:
                chosen = torch.as_tensor(targets, dtype=torch.long, device=logits.device).reshape(-1)
                chosen = chosen.expand(logits.shape[0])
            score = logits.gather(1, chosen[:, None]).sum()
            activations = [kept[index] for index in range(len(layer_names))]
            gradients = torch.autograd.grad(score, activations)
    finally:
        for handle in handles:
            handle.remove()
    size = tuple(x.shape[-2:])
    maps = []
    for activation, gradient in zip(activations, gradients):
        cams = (gradient.clamp(min=0) * activation).detach().sum(dim=1)
        scaled = scale_cams(cams, tuple(cams.shape[-2:]))
        maps.append(F.interpolate(scaled[:, None], size=size, mode="bilinear", align_corners=False)[:, 0])
    return scale_cams(torch.stack(maps, dim=1).mean(dim=1), size)


# --------------------------------------------------------------------------------- deletion_curve


def deletion_curve__per_image_loop(model, x, saliency, target, steps=16, baseline=0.0):
    # One image at a time; all the steps of an image go through the model as one batch.
    batch, channels, height, width = x.shape
    n_pixels = height * width
    baseline = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand(batch, channels, height, width)
    if isinstance(target, int):
        target = [target] * batch
    target = torch.as_tensor(target).long().tolist()
    curves = []
    with torch.no_grad():
        for b in range(batch):
            order = torch.sort(saliency[b].flatten(), descending=True, stable=True).indices.to(x.device)
            image, empty = x[b].reshape(channels, n_pixels), baseline[b].reshape(channels, n_pixels)
            perturbed = []
            for step in range(steps + 1):
                current = image.clone()
                removed = order[:(step * n_pixels) // steps]
                current[:, removed] = empty[:, removed]
                perturbed.append(current.view(channels, height, width))
            probabilities = F.softmax(model(torch.stack(perturbed)), dim=1)
            curves.append(probabilities[:, target[b]])
    return torch.stack(curves)


def deletion_curve__scatter_mask_blend(model, x, saliency, target, steps=16, baseline=0.0):
    # A 0/1 mask of the removed pixels, built by scatter from the order, blends x and baseline.
    batch, _, height, width = x.shape
    n_pixels = height * width
    order = (-saliency.reshape(batch, -1)).argsort(dim=1, stable=True).to(x.device)  # descending, stable
    baseline = torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
    target = torch.as_tensor(target, dtype=torch.long, device=x.device).reshape(-1).expand(batch)
    columns = []
    for step in range(steps + 1):
        n_removed = (step * n_pixels) // steps
        mask = torch.zeros(batch, n_pixels, dtype=x.dtype, device=x.device)
        mask.scatter_(1, order[:, :n_removed], 1.0)
        mask = mask.view(batch, 1, height, width)
        with torch.no_grad():
            probabilities = model(x * (1 - mask) + baseline * mask).softmax(dim=1)
        columns.append(probabilities[torch.arange(batch, device=x.device), target])
    return torch.stack(columns, dim=1)


def deletion_curve__incremental_copy(model, x, saliency, target, steps=16, baseline=0.0):
    # One working copy of x; each step copies the next chunk of baseline pixels into it.
    batch, channels, height, width = x.shape
    n_pixels = height * width
    order = saliency.reshape(batch, n_pixels).argsort(dim=1, descending=True, stable=True).to(x.device)
    source = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x).reshape(batch, channels, -1)
    working = x.detach().clone().reshape(batch, channels, n_pixels)
    rows = torch.arange(batch, device=x.device)[:, None]
    if not isinstance(target, torch.Tensor):
        target = torch.tensor(target) if isinstance(target, (list, tuple)) else torch.full((batch,), int(target))
    target = target.to(x.device).long().expand(batch)
    curve = torch.empty(batch, steps + 1, dtype=x.dtype, device=x.device)
    done = 0
    with torch.no_grad():
        for step in range(steps + 1):
            upto = (step * n_pixels) // steps
            chunk = order[:, done:upto]  # (B, pixels of this step)
            working.permute(0, 2, 1)[rows, chunk] = source.permute(0, 2, 1)[rows, chunk]
            done = upto
            logits = model(working.view(batch, channels, height, width))
            curve[:, step] = F.softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
    return curve


# -------------------------------------------------------------------------------- insertion_curve


def insertion_curve__own_ranks(model, x, saliency, target, steps=16, baseline=0.0):
    # Written out, not through deletion_curve: the rank of every pixel, then x where rank < n_k.
    batch, _, height, width = x.shape
    n_pixels = height * width
    order = saliency.reshape(batch, n_pixels).argsort(dim=1, descending=True, stable=True).to(x.device)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n_pixels, device=x.device).repeat(batch, 1))
    rank = rank.reshape(batch, 1, height, width)
    start = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)
    target = torch.as_tensor(target, dtype=torch.long, device=x.device).reshape(-1).expand(batch)
    probabilities = []
    with torch.no_grad():
        for step in range(steps + 1):
            inserted = rank < (step * n_pixels) // steps
            logits = model(torch.where(inserted, x, start))
            probabilities.append(F.softmax(logits, dim=1)[torch.arange(batch, device=x.device), target])
    return torch.stack(probabilities, dim=1)


def insertion_curve__one_batched_forward(model, x, saliency, target, steps=16, baseline=0.0):
    # Every step of every image in one tensor (steps + 1, B, C, H, W) and one forward pass.
    batch, channels, height, width = x.shape
    n_pixels = height * width
    order = saliency.reshape(batch, n_pixels).sort(dim=1, descending=True, stable=True).indices.to(x.device)
    counts = torch.tensor([(k * n_pixels) // steps for k in range(steps + 1)], device=x.device)
    position = torch.empty_like(order).scatter_(1, order, torch.arange(n_pixels, device=x.device).expand(batch, -1))
    inserted = position[None] < counts[:, None, None]  # (steps + 1, B, N)
    inserted = inserted.view(steps + 1, batch, 1, height, width)
    start = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)
    images = torch.where(inserted, x[None], start[None]).reshape(-1, channels, height, width)
    with torch.no_grad():
        probabilities = F.softmax(model(images), dim=1).view(steps + 1, batch, -1)
    target = torch.as_tensor(target, dtype=torch.long, device=x.device).reshape(-1).expand(batch)
    return probabilities[:, torch.arange(batch, device=x.device), target].T.contiguous()


def insertion_curve__deletion_from_baseline_keywords(model, x, saliency, target, steps=16, baseline=0.0):
    # The hint, with the start image materialised per image: "delete" the baseline image to x.
    start = torch.zeros_like(x) + torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
    return deletion_curve(model=model, x=start, saliency=saliency, target=target, steps=steps, baseline=x.clone())


# ------------------------------------------------------------------------------- area_under_curve


def area_under_curve__explicit_trapezoid_loop(curve):
    points = curve.shape[-1]
    width = 1.0 / (points - 1)
    area = torch.zeros(curve.shape[:-1], dtype=curve.dtype, device=curve.device)
    for i in range(points - 1):
        area = area + width * (curve[..., i] + curve[..., i + 1]) / 2
    return area


def area_under_curve__sum_minus_half_ends(curve):
    return (curve.sum(dim=-1) - (curve[..., 0] + curve[..., -1]) / 2) / (curve.shape[-1] - 1)


def area_under_curve__weights_matmul(curve):
    weights = torch.ones(curve.shape[-1], dtype=curve.dtype, device=curve.device)
    weights[0] = weights[-1] = 0.5
    return curve @ (weights / (curve.shape[-1] - 1))


# ---------------------------------------------------------------------- spearman_rank_correlation


def spearman_rank_correlation__argsort_twice(a, b):
    # Ordinal ranks by argsort of argsort, then each group of tied values gets its mean rank.
    def average_ranks(row):
        ordinal = row.argsort(stable=True).argsort().double()
        _, group = torch.unique(row, return_inverse=True)
        sums = torch.zeros(int(group.max()) + 1, dtype=torch.float64).index_add_(0, group, ordinal)
        counts = torch.zeros_like(sums).index_add_(0, group, torch.ones_like(ordinal))
        return (sums / counts)[group]

    a = a.detach().reshape(a.shape[0], -1).double().cpu()
    b = b.detach().reshape(b.shape[0], -1).double().cpu()
    results = []
    for row_a, row_b in zip(a, b):
        ra, rb = average_ranks(row_a), average_ranks(row_b)
        ra, rb = ra - ra.mean(), rb - rb.mean()
        norm_a, norm_b = ra.pow(2).sum().sqrt(), rb.pow(2).sum().sqrt()
        if norm_a == 0 and norm_b == 0:
            results.append(1.0)
        elif norm_a == 0 or norm_b == 0:
            results.append(0.0)
        else:
            results.append(float((ra * rb).sum() / (norm_a * norm_b)))
    return torch.tensor(results, dtype=torch.float32)


def spearman_rank_correlation__pairwise_counts(a, b):
    # rank(v) = #{values < v} + (#{values == v} - 1) / 2, counted by broadcasting (B, n, n).
    def average_ranks(values):
        less = (values[:, None, :] < values[:, :, None]).sum(dim=2)
        equal = (values[:, None, :] == values[:, :, None]).sum(dim=2)
        return less.double() + (equal.double() - 1) / 2

    ra = average_ranks(a.detach().flatten(1).double())
    rb = average_ranks(b.detach().flatten(1).double())
    ra = ra - ra.mean(dim=1, keepdim=True)
    rb = rb - rb.mean(dim=1, keepdim=True)
    covariance = (ra * rb).mean(dim=1)
    std_a, std_b = ra.pow(2).mean(dim=1).sqrt(), rb.pow(2).mean(dim=1).sqrt()
    constant_a, constant_b = std_a == 0, std_b == 0
    rho = covariance / torch.where(constant_a | constant_b, torch.ones_like(std_a), std_a * std_b)
    rho = torch.where(constant_a & constant_b, torch.ones_like(rho), rho)
    rho = torch.where(constant_a ^ constant_b, torch.zeros_like(rho), rho)
    return rho.float()


def spearman_rank_correlation__numpy_unique(a, b):
    # numpy: the values of a row sorted, and for each distinct value the first and last rank. The
    # helper happens to carry scipy's name: a name is no evidence of library use.
    def rankdata(row):
        values, inverse, counts = np.unique(row, return_inverse=True, return_counts=True)
        first = np.cumsum(counts) - counts
        return (first + (counts - 1) / 2.0)[inverse.reshape(-1)]

    def correlation(row_a, row_b):
        ra, rb = rankdata(row_a), rankdata(row_b)
        ra, rb = ra - ra.mean(), rb - rb.mean()
        denominator = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
        if denominator == 0:
            return 1.0 if (ra == 0).all() and (rb == 0).all() else 0.0
        return float(np.dot(ra, rb) / denominator)

    rows_a = a.detach().cpu().double().numpy().reshape(len(a), -1)
    rows_b = b.detach().cpu().double().numpy().reshape(len(b), -1)
    return torch.tensor([correlation(ra, rb) for ra, rb in zip(rows_a, rows_b)], dtype=torch.float32)


# ------------------------------------------------------------------------ cascading_randomization


def cascading_randomization__named_parameter_prefix(model, explain_fn, x, targets=None, layer_order=None, seed=0):
    # The stage's parameters picked from the copy's named_parameters() by their name prefix
    # (the same order as submodule.parameters()); correlations averaged in Python.
    if targets is None:
        with torch.no_grad():
            targets = model(x).argmax(dim=1)
    original = explain_fn(model, x, targets)
    damaged = copy.deepcopy(model)
    if layer_order is None:
        layer_order = [name for name, child in reversed(list(damaged.named_children()))
                       if any(True for _ in child.parameters())]
    generator = torch.Generator()
    generator.manual_seed(seed)

    def mean_correlation():
        rhos = spearman_rank_correlation(original, explain_fn(damaged, x, targets))
        return sum(rhos.tolist()) / len(rhos)

    results = {"original": mean_correlation()}
    for stage in layer_order:
        for name, parameter in damaged.named_parameters():
            if name.startswith(stage + "."):
                noise = torch.randn(parameter.shape, generator=generator).to(parameter.device)
                with torch.no_grad():
                    parameter.copy_((parameter.mean() + parameter.std() * noise).to(parameter))
        results[stage] = mean_correlation()
    return results


def cascading_randomization__data_assignment(model, explain_fn, x, targets=None, layer_order=None, seed=0):
    # The copy first; the targets from the original model; each parameter's .data replaced.
    randomized = copy.deepcopy(model)
    if targets is None:
        with torch.no_grad():
            targets = model(x).argmax(dim=1).tolist()
    original = explain_fn(model, x, targets)
    if layer_order is None:
        layer_order = []
        for name, child in randomized.named_children():
            if len(list(child.parameters())):
                layer_order.insert(0, name)
    generator = torch.Generator().manual_seed(seed)
    modules = dict(randomized.named_modules())
    stages = ["original"] + list(layer_order)
    correlations = {}
    for stage in stages:
        if stage != "original":
            for parameter in modules[stage].parameters():
                mean, std = parameter.data.mean(), parameter.data.std()
                noise = torch.randn(tuple(parameter.shape), generator=generator).to(parameter.device)
                parameter.data = (mean + std * noise).to(parameter.dtype)
        maps = explain_fn(randomized, x, targets)
        correlations[stage] = spearman_rank_correlation(original, maps).mean().item()
    return correlations


def cascading_randomization__normal_in_place(model, explain_fn, x, targets=None, layer_order=None, seed=0):
    # normal_(mean, std, generator=...) draws the same Gaussians as mean + std * randn (on the CPU,
    # where the generator lives), copied into the parameter.
    if targets is None:
        with torch.no_grad():
            targets = model(x).argmax(dim=1)
    original = explain_fn(model, x, targets)
    randomized = copy.deepcopy(model)
    if layer_order is None:
        names = [name for name, child in randomized.named_children() if list(child.parameters())]
        layer_order = names[::-1]
    generator = torch.Generator().manual_seed(seed)
    scores = {"original": spearman_rank_correlation(original, explain_fn(randomized, x, targets)).mean().item()}
    for stage in layer_order:
        with torch.no_grad():
            for parameter in randomized.get_submodule(stage).parameters():
                mean, std = parameter.mean().item(), parameter.std().item()
                drawn = torch.empty(parameter.shape, dtype=parameter.dtype).normal_(mean, std, generator=generator)
                parameter.copy_(drawn)
        scores[stage] = spearman_rank_correlation(original, explain_fn(randomized, x, targets)).mean().item()
    return scores


ALTERNATIVES = {
    "layer_cam": [layer_cam__einsum, layer_cam__own_hooks, layer_cam__own_scaling],
    "fuse_layer_cams": [fuse_layer_cams__running_sum, fuse_layer_cams__one_pass_hooks],
    "deletion_curve": [deletion_curve__per_image_loop, deletion_curve__scatter_mask_blend,
                       deletion_curve__incremental_copy],
    "insertion_curve": [insertion_curve__own_ranks, insertion_curve__one_batched_forward,
                        insertion_curve__deletion_from_baseline_keywords],
    "area_under_curve": [area_under_curve__explicit_trapezoid_loop, area_under_curve__sum_minus_half_ends,
                         area_under_curve__weights_matmul],
    "spearman_rank_correlation": [spearman_rank_correlation__argsort_twice, spearman_rank_correlation__pairwise_counts,
                                  spearman_rank_correlation__numpy_unique],
    "cascading_randomization": [cascading_randomization__named_parameter_prefix,
                                cascading_randomization__data_assignment, cascading_randomization__normal_in_place],
}
