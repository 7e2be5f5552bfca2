"""Plots for the assignments: image grids, heatmap overlays, feature-map channel grids.

Every function returns the matplotlib ``Figure`` it drew (so tests and the figure builder can
save it) and stamps it with a red banner when the untrained stand-in is in use. Images are
float arrays (H, W, 3) in [0, 1] (see :func:`student_src.data.denormalize`) or 2-D maps.

Every heatmap, saliency, attribution and feature-map panel carries a colour bar that states its
true scale (:mod:`student_src.colour_keys`: a normalised 0..1 key only for maps that are
normalised, the real range otherwise, a diverging key centred at 0 for signed maps), and says
whether the maps share one scale or each has its own. Legends go beside the data
(:func:`legend_outside`), never over it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from student_src import assets, colour_keys
from student_src.colour_keys import Key


def _numpy(array) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().float().cpu().numpy()
    return np.asarray(array)


#: Height of the strip the stand-in banner gets below a figure's content (inches).
BANNER_STRIP_INCHES = 0.3


def stamp_standin(fig: plt.Figure) -> plt.Figure:
    """Write the stand-in banner in a strip added below ``fig`` when a stand-in is in use.

    The figure grows by the strip (and by whatever already hangs below its bottom edge, such as
    rotated tick labels), its content moves up, so the banner hides nothing.

    Skipped while ``python -m autograder figures --standin`` runs: it burns the banner into
    every saved PNG itself (``$XAI_KIT_BANNER_BY_BUILDER``), whatever code drew the figure.
    """
    if not assets.standin_active() or os.environ.get("XAI_KIT_BANNER_BY_BUILDER"):
        return fig
    width, height = fig.get_size_inches()
    fig.draw_without_rendering()  # runs the layout engine, so the extent below is final
    overhang = max(0.0, -fig.get_tightbbox().y0)  # inches hanging below the bottom edge
    shift = overhang + BANNER_STRIP_INCHES
    new_height = height + shift
    engine = fig.get_layout_engine()
    if engine is not None and hasattr(engine, "set") and "rect" in getattr(engine, "get", dict)():
        left, bottom, rect_width, rect_height = engine.get()["rect"]
        engine.set(rect=(left, (bottom * height + shift) / new_height, rect_width, rect_height * height / new_height))
    else:
        fig.set_layout_engine("none")
        for ax in fig.axes:
            box = ax.get_position()
            ax.set_position((box.x0, (box.y0 * height + shift) / new_height, box.width, box.height * height / new_height))
        for text in fig.texts:
            x, y = text.get_position()
            text.set_position((x, (y * height + shift) / new_height))
    fig.set_size_inches(width, new_height)
    fig.text(0.5, BANNER_STRIP_INCHES / 2 / new_height, assets.STANDIN_BANNER, ha="center", va="center",
             fontsize=9, color="white", backgroundcolor="red", fontweight="bold")
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


def overlay_heatmap(image, heatmap, alpha: float = 0.5, key: Key | None = None) -> np.ndarray:
    """Blend a heatmap (h, w) over an image (H, W, 3) in [0, 1]: ``(1 - a) image + a colours(map)``.

    The heatmap is resized to the image (bilinear) and coloured on ``key``'s scale (default
    :func:`colour_keys.normalised`: 0 .. 1, jet); values outside the key's limits get its end colours.
    """
    image = _numpy(image).astype(np.float32)
    key = colour_keys.normalised() if key is None else key
    colored = key.colors(resize_map(heatmap, image.shape[:2]))
    return np.clip((1 - alpha) * image + alpha * colored, 0.0, 1.0)


@dataclass
class Column:
    """One column of :func:`show_explanations`: a panel per image, and the key of its colours.

    ``values``: maps (N, h, w), or RGB pictures (N, H, W, 3) such as ``gradient_to_image``'s.
    ``overlay=True``: the maps are blended over the images (:func:`overlay_heatmap`); ``False``:
    drawn on their own (2-D maps with the key's colormap and limits; pictures as they are).
    """

    values: object
    key: Key
    overlay: bool = True


def _panel_figure(nrows: int, ncols: int, cell_width: float, row_height: float, n_keys: int):
    """A constrained-layout grid of panels with room on the right for ``n_keys`` colour bars."""
    return plt.subplots(nrows, ncols, layout="constrained", squeeze=False,
                        figsize=(cell_width * ncols + 1.0 * n_keys, row_height * nrows + 0.5))


def show_grid(images, titles=None, ncols: int = 5, suptitle: str | None = None, cell_size: float = 2.2,
              key: Key | None = None) -> plt.Figure:
    """Show images (a list of (H, W, 3) photos or (H, W) maps) in a grid with one title each, axes off.

    2-D maps are drawn on ``key``'s scale (:mod:`student_src.colour_keys`: its colormap and
    limits), with one colour bar for all of them; a grid of 2-D maps without a key is refused,
    since its colours would mean nothing. Colour images are photos and need no key.
    """
    images = [_numpy(image) for image in images]
    if key is None and any(image.ndim == 2 for image in images):
        raise ValueError("show_grid: 2-D maps need a key (student_src.colour_keys) that says what their colours mean")
    ncols = max(1, min(ncols, len(images)))
    nrows = max(1, -(-len(images) // ncols))
    row_height = cell_size + (0.35 if titles is not None else 0.0)
    fig, axes = _panel_figure(nrows, ncols, cell_size, row_height, 0 if key is None else 1)
    keyed = []
    for position, ax in enumerate(axes.flat):
        ax.axis("off")
        if position < len(images):
            image = images[position]
            if image.ndim == 2:
                key.check(image[None], f"panel {position}")
                ax.imshow(image, cmap=key.cmap, vmin=key.vmin, vmax=key.vmax)
                keyed.append(ax)
            else:
                ax.imshow(image)
                ax.set_label(colour_keys.PHOTO)
            if titles is not None:
                ax.set_title(titles[position], fontsize=8)
    if keyed:
        colour_keys.add_key(fig, keyed, key, row_height * nrows)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return stamp_standin(fig)


def show_feature_maps(activation, channels=None, n_channels: int = 16, ncols: int = 8,
                      title: str | None = None, shared_scale: bool = True) -> plt.Figure:
    """Grid of feature-map channels of one image: ``activation`` is (C, H, W) (or (1, C, H, W)).

    ``channels`` picks which (default: the first ``n_channels``); each panel is titled with its
    index and mean activation. ``shared_scale=True`` (default) draws every channel on one colour
    scale (viridis, from the smallest to the largest value shown) with one colour bar, so
    channels can be compared; ``False`` gives each channel its own scale and its own small colour
    bar, and says so in the title.
    """
    activation = _numpy(activation)
    if activation.ndim == 4:
        activation = activation[0]
    channels = list(range(min(n_channels, activation.shape[0]))) if channels is None else list(channels)
    maps = [activation[c] for c in channels]
    titles = [f"ch {c}  mean {activation[c].mean():.2f}" for c in channels]
    if shared_scale:
        scale_note = "one colour scale for all channels"
        low, high = float(min(m.min() for m in maps)), float(max(m.max() for m in maps))
        key = Key("activation", low, high if high > low else low + 1.0, "viridis")
        return show_grid(maps, titles, ncols=ncols, cell_size=1.6, key=key,
                         suptitle=f"{title} ({scale_note})" if title else scale_note)
    ncols = max(1, min(ncols, len(maps)))
    nrows = max(1, -(-len(maps) // ncols))
    fig, axes = plt.subplots(nrows, ncols, layout="constrained", squeeze=False,
                             figsize=(2.1 * ncols, 2.0 * nrows + 0.6))
    for position, ax in enumerate(axes.flat):
        ax.axis("off")
        if position < len(maps):
            shown = ax.imshow(maps[position], cmap="viridis")
            ax.set_title(titles[position], fontsize=8)
            ax.set_label(colour_keys.KEYED + f"channel {channels[position]}'s own scale")
            bar = fig.colorbar(shown, ax=ax, fraction=0.08, pad=0.02)
            bar.set_ticks([float(maps[position].min()), float(maps[position].max())])
            bar.ax.tick_params(labelsize=6)
            bar.ax.yaxis.set_major_formatter("{x:.2g}")
    scale_note = "each channel on its own colour scale"
    fig.suptitle(f"{title} ({scale_note})" if title else scale_note, fontsize=11)
    return stamp_standin(fig)


def show_explanations(images, maps_by_method: dict, titles=None, alpha: float = 0.5,
                      suptitle: str | None = None, key: Key | None = None) -> plt.Figure:
    """One row per image: the image, then one panel per method; columns titled by method.

    ``images`` is (N, H, W, 3) in [0, 1]. Each value of ``maps_by_method`` is either maps
    (N, h, w), laid over the images and explained by ``key`` (default
    :func:`colour_keys.normalised`: each map min-max scaled to [0, 1]), or a :class:`Column` with
    its own key (maps on their real scale, signed maps, gradient pictures). Every distinct key gets
    one colour bar, to the right, beside the columns it explains; a column whose values do not
    fit its key is refused (:meth:`Key.check`), so no key misstates a scale. ``titles`` (one per
    image) go on the first column.
    """
    images = _numpy(images)
    default_key = colour_keys.normalised() if key is None else key
    columns = {method: value if isinstance(value, Column) else Column(value, default_key)
               for method, value in maps_by_method.items()}
    keys = list(dict.fromkeys(column.key for column in columns.values()))
    # Room for the tallest title (multi-line titles would otherwise run into the row above).
    title_lines = max(str(title).count("\n") + 1 for title in [*columns, *(titles if titles is not None else [])])
    row_height = 2.0 + 0.16 * title_lines
    fig, axes = _panel_figure(len(images), len(columns) + 1, 2.0, row_height, len(keys))
    for row, image in enumerate(images):
        axes[row, 0].imshow(image)
        axes[row, 0].set_label(colour_keys.PHOTO)
        axes[row, 0].set_title(titles[row] if titles is not None else "image", fontsize=8)
    for column_index, (method, column) in enumerate(columns.items(), start=1):
        values = _numpy(column.values)
        if values.ndim == 3:  # maps; pictures (N, H, W, 3) are already colours
            column.key.check(values, f"column {method!r}")
        elif column.overlay:
            raise ValueError(f"column {method!r}: only maps (N, h, w) can be laid over the images")
        for row, image in enumerate(images):
            ax = axes[row, column_index]
            if column.overlay:
                ax.imshow(overlay_heatmap(image, values[row], alpha, column.key))
            elif values.ndim == 3:
                ax.imshow(values[row], cmap=column.key.cmap, vmin=column.key.vmin, vmax=column.key.vmax)
            else:
                ax.imshow(values[row])
            ax.set_title(method, fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    for shown_key in keys:
        keyed = [index for index, column in enumerate(columns.values(), start=1) if column.key == shown_key]
        colour_keys.add_key(fig, axes[:, keyed], shown_key, row_height * len(images))
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return stamp_standin(fig)


def legend_outside(ax, **kwargs):
    """The legend of ``ax`` to the right of its plotting area, where it can cover no data.

    Use it in figures with a layout engine (``layout="constrained"``), which makes room for it.
    """
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
                     fontsize=kwargs.pop("fontsize", 8), **kwargs)
