"""Reference solutions of Assignment 4, part 3: sanity checks for saliency maps.

Adebayo, Gilmer, Muelly, Goodfellow, Hardt, Kim, "Sanity Checks for Saliency Maps", NeurIPS 2018
(https://arxiv.org/abs/1810.03292) ask a simple question: if an explanation is about what the
*model* learned, it must change when the learned weights are destroyed. Their *cascading
randomisation* test re-draws the weights layer by layer from the output back to the input,
recomputes the explanation after every layer, and measures how similar it still is to the
original one. A method whose maps barely change (they found this for guided backpropagation)
is mostly showing the image, an edge detector, not the model's reasoning.

Similarity is the Spearman rank correlation between the two maps of an image: only the
*ordering* of the pixels matters, not the scale (which the min-max scaling changes anyway).

Student functions use only ``torch``, the standard library's ``copy`` and each other.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def spearman_rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation between ``a[i]`` and ``b[i]``, for every i of the batch.

    Flatten each map to a vector of n values, replace every value by its rank (0 = smallest)
    and take the Pearson correlation of the two rank vectors:

        r_a = ranks(a[i]),  r_b = ranks(b[i]),  centred: r - mean(r)
        rho[i] = sum(r_a * r_b) / sqrt( sum(r_a^2) * sum(r_b^2) )          in [-1, 1]

    Ties get the *average* of the ranks they span (values 5, 7, 7, 9 have ranks 0, 1.5, 1.5, 3),
    as in ``scipy.stats.spearmanr``; heatmaps after a ReLU have many tied zeros, so this matters.
    A constant map (e.g. an all-zero Grad-CAM) has no ordering, and the formula divides 0 by 0
    (scipy returns NaN). Here: two constant maps agree, rho = 1 (the explanation did not
    change); a constant map and a non-constant one, rho = 0.

    Hint: with ``s`` the sorted values of a row, ``torch.searchsorted(s, v)`` counts the values
    below ``v`` and ``torch.searchsorted(s, v, right=True)`` those up to and including ``v``:
    the tied values occupy the ranks in between, whose average is (below + up_to - 1) / 2.

    Args:
        a, b: tensors of the same shape (B, ...), e.g. heatmaps (B, H, W).

    Returns:
        float tensor (B,) of correlations.
    """
    ### BEGIN SOLUTION
    def average_ranks(values):
        sorted_values = values.sort(dim=1).values
        below = torch.searchsorted(sorted_values, values, right=False)
        up_to = torch.searchsorted(sorted_values, values, right=True)
        return (below + up_to - 1).double() / 2

    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    ranks_a = average_ranks(a.detach().reshape(len(a), -1).double().contiguous())
    ranks_b = average_ranks(b.detach().reshape(len(b), -1).double().contiguous())
    ranks_a = ranks_a - ranks_a.mean(dim=1, keepdim=True)
    ranks_b = ranks_b - ranks_b.mean(dim=1, keepdim=True)
    spread_a, spread_b = (ranks_a ** 2).sum(dim=1), (ranks_b ** 2).sum(dim=1)
    rho = (ranks_a * ranks_b).sum(dim=1) / (spread_a * spread_b).sqrt().clamp(min=1e-12)
    both_constant = (spread_a == 0) & (spread_b == 0)
    return torch.where(both_constant, torch.ones_like(rho), rho).float()
    ### END SOLUTION


def cascading_randomization(model: nn.Module, explain_fn, x: torch.Tensor, targets=None, layer_order=None,
                            seed: int = 0) -> dict:
    """Cascading model-parameter randomisation (Adebayo et al. 2018, arXiv 1810.03292).

    1. ``explain_fn(model, x, targets)``: the original maps (B, H, W), of the trained model.
    2. A ``copy.deepcopy(model)``: all the damage is done to the copy; ``model``
       itself must come out unchanged.
    3. Stage ``"original"``: explain the untouched copy and compare (a deterministic method
       gives correlation 1 here: this is the control).
    4. For each stage name in ``layer_order`` (from the output towards the input), *cumulatively*
       (earlier stages stay random): re-draw every parameter ``p`` of that submodule, in the
       order of ``submodule.parameters()``, from a Gaussian with the same mean and standard
       deviation, using one ``torch.Generator`` seeded once with ``seed``:

           p <- p.mean() + p.std() * torch.randn(p.shape, generator=generator)

       (under ``torch.no_grad()``; buffers such as BatchNorm running statistics stay), then
       explain the randomised copy and compare with ``original``. A parameter whose entries are
       all equal has standard deviation 0 and stays as it is (BatchNorm weights of an untrained
       model are all 1): randomising weights only makes sense for a model that learned them.

    "Compare" is the Spearman rank correlation of each image's two maps
    (:func:`spearman_rank_correlation`), averaged over the batch.

    Args:
        model: the classifier; left exactly as it was (weights, mode, hooks).
        explain_fn: ``explain_fn(model, x, targets) -> (B, H, W)`` maps, e.g.
            ``lambda m, x, t: grad_cam(m, "layer4", x, t)``.
        x: input batch (B, 3, H, W).
        targets: B class indices, an ``int``, or ``None`` for the original model's predictions;
            every stage explains these same classes.
        layer_order: submodule names to randomise, in this order; ``None`` means the model's
            top-level children that have parameters, last one first; for the CIFAR ResNet-18
            ``["fc", "layer4", "layer3", "layer2", "layer1", "bn1", "conv1"]``.
        seed: seed of the generator that draws the random weights.

    Returns:
        ``{"original": rho_0, "fc": rho_1, "layer4": rho_2, ...}``: mean correlation (a Python
        float) after each stage, in the order the stages were applied.
    """
    ### BEGIN SOLUTION
    if targets is None:
        with torch.no_grad():
            targets = model(x).argmax(dim=1)
    original = explain_fn(model, x, targets)
    randomized = copy.deepcopy(model)
    if layer_order is None:
        layer_order = [name for name, child in randomized.named_children()
                       if len(list(child.parameters())) > 0][::-1]

    def similarity():
        return spearman_rank_correlation(original, explain_fn(randomized, x, targets)).mean().item()

    weight_generator = torch.Generator().manual_seed(seed)
    correlations = {"original": similarity()}
    for name in layer_order:
        with torch.no_grad():
            for parameter in randomized.get_submodule(name).parameters():
                noise = torch.randn(parameter.shape, generator=weight_generator).to(parameter.device, parameter.dtype)
                parameter.copy_(parameter.mean() + parameter.std() * noise)
        correlations[name] = similarity()
    return correlations
    ### END SOLUTION
