"""Plots return figures, carry titles, and say so when the stand-in is in use."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from student_src import assets, data, viz


def _texts(fig):
    return [t.get_text() for t in fig.texts] + [ax.get_title() for ax in fig.axes]


def test_overlay_blends_and_resizes():
    image = np.zeros((32, 32, 3))
    heatmap = np.ones((4, 4))
    blended = viz.overlay_heatmap(image, heatmap, alpha=0.5, cmap="gray")
    assert blended.shape == (32, 32, 3) and np.allclose(blended, 0.5)
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
               viz.show_explanations(images, {"Grad-CAM": np.random.rand(2, 4, 4)})]
    for fig in figures:
        assert assets.STANDIN_BANNER in _texts(fig)


def _colorbar_labels(fig):
    """The labels of the colour bars of ``fig`` (a colour bar's axes has a y label and no image)."""
    return [ax.get_ylabel() for ax in fig.axes if not ax.images and ax.get_ylabel()]


def test_every_heatmap_and_feature_map_grid_has_a_key():
    images = np.random.rand(2, 32, 32, 3)
    fig = viz.show_explanations(images, {"Grad-CAM": np.random.rand(2, 4, 4)})
    assert _colorbar_labels(fig) == ["heatmap (each map min-max scaled to [0, 1] on its own)"]
    shared = viz.show_feature_maps(np.random.rand(8, 4, 4), n_channels=8, title="layer4")
    assert _colorbar_labels(shared) == ["activation"] and "one colour scale for all channels" in shared._suptitle.get_text()
    scales = {tuple(ax.images[0].get_clim()) for ax in shared.axes if ax.images}
    assert len(scales) == 1, "a shared scale: every channel drawn with the same colour limits"
    own = viz.show_feature_maps(np.random.rand(8, 4, 4) * np.arange(1, 9)[:, None, None], n_channels=8, shared_scale=False)
    assert "each channel on its own colour scale" in own._suptitle.get_text()
    assert len([ax for ax in own.axes if not ax.images]) == 8, "one small colour bar per channel"
    keyed = viz.show_grid(list(images), heatmap_key="Grad-CAM overlay")
    assert _colorbar_labels(keyed) == ["Grad-CAM overlay"]


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
