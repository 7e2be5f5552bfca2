"""Plots return figures, carry titles, and say so when the stand-in is in use."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from student_src import assets, colour_keys, data, viz
from tests import figure_audit


def _normalised(maps):
    maps = np.asarray(maps, dtype=float)
    return maps / maps.reshape(len(maps), -1).max(axis=1)[:, None, None]


def _texts(fig):
    return [t.get_text() for t in fig.texts] + [ax.get_title() for ax in fig.axes]


def test_overlay_blends_and_resizes():
    image = np.zeros((32, 32, 3))
    heatmap = np.ones((4, 4))
    blended = viz.overlay_heatmap(image, heatmap, alpha=0.5, key=colour_keys.normalised(cmap="gray"))
    assert blended.shape == (32, 32, 3) and np.allclose(blended, 0.5)
    # On a real-range key the largest value shown gets the colormap's top colour (white in gray).
    raw = np.full((4, 4), 0.2)
    assert np.allclose(viz.overlay_heatmap(image, raw, 0.5, colour_keys.Key("raw", 0.0, 0.2, "gray")), 0.5)
    assert np.allclose(viz.overlay_heatmap(image, np.zeros((32, 32)), alpha=0.0), 0.0)


def test_prediction_title_marks_mistakes():
    assert viz.prediction_title(data.CLASSES, 3, 3, 0.871) == "true: cat\npred: cat (87%)"
    assert viz.prediction_title(data.CLASSES, 3, 5, 0.5).endswith("\u2717")


def test_grids_have_titles_axes_off_and_no_banner_normally(monkeypatch):
    monkeypatch.delenv("XAI_KIT_STANDIN", raising=False)
    monkeypatch.setattr(assets, "_standin_used", False)
    images = data.denormalize(data.normalize(data.synthetic_images(3)[0]))
    fig = viz.show_grid(images, ["a", "b", "c"], ncols=2)
    assert [ax.get_title() for ax in fig.axes][:3] == ["a", "b", "c"]
    assert all(not ax.axison for ax in fig.axes)
    assert assets.STANDIN_BANNER not in _texts(fig)
    fig = viz.show_feature_maps(np.random.rand(1, 8, 4, 4), n_channels=8, title="layer4")
    assert len([ax for ax in fig.axes if ax.images]) == 8


@pytest.mark.parametrize("how", ["environment", "loaded"])
def test_every_figure_says_stand_in(monkeypatch, how):
    monkeypatch.delenv("XAI_KIT_STANDIN", raising=False)
    monkeypatch.setattr(assets, "_standin_used", False)
    if how == "environment":
        monkeypatch.setenv("XAI_KIT_STANDIN", "1")
    else:
        assets.note_standin_used()
    images = np.random.rand(2, 32, 32, 3)
    figures = [viz.show_grid(images), viz.show_feature_maps(np.random.rand(4, 4, 4)),
               viz.show_explanations(images, {"Grad-CAM": _normalised(np.random.rand(2, 4, 4))})]
    for fig in figures:
        assert assets.STANDIN_BANNER in _texts(fig)


def _colorbar_labels(fig):
    """The labels of the colour bars of ``fig``, line breaks (wrapping) read as spaces."""
    return [" ".join(ax.get_ylabel().split()) for ax in fig.axes if ax.get_label() == "<colorbar>" and ax.get_ylabel()]


def test_every_heatmap_and_feature_map_grid_has_a_key():
    images = np.random.rand(2, 32, 32, 3)
    fig = viz.show_explanations(images, {"Grad-CAM": _normalised(np.random.rand(2, 4, 4))})
    assert _colorbar_labels(fig) == ["heatmap (each map min-max scaled to [0, 1] on its own)"]
    shared = viz.show_feature_maps(np.random.rand(8, 4, 4), n_channels=8, title="layer4")
    assert _colorbar_labels(shared) == ["activation"] and "one colour scale for all channels" in shared._suptitle.get_text()
    scales = {tuple(ax.images[0].get_clim()) for ax in shared.axes if ax.images}
    assert len(scales) == 1, "a shared scale: every channel drawn with the same colour limits"
    own = viz.show_feature_maps(np.random.rand(8, 4, 4) * np.arange(1, 9)[:, None, None], n_channels=8, shared_scale=False)
    assert "each channel on its own colour scale" in own._suptitle.get_text()
    assert len([ax for ax in own.axes if not ax.images]) == 8, "one small colour bar per channel"
    for figure in (fig, shared, own):
        assert figure_audit.problems(figure) == []


def test_a_normalised_key_only_for_normalised_maps():
    """02's ablation: raw maps with maxima 0.15-0.22 under a 0..1 key are refused; their real range is keyed."""
    images = np.random.rand(2, 32, 32, 3)
    raw = np.random.rand(2, 4, 4) * np.array([0.15, 0.22])[:, None, None]
    with pytest.raises(ValueError, match="but their maxima are"):
        viz.show_explanations(images, {"no normalisation": raw})
    with pytest.raises(ValueError, match="outside its key"):
        viz.show_explanations(images, {"signed": _normalised(raw) - 0.5})
    key = colour_keys.real_range(raw, "raw Grad-CAM value")
    assert (key.vmin, key.vmax) == (0.0, float(raw.max()))
    fig = viz.show_explanations(images, {"standard": _normalised(raw), "no normalisation": viz.Column(raw, key)})
    labels = _colorbar_labels(fig)
    assert len(labels) == 2 and labels[1].startswith("raw Grad-CAM value (real values")
    bar = next(ax for ax in fig.axes if ax.get_label() == "<colorbar>" and "raw" in ax.get_ylabel())
    assert bar.get_ylim() == pytest.approx((0.0, float(raw.max())))
    assert figure_audit.problems(fig) == []


