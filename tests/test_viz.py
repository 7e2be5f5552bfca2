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
