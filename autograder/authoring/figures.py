"""``make figures`` / ``python -m autograder figures``: every solution figure, regenerated.

Executes each solution notebook (``solutions/notebooks/NN_name.ipynb``) headless, top to bottom,
with the downloaded hub model and CIFAR-10, and writes

    solutions/figures/NN_name/<cell id>[_<k>].png     every figure, named after the cell that drew it
    solutions/figures/NN_name/NN_name.html            the executed notebook

Runs are seeded (the notebooks seed torch; ``PYTHONHASHSEED`` is fixed here), so two runs write
the same figures. Without the downloaded files it stops with the fetch command, unless
``--standin`` is given: then every PNG also gets the red stand-in banner burnt in, whatever code drew it.
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
import time
from pathlib import Path

import nbformat

from autograder.authoring import build
from student_src import assets

FIGURES_DIR = build.REPO_ROOT / "solutions" / "figures"
CELL_TIMEOUT = 600


def _execution_env(standin: bool) -> dict:
    env = build.grading_env()
    env.pop("NBGRADER_EXECUTION", None)  # the full notebooks, not the grading subset
    env["PYTHONHASHSEED"] = "0"
    if standin:
        env[assets.STANDIN_ENV] = "1"
        env["XAI_KIT_BANNER_BY_BUILDER"] = "1"  # extract_figures burns the banner into every PNG
    return env


def execute(notebook_path: Path, env: dict) -> nbformat.NotebookNode:
    """Run a notebook in a fresh kernel with ``env``; errors stop the run (a figure build must be whole)."""
    from nbclient import NotebookClient

    from autograder.engine import check_server

    server = check_server.ensure_running()  # the solution notebooks' hidden tests call it
    env = {**env, check_server.SOCKET_ENV: server.address}
    notebook = nbformat.read(str(notebook_path), as_version=4)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # the kernel inherits the environment of this process
    try:
        NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                       resources={"metadata": {"path": str(build.REPO_ROOT / "notebooks")}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return notebook


def stamp_png(data: bytes) -> bytes:
    """Burn the stand-in banner into a PNG (for figures not drawn through ``student_src.viz``)."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    image = plt.imread(io.BytesIO(data), format="png")
    height, width = image.shape[:2]
    fig = plt.figure(figsize=(width / 100, height / 100 + 0.3), dpi=100)
    ax = fig.add_axes((0, 0.3 / (height / 100 + 0.3), 1, 1 - 0.3 / (height / 100 + 0.3)))
    ax.imshow(image)
    ax.axis("off")
    fig.text(0.5, 0.0, assets.STANDIN_BANNER, ha="center", va="bottom", fontsize=8, color="white",
             backgroundcolor="red", fontweight="bold")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def extract_figures(notebook: nbformat.NotebookNode, target: Path, standin: bool) -> list[Path]:
    """Write every ``image/png`` output as ``<cell id>[_<k>].png``; return the paths."""
    written = []
    for cell in notebook.cells:
        pngs = [output["data"]["image/png"] for output in cell.get("outputs", [])
                if output.get("output_type") in ("display_data", "execute_result") and "image/png" in output.get("data", {})]
        for k, encoded in enumerate(pngs):
            name = f"{cell['id']}.png" if len(pngs) == 1 else f"{cell['id']}_{k + 1}.png"
            data = base64.b64decode(encoded)
            (target / name).write_bytes(stamp_png(data) if standin else data)
            written.append(target / name)
    return written


def export_html(notebook: nbformat.NotebookNode, path: Path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(notebook)
    path.write_text(body)


def make_figures(out: Path = FIGURES_DIR, assignments=None, standin: bool = False, progress: bool = True) -> dict:
    """Regenerate the figures of ``assignments`` (default: all) into ``out``; ``{assignment: [png paths]}``."""
    from student_src import data, fetch, imagenet, models

    assignments = list(assignments or build.assignment_ids())
    if standin:
        fetch.ensure_standin()
    else:
        for path, what in ((models.checkpoint_path(standin=False), "The CIFAR-10 ResNet-18 checkpoint"),
                           (assets.asset_root(False) / data.BATCH_FOLDER / "test_batch", "The CIFAR-10 test split")):
            if not path.is_file():
                raise assets.missing(what, path, standin=False)
        if any(imagenet.uses_imagenet(assignment) for assignment in assignments):
            imagenet.require_assets()
    from tqdm import tqdm

    env = _execution_env(standin)
    written = {}
    for assignment in tqdm(assignments, desc="solution notebooks", unit="nb", disable=not progress):
        target = out / assignment
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        notebook = execute(build.SOLUTION_DIR / f"{assignment}.ipynb", env)
        written[assignment] = extract_figures(notebook, target, standin)
        export_html(notebook, target / f"{assignment}.html")
    return written


def main(out: Path, assignments=None, standin: bool = False) -> int:
    started = time.monotonic()
    try:
        written = make_figures(out, assignments, standin)
    except assets.MissingAssetError as error:
        print(f"{error}\nOr regenerate on the untrained stand-in: python -m autograder figures --standin",
              file=sys.stderr)
        return 1
    for assignment, paths in written.items():
        print(f"{assignment}: {len(paths)} figures + {assignment}.html in {out / assignment}")
    print(f"{sum(map(len, written.values()))} figures in {time.monotonic() - started:.0f} s"
          + ("  (STAND-IN: untrained model, synthetic images; every figure is marked)" if standin else ""))
    return 0