def test_signed_maps_get_a_diverging_key_centred_at_zero():
    images = np.random.rand(1, 32, 32, 3)
    phi = np.random.randn(1, 32, 32) * 3 + 1
    key = colour_keys.signed(phi, "Shapley value")
    assert key.vmin == -key.vmax == pytest.approx(-np.abs(phi).max()) and key.cmap == colour_keys.DIVERGING_CMAP
    fig = viz.show_explanations(images, {"Grad-CAM": _normalised(np.random.rand(1, 4, 4)),
                                         "Shapley": viz.Column(phi, key, overlay=False)}, ["cat and dog"])
    shapley = next(ax for ax in fig.axes if ax.get_title() == "Shapley")
    assert shapley.images[0].get_clim() == (key.vmin, key.vmax)
    assert shapley.images[0].get_cmap().name == colour_keys.DIVERGING_CMAP
    assert figure_audit.problems(fig) == []
    with pytest.raises(ValueError, match="negative"):
        colour_keys.real_range(phi, "Shapley value")


def test_the_audit_finds_what_the_issue_found():
    """A signed map in 'bwr' on 0..1, a photo grid's map without a key, a tiny colour bar, a legend on the bars."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(8, 3))
    axes[0].imshow(np.random.rand(8, 8, 3))
    axes[0].set_label(colour_keys.PHOTO)
    shown = axes[1].imshow(np.random.randn(8, 8), cmap="viridis")
    tiny = fig.colorbar(shown, ax=axes[1], shrink=0.3)
    tiny.set_label("a label much too long to fit beside this small colour bar in this figure at all, really")
    axes[2].imshow(np.random.rand(8, 8))
    found = figure_audit.problems(fig)
    assert any("signed map" in problem for problem in found)
    assert any("has no key" in problem for problem in found)
    assert any("long, under 0.8" in problem for problem in found)
    assert any("runs past the figure's edge" in problem for problem in found)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(np.arange(6), np.ones(6), label="AUC")
    ax.legend()
    assert any("covers data" in problem for problem in figure_audit.problems(fig))
    fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
    ax.bar(np.arange(6), np.ones(6), label="AUC")
    ax.plot(np.arange(6), np.ones(6), label="line")
    viz.legend_outside(ax)
    assert figure_audit.problems(fig) == []


def test_show_grid_refuses_maps_without_a_key():
    with pytest.raises(ValueError, match="need a key"):
        viz.show_grid([np.random.rand(4, 4)])
    key = colour_keys.normalised("each map divided by its maximum", what="map value")
    fig = viz.show_grid([_normalised(np.random.rand(1, 4, 4))[0], np.random.rand(8, 8, 3)], key=key)
    assert [ax.get_label() for ax in fig.axes if ax.images] == [colour_keys.KEYED + key.label, colour_keys.PHOTO]
    assert figure_audit.problems(fig) == []


def test_the_stand_in_banner_gets_its_own_strip_below_rotated_labels(monkeypatch):
    """The banner lies below everything else the figure draws (01's bar chart: rotated class names)."""
    import matplotlib.pyplot as plt

    monkeypatch.setenv("XAI_KIT_STANDIN", "1")
    monkeypatch.delenv("XAI_KIT_BANNER_BY_BUILDER", raising=False)
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(data.CLASSES, np.linspace(10, 90, 10))
    plt.setp(ax.get_xticklabels(), rotation=30)
    height = fig.get_size_inches()[1]
    viz.stamp_standin(fig)
    assert fig.get_size_inches()[1] > height
    renderer = fig.canvas.get_renderer()
    banner = next(text for text in fig.texts if text.get_text() == assets.STANDIN_BANNER)
    banner_top = banner.get_window_extent(renderer).y1
    labels_bottom = min(label.get_window_extent(renderer).y0 for label in ax.get_xticklabels())
    assert banner_top < labels_bottom and fig.get_tightbbox(renderer).y0 >= 0
