"""What every figure of the notebooks must satisfy, checked on a drawn matplotlib figure.

:func:`problems` lists what is wrong with one figure (an empty list: nothing):

- every image panel is a photo or is explained by a key: a colour bar of its own image, or one
  whose label is the key the panel is labelled with (``student_src.colour_keys``);
- a 2-D map with negative values uses a diverging colormap with limits symmetric about 0, and so
  does every key whose range straddles 0 (a key of RGB gradient pictures may be the grey ramp
  they are drawn in: mid-grey 0);
- a colour bar is readable at the figure's size: at least 0.8 times as long as the smallest
  panel it explains is tall, and its label and tick labels lie inside the figure;
- a legend lies inside the figure and covers no plotted data (no point of a labelled line, no
  bar, of any axes).

``install()`` is what a notebook test runs first in a kernel: from then on ``plt.show()`` audits
every open figure, saves it as a PNG for a person to look at (``$FIGURE_AUDIT_DIR``) and closes it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

#: Colormaps that are diverging (a neutral colour at the centre, two hues outwards).
DIVERGING = {"RdBu_r", "RdBu", "bwr", "coolwarm", "seismic", "PuOr", "PuOr_r", "PiYG", "PRGn", "BrBG", "RdGy"}
COLORBAR = "<colorbar>"


def _colorbars(fig):
    return [ax._colorbar for ax in fig.axes if ax.get_label() == COLORBAR and hasattr(ax, "_colorbar")]


def _bar_label(bar) -> str:
    axis = bar.ax.yaxis if bar.orientation == "vertical" else bar.ax.xaxis
    return " ".join(axis.label.get_text().split())


def _inside(box, fig_box, slack: float = 1.0) -> bool:
    return (box.x0 >= fig_box.x0 - slack and box.y0 >= fig_box.y0 - slack
            and box.x1 <= fig_box.x1 + slack and box.y1 <= fig_box.y1 + slack)


def _is_symmetric(low: float, high: float) -> bool:
    return abs(low + high) <= 1e-6 * max(abs(low), abs(high), 1e-30)


def _data_points(ax):
    """Display coordinates of the data of ``ax``: labelled lines, sampled along their segments."""
    points = []
    for line in ax.lines:
        if line.get_label().startswith("_"):
            continue  # reference lines (axhline) and unlabelled helpers
        xy = line.get_xydata()
        xy = xy[np.isfinite(xy).all(axis=1)]
        if len(xy) == 0:
            continue
        samples = [xy[:1]] + [np.linspace(a, b, 20) for a, b in zip(xy[:-1], xy[1:])]
        points.append(ax.transData.transform(np.concatenate(samples)))
    return np.concatenate(points) if points else np.zeros((0, 2))


def _bars(ax, renderer):
    from matplotlib.patches import Rectangle

    boxes = []
    for patch in ax.patches:
        if isinstance(patch, Rectangle) and np.isfinite([patch.get_height(), patch.get_width()]).all() \
                and patch.get_height() != 0:
            boxes.append(patch.get_window_extent(renderer))
    return boxes


def _legend_problems(fig, renderer, fig_box) -> list[str]:
    found = []
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
    for legend in legends:
        box = legend.get_window_extent(renderer)
        if not _inside(box, fig_box):
            found.append(f"legend {[t.get_text() for t in legend.get_texts()]} runs past the figure's edge")
        for ax in fig.axes:
            if ax.get_label() == COLORBAR:
                continue
            points = _data_points(ax)
            area = ax.get_window_extent(renderer)  # data outside the plotting area is not drawn
            points = points[(points[:, 0] >= area.x0) & (points[:, 0] <= area.x1)
                            & (points[:, 1] >= area.y0) & (points[:, 1] <= area.y1)]
            covered = ((points[:, 0] > box.x0) & (points[:, 0] < box.x1)
                       & (points[:, 1] > box.y0) & (points[:, 1] < box.y1)) if len(points) else np.zeros(0, bool)
            if covered.any() or any(box.overlaps(bar) for bar in _bars(ax, renderer)):
                found.append(f"legend {[t.get_text() for t in legend.get_texts()]} covers data of "
                             f"the axes {ax.get_title()!r}")
    return found


def problems(fig) -> list[str]:
    """Everything wrong with ``fig`` (see the module docstring); draws it first."""
    from student_src import colour_keys

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    fig_box = fig.bbox
    found = []
    bars = _colorbars(fig)
    bar_by_label = {_bar_label(bar): bar for bar in bars}
    keyed_by = {}  # colour bar -> the panels it explains
    for ax in fig.axes:
        if ax.get_label() == COLORBAR or not ax.images:
            continue
        where = f"panel {ax.get_title()!r}" if ax.get_title() else "an untitled panel"
        label = ax.get_label()
        image = ax.images[0]
        data = np.asarray(image.get_array())
        bar = image.colorbar
        if bar is None and label.startswith(colour_keys.KEYED):
            bar = bar_by_label.get(" ".join(label[len(colour_keys.KEYED):].split()))
        if label != colour_keys.PHOTO and bar is None:
            found.append(f"{where} has no key (no colour bar explains its colours)")
        if bar is not None:
            keyed_by.setdefault(id(bar), (bar, []))[1].append((ax, data))
        if data.ndim == 2 and np.nanmin(data) < 0:
            low, high = image.get_clim()
            if image.get_cmap().name not in DIVERGING or not _is_symmetric(low, high):
                found.append(f"{where} shows a signed map with {image.get_cmap().name!r} and limits "
                             f"{low:.3g} .. {high:.3g}: use a diverging colormap centred at 0")
    for bar, panels in keyed_by.values():
        name = _bar_label(bar) or "an unlabelled colour bar"
        low, high = bar.norm.vmin, bar.norm.vmax
        if low < 0 < high:
            pictures_only = all(data.ndim == 3 for _, data in panels)
            if not _is_symmetric(low, high):
                found.append(f"key {name!r} straddles 0 with limits {low:.3g} .. {high:.3g}: not centred at 0")
            if bar.cmap.name not in DIVERGING and not (pictures_only and bar.cmap.name == "gray"):
                found.append(f"key {name!r} of signed values uses {bar.cmap.name!r}, not a diverging colormap")
        box = bar.ax.get_window_extent(renderer)
        length = box.height if bar.orientation == "vertical" else box.width
        smallest = min(ax.get_window_extent(renderer).height for ax, _ in panels)
        if length < 0.8 * smallest:
            found.append(f"key {name!r} is {length / fig.dpi:.2f} in long, under 0.8 of its panels' "
                         f"height ({smallest / fig.dpi:.2f} in)")
        axis = bar.ax.yaxis if bar.orientation == "vertical" else bar.ax.xaxis
        span = sorted(axis.get_view_interval())
        shown_ticks = [label for location, label in zip(axis.get_ticklocs(), axis.get_ticklabels())
                       if span[0] - 1e-9 <= location <= span[1] + 1e-9 and label.get_text()]  # others are not drawn
        texts = [axis.label] + shown_ticks
        for text in texts:
            if text.get_text() and not _inside(text.get_window_extent(renderer), fig_box):
                found.append(f"key {name!r}: the text {text.get_text()!r} runs past the figure's edge")
    return found + _legend_problems(fig, renderer, fig_box)


class _Auditor:
    """Replaces ``plt.show`` in a kernel: audits, saves and closes every open figure."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.cell = "before any cell"
        self.figures = []  # {"cell", "png", "problems"}

    def enter(self, cell: str):
        """The next cell to run is ``cell``: figures the last one left open are audited as its."""
        self.show()
        self.cell = cell

    def show(self, *args, **kwargs):
        import matplotlib.pyplot as plt

        for number in plt.get_fignums():
            fig = plt.figure(number)
            found = problems(fig)
            png = self.folder / f"{self.cell}_{sum(f['cell'] == self.cell for f in self.figures) + 1}.png"
            fig.savefig(png, dpi=80)
            self.figures.append({"cell": self.cell, "png": str(png), "problems": found})
            plt.close(fig)

    def report(self) -> str:
        self.show()  # a figure left open at the end is audited too
        return json.dumps(self.figures)


def install() -> _Auditor:
    """Audit every figure a notebook shows from now on (see the module docstring)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.switch_backend("Agg")  # resolved now: a later switch would wrap plt.show again
    folder = Path(os.environ["FIGURE_AUDIT_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    auditor = _Auditor(folder)

    def show(*args, **kwargs):
        auditor.show()

    plt.show = show
    return auditor
