"""Comparing explanation methods by faithfulness: baselines and a ranking table.

Nothing here is graded. The table helper takes *your* curve functions as arguments
(``deletion_curve``, ``insertion_curve``, ``area_under_curve`` from Assignment 4), so the same
code ranks methods with your implementation or the reference one.

A ranking is only meaningful next to a baseline: :func:`random_saliency_maps` gives maps that
know nothing about the model or the image. A method that does not beat them on deletion and
insertion is not explaining anything.
"""

from __future__ import annotations

import torch
from torch import nn


def random_saliency_maps(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Uniform random heatmaps (B, H, W) in [0, 1) for the images ``x`` (B, C, H, W): the chance baseline."""
    generator = torch.Generator().manual_seed(seed)
    maps = torch.rand((x.shape[0], *x.shape[-2:]), generator=generator)
    return maps.to(x.device)


def blurred_baseline(x: torch.Tensor, kernel_size: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """A Gaussian-blurred copy of ``x`` (B, C, H, W): the insertion curve's starting image.

    Petsiuk et al. (arXiv 1806.07421) start insertion from a blurred image (their code: kernel
    11, sigma 5), which removes the object's detail but keeps the image's colours, so the model
    is not shown an input unlike anything it was trained on.
    """
    from torchvision.transforms.functional import gaussian_blur

    return gaussian_blur(x, kernel_size=[kernel_size, kernel_size], sigma=[sigma, sigma])


def faithfulness_table(model: nn.Module, x: torch.Tensor, targets, maps_by_method: dict, deletion_curve,
                       insertion_curve, area_under_curve, steps: int = 16, deletion_baseline=0.0,
                       insertion_baseline=None, extra_metrics: dict | None = None) -> list:
    """Deletion and insertion AUC of several methods' maps on the same images, best first.

    Args:
        model: the classifier (eval mode).
        x: normalised images (B, 3, H, W); targets: the explained class of each image (B,).
        maps_by_method: ``{"Grad-CAM": maps, "Layer-CAM": maps, "random": maps, ...}``, each (B, H, W).
        deletion_curve, insertion_curve, area_under_curve: the Assignment 4 functions.
        steps: chunks per curve.
        deletion_baseline: what deleted pixels become (0.0: the mean colour).
        insertion_baseline: the insertion start image; ``None``: :func:`blurred_baseline` of ``x``.
        extra_metrics: ``{"name": fn}`` with ``fn(model, x, maps, targets) -> (B,)``, e.g.
            ``{"ROAD": library_metrics.road_combined}``; their batch means become extra columns.

    Returns:
        one dict per method: ``method``, ``deletion_auc`` (lower is better), ``insertion_auc``
        (higher is better), ``difference`` = insertion - deletion (higher is better), plus the
        extra metrics; sorted by ``difference``, best first. All values are batch means (floats).
    """
    if insertion_baseline is None:
        insertion_baseline = blurred_baseline(x)
    rows = []
    for method, maps in maps_by_method.items():
        deletion = area_under_curve(deletion_curve(model, x, maps, targets, steps=steps, baseline=deletion_baseline))
        insertion = area_under_curve(insertion_curve(model, x, maps, targets, steps=steps,
                                                     baseline=insertion_baseline))
        row = {"method": method, "deletion_auc": deletion.mean().item(), "insertion_auc": insertion.mean().item()}
        row["difference"] = row["insertion_auc"] - row["deletion_auc"]
        for name, metric in (extra_metrics or {}).items():
            row[name] = float(torch.as_tensor(metric(model, x, maps, targets)).float().mean())
        rows.append(row)
    return sorted(rows, key=lambda row: row["difference"], reverse=True)


def format_table(rows: list) -> str:
    """The rows of :func:`faithfulness_table` as an aligned text table (method first, 3 decimals)."""
    if not rows:
        return "(no methods)"
    columns = list(rows[0])
    cells = [[str(row["method"])] + [f"{row[c]:.3f}" for c in columns[1:]] for row in rows]
    widths = [max(len(columns[i]), *(len(line[i]) for line in cells)) for i in range(len(columns))]
    lines = ["  ".join(name.ljust(width) for name, width in zip(columns, widths))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)) for line in cells]
    return "\n".join(lines)


def grid_regions(height: int, width: int, cells: int) -> torch.Tensor:
    """A ``cells`` x ``cells`` grid as a region label map (height, width), labels 0 .. cells^2 - 1,
    row by row (region ``r`` is grid row ``r // cells``, column ``r % cells``)."""
    rows = torch.arange(height) * cells // height
    columns = torch.arange(width) * cells // width
    return rows[:, None] * cells + columns[None, :]


def region_means(maps: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """The mean of each map (B, H, W) over each region of a label map (H, W): (B, R)."""
    one_hot = torch.nn.functional.one_hot(regions.long().to(maps.device)).flatten(0, 1).to(maps.dtype)  # (HW, R)
    return maps.flatten(1) @ one_hot / one_hot.sum(dim=0)


def paint_regions(values: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Per-region values (B, R) painted onto the pixels of a label map (H, W): (B, H, W)."""
    return values[:, regions.long().to(values.device)]
