"""`python -m autograder figures`: named PNGs + HTML, reproducible, marked on the stand-in, clear when offline."""

import base64
import io
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import nbformat
import numpy as np

from autograder.authoring import figures


def _png(color: float) -> str:
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.imshow(np.full((4, 4), color), vmin=0, vmax=1)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def test_figures_are_named_after_their_cells_and_stamped_on_the_standin(tmp_path):
    notebook = nbformat.v4.new_notebook()
    one = nbformat.v4.new_code_cell("plot")
    one["id"] = "fig_layers"
    one.outputs = [nbformat.v4.new_output("display_data", data={"image/png": _png(0.2)})]
    two = nbformat.v4.new_code_cell("plots")
    two["id"] = "fig_classes"
    two.outputs = [nbformat.v4.new_output("display_data", data={"image/png": _png(0.4)}),
                   nbformat.v4.new_output("stream", name="stdout", text="x"),
                   nbformat.v4.new_output("display_data", data={"image/png": _png(0.8)})]
    notebook.cells = [one, two]
    written = figures.extract_figures(notebook, tmp_path, standin=False)
    assert [p.name for p in written] == ["fig_layers.png", "fig_classes_1.png", "fig_classes_2.png"]
    assert written[0].read_bytes() == base64.b64decode(one.outputs[0]["data"]["image/png"])
    (tmp_path / "s").mkdir()
    stamped = figures.extract_figures(notebook, tmp_path / "s", standin=True)
    image = plt.imread(stamped[0])
    red = (image[..., 0] > 0.9) & (image[..., 1] < 0.1) & (image[..., 2] < 0.1)
    assert red.sum() > 200, "the stand-in banner (white on red) is missing"
    assert figures.stamp_png(base64.b64decode(_png(0.2))) == figures.stamp_png(base64.b64decode(_png(0.2)))


def test_without_assets_it_names_the_fetch_command(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "XAI_KIT_DATA_DIR": str(tmp_path), "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "autograder", "figures", "--out", str(tmp_path / "f")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "python -m student_src.fetch" in result.stderr and "--standin" in result.stderr
    assert "Traceback" not in result.stderr


def test_two_standin_runs_write_the_same_figures(tmp_path, standin_assets):
    first = figures.make_figures(tmp_path / "a", ["01_hooks"], standin=True, progress=False)["01_hooks"]
    second = figures.make_figures(tmp_path / "b", ["01_hooks"], standin=True, progress=False)["01_hooks"]
    names = [p.name for p in first]
    assert "fig_accuracy_per_class.png" in names and "fig_feature_maps_layer1_to_layer4_5.png" in names
    assert names == [p.name for p in second]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second))
    assert (tmp_path / "a" / "01_hooks" / "01_hooks.html").stat().st_size > 10_000
