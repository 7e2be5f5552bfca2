"""Plots for the assignments: image grids, heatmap overlays, feature-map channel grids.

Every function returns the matplotlib ``Figure`` it drew (so tests and the figure builder can
save it) and stamps it with a red banner when the untrained stand-in is in use. Images are
float arrays (H, W, 3) in [0, 1] (see :func:`student_src.data.denormalize`) or 2-D maps.
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps

from student_src import assets


def _numpy(array) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().float().cpu().numpy()
    return np.asarray(array)


def stamp_standin(fig: plt.Figure) -> plt.Figure:
    """Write the stand-in banner across the bottom of ``fig`` when a stand-in is in use.

    Skipped while ``python -m autograder figures --standin`` runs: it burns the banner into
    every saved PNG itself (``$XAI_KIT_BANNER_BY_BUILDER``), whatever code drew the figure.
    """
    if assets.standin_active() and not os.environ.get("XAI_KIT_BANNER_BY_BUILDER"):
        fig.text(0.5, 0.005, assets.STANDIN_BANNER, ha="center", va="bottom", fontsize=9,
                 color="white", backgroundcolor="red", fontweight="bold")
    return fig


def prediction_title(classes, label: int | None, predicted: int, confidence: float) -> str:
    """``"true: cat / pred: dog (87%)"``; a wrong prediction is marked with a cross."""
    text = f"pred: {classes[predicted]} ({100 * confidence:.0f}%)"
    if label is None:
        return text
    mark = "" if label == predicted else " \u2717"
    return f"true: {classes[label]}\n{text}{mark}"


def resize_map(heatmap, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map to ``size`` = (H, W) (no-op when it already has that size)."""
    heatmap = _numpy(heatmap).astype(np.float32)
    if heatmap.shape == tuple(size):
        return heatmap
    resized = F.interpolate(torch.from_numpy(heatmap)[None, None], size=size, mode="bilinear",
                            align_corners=False)
    return resized[0, 0].numpy()


def overlay_heatmap(image, heatmap, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a [0, 1] heatmap (h, w) over an image (H, W, 3) in [0, 1]: ``(1 - a) image + a cmap(map)``.

    The heatmap is resized to the image (bilinear) and clipped to [0, 1] first.
    """
    image = _numpy(image).astype(np.float32)
    heatmap = np.clip(resize_map(heatmap, image.shape[:2]), 0.0, 1.0)
    colored = colormaps[cmap](heatmap)[..., :3]
    return np.clip((1 - alpha) * image + alpha * colored, 0.0, 1.0)


def show_grid(images, titles=None, ncols: int = 5, cmap: str | None = None, suptitle: str | None = None,
              cell_size: float = 2.2, vmin=None, vmax=None) -> plt.Figure:
    """Show images (a list of (H, W, 3) or (H, W) arrays) in a grid with one title each, axes off."""
    images = [_numpy(image) for image in images]
    ncols = max(1, min(ncols, len(images)))
    nrows = max(1, -(-len(images) // ncols))
    title_room = 0.35 if titles is not None else 0.0
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell_size * ncols, (cell_size + title_room) * nrows + 0.6),
                             squeeze=False)
    for position, ax in enumerate(axes.flat):
        ax.axis("off")
        if position < len(images):
            ax.imshow(images[position], cmap=cmap, vmin=vmin, vmax=vmax)
            if titles is not None:
                ax.set_title(titles[position], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return stamp_standin(fig)


def show_feature_maps(activation, channels=None, n_channels: int = 16, ncols: int = 8,
                      title: str | None = None) -> plt.Figure:
    """Grid of feature-map channels of one image: ``activation`` is (C, H, W) (or (1, C, H, W)).

    ``channels`` picks which (default: the first ``n_channels``). Each channel gets its own colour
    scale (viridis), titled with its index and mean activation.
    """
    activation = _numpy(activation)
    if activation.ndim == 4:
        activation = activation[0]
    channels = list(range(min(n_channels, activation.shape[0]))) if channels is None else list(channels)
    maps = [activation[c] for c in channels]
    titles = [f"ch {c}  mean {activation[c].mean():.2f}" for c in channels]
    return show_grid(maps, titles, ncols=ncols, cmap="viridis", suptitle=title, cell_size=1.6)


def show_explanations(images, maps_by_method: dict, titles=None, alpha: float = 0.5,
                      suptitle: str | None = None) -> plt.Figure:
    """One row per image: the image, then each method's map overlaid; columns titled by method.

    ``images`` is (N, H, W, 3) in [0, 1]; ``maps_by_method`` maps a method name to maps (N, h, w).
    ``titles`` (one per image) go on the first column.
    """
    images = _numpy(images)
    methods = list(maps_by_method)
    # Room for the tallest title (multi-line titles would otherwise run into the row above).
    title_lines = max(str(title).count("\n") + 1 for title in [*methods, *(titles if titles is not None else [])])
    row_height = 2.0 + 0.16 * title_lines
    # Constrained layout keeps every title clear of the row above (tight_layout lets them touch
    # when the images fill the width); the bottom 4% stays free for the stand-in banner.
    fig, axes = plt.subplots(len(images), len(methods) + 1, layout="constrained",
                             figsize=(2.0 * (len(methods) + 1), row_height * len(images) + 0.4), squeeze=False)
    fig.get_layout_engine().set(rect=(0, 0.04, 1, 0.96))
    for row, image in enumerate(images):
        axes[row, 0].imshow(image)
        axes[row, 0].set_title(titles[row] if titles is not None else "image", fontsize=8)
        for column, method in enumerate(methods, start=1):
            axes[row, column].imshow(overlay_heatmap(image, _numpy(maps_by_method[method])[row], alpha))
            axes[row, column].set_title(method, fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return stamp_standin(fig)
