"""Colour keys: what the colours of a heatmap, saliency or attribution panel mean.

A :class:`Key` is the colour bar drawn beside the panels it explains: a colormap, the limits of
the maps' true scale, and a label that says what the values are and how they were scaled. One
constructor per kind of map, so that a figure cannot claim a scale its maps do not have:

- :func:`normalised`: maps scaled to [0, 1] one by one (Grad-CAM after its min-max, a map
  divided by its maximum): key 0 .. 1. Only for maps that *are* so scaled: each map must reach
  1 (or be all zero), which :meth:`Key.check` verifies when the figure is drawn;
- :func:`real_range`: non-negative maps on their own scale (Grad-CAM without normalisation):
  key 0 .. the largest value shown, in the maps' units;
- :func:`signed`: maps with both signs (Shapley values, signed gradients): a diverging colormap,
  white at 0, limits symmetric about 0 (minus and plus the largest magnitude shown);
- :func:`gradient_pictures`: the RGB pictures of ``gradient_to_image`` (Assignment 3): each colour
  channel is ``0.5 + 0.1 z``, z the gradient in standard deviations of its image, so mid-grey is
  0 and black and white are -5 and +5 standard deviations.

Every axes that shows a map is labelled with its key (``ax.get_label()`` is ``"key: <label>"``),
and every axes that shows a photo is labelled ``"photo"``: a figure can then be checked panel by
panel (``tests/figure_audit.py``).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colormaps

#: ``ax.get_label()`` of a panel that shows a photo (it needs no key).
PHOTO = "photo"
#: ``ax.get_label()`` of a panel explained by a key starts with this, then the key's label.
KEYED = "key: "
#: The diverging colormap of signed maps: blue negative, white 0, red positive.
DIVERGING_CMAP = "RdBu_r"
#: Font size of a key's label; its ticks are one point smaller.
LABEL_FONTSIZE = 8
#: How far outside its limits a value may lie (float round-off of a min-max) before check() refuses it.
TOLERANCE = 1e-4


@dataclass(frozen=True)
class Key:
    """What a panel's colours mean: ``cmap`` maps ``vmin`` .. ``vmax`` (the maps' true scale).

    ``normalised``: the maps were scaled to [0, 1] one by one, so each must reach 1 (or be zero).
    ``ticks``: (value, text) pairs for the colour bar; ``None``: matplotlib's own ticks.
    Two panels with equal keys share one colour bar.
    """

    label: str
    vmin: float
    vmax: float
    cmap: str
    normalised: bool = False
    ticks: tuple | None = None

    def colors(self, values) -> np.ndarray:
        """RGB colours (..., 3) of ``values`` on this key's scale (outside the limits: the end colours)."""
        spread = self.vmax - self.vmin
        scaled = (np.asarray(values, dtype=np.float32) - self.vmin) / (spread if spread > 0 else 1.0)
        return colormaps[self.cmap](np.clip(scaled, 0.0, 1.0))[..., :3]

    def check(self, maps, what: str) -> None:
        """Raise ``ValueError`` when ``maps`` (N, ...) do not fit this key, so no figure misstates a scale."""
        maps = np.asarray(maps, dtype=np.float64)
        low, high = float(maps.min()), float(maps.max())
        if low < self.vmin - TOLERANCE or high > self.vmax + TOLERANCE:
            raise ValueError(f"{what}: values {low:.3g} .. {high:.3g} lie outside its key "
                             f"{self.vmin:.3g} .. {self.vmax:.3g} ({self.label!r})")
        if self.normalised:
            maxima = maps.reshape(len(maps), -1).max(axis=1)
            if ((maxima > TOLERANCE) & (maxima < 1 - 1e-2)).any():
                raise ValueError(f"{what}: the key says each map is scaled to [0, 1], but their maxima are "
                                 + ", ".join(f"{m:.3g}" for m in maxima)
                                 + ": scale each map (or give the column a real_range key)")


def normalised(how: str = "each map min-max scaled to [0, 1] on its own", what: str = "heatmap",
               cmap: str = "jet") -> Key:
    """The key of maps scaled to [0, 1] one by one; ``how`` says how (min-max, divided by the maximum)."""
    return Key(f"{what} ({how})", 0.0, 1.0, cmap, normalised=True,
               ticks=((0.0, "0"), (0.5, "0.5"), (1.0, "1")))


def real_range(maps, what: str, cmap: str = "jet") -> Key:
    """The key of non-negative maps on their own scale: 0 .. the largest value of ``maps``."""
    maps = np.asarray(maps, dtype=np.float64)
    if maps.min() < -TOLERANCE:
        raise ValueError(f"{what}: the maps have negative values ({maps.min():.3g}): use a signed key")
    top = float(maps.max())
    return Key(f"{what} (real values, one scale for all maps shown)", 0.0, top if top > 0 else 1.0, cmap)


def signed(maps, what: str) -> Key:
    """The key of signed maps: the diverging colormap, centred at 0, limits -m .. m (m: largest |value|)."""
    limit = float(np.abs(np.asarray(maps, dtype=np.float64)).max())
    limit = limit if limit > 0 else 1.0
    return Key(f"{what} (red +, blue -, white 0)", -limit, limit, DIVERGING_CMAP)


def gradient_pictures(what: str = "gradient") -> Key:
    """The key of ``gradient_to_image`` pictures: grey 0, black -5 and white +5 standard deviations."""
    return Key(f"{what} per colour channel, in standard deviations of its image", -5.0, 5.0, "gray",
               ticks=((-5.0, "-5 sd"), (0.0, "0"), (5.0, "+5 sd")))


def add_key(fig: plt.Figure, axes, key: Key, length_inches: float):
    """Draw ``key`` as a colour bar beside ``axes`` and label each of them as explained by it.

    ``length_inches``: about how tall the keyed panels are together; the bar spans most of it
    (readable in a one-row figure too) and its label is wrapped to the bar's length, so it stays
    inside the figure.
    """
    axes = list(np.ravel(np.asarray(axes, dtype=object)))
    for ax in axes:
        ax.set_label(KEYED + key.label)
    bar_inches = max(1.2, 0.9 * length_inches)
    characters_per_line = max(16, int(bar_inches * 72 / (0.6 * LABEL_FONTSIZE)))
    mappable = plt.cm.ScalarMappable(norm=plt.Normalize(key.vmin, key.vmax), cmap=key.cmap)
    bar = fig.colorbar(mappable, ax=axes, shrink=min(1.0, bar_inches / max(length_inches, 1e-6)), pad=0.02,
                       aspect=max(10.0, 10 * bar_inches / 2.0))  # about 0.2 in wide, whatever its length
    bar.set_label("\n".join(textwrap.wrap(key.label, characters_per_line)), fontsize=LABEL_FONTSIZE)
    if key.ticks is not None:
        bar.set_ticks([value for value, _ in key.ticks], labels=[text for _, text in key.ticks])
    else:
        bar.ax.yaxis.set_major_formatter("{x:.2g}")
    bar.ax.tick_params(labelsize=LABEL_FONTSIZE - 1)
    return bar
