"""Every figure of every solved notebook, drawn as the notebook draws it, has a key that states
its true scale, readable text inside the figure, and no legend over data (``figure_audit``).

Each notebook runs top to bottom on the stand-in in a kernel whose ``plt.show`` audits every open
figure (with the autograder's smaller explorations, ``NBGRADER_EXECUTION``: the same figure code
on fewer images). The PNGs are left in the test's folder for a person to look at.
"""

import json

import nbformat
import pytest

from autograder.authoring import build
from student_src import assets

AUDIT_SETUP = "from tests import figure_audit as _figure_audit_module\n_figure_audit = _figure_audit_module.install()"


def _audited(assignment: str) -> nbformat.NotebookNode:
    """The solved notebook with the audit installed first, told each cell's id, and reporting last."""
    notebook = build.solved_submission(assignment)
    cells = [nbformat.v4.new_code_cell(AUDIT_SETUP)]
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cells.append(nbformat.v4.new_code_cell(f"_figure_audit.enter({cell.get('id')!r})"))
        cells.append(cell)
    cells.append(nbformat.v4.new_code_cell("print(_figure_audit.report())"))
    notebook.cells = cells
    return notebook


def _figure_cells(assignment: str) -> set:
    return {cell.get("id") for cell in build.solved_submission(assignment).cells
            if cell.cell_type == "code" and cell.get("id", "").startswith("fig_")}


@pytest.mark.parametrize("assignment", build.assignment_ids())
def test_every_figure_is_keyed_and_readable(assignment, tmp_path, standin_assets):
    from nbclient import NotebookClient

    env = build.grading_env(threads=1)
    env.update({"NBGRADER_EXECUTION": "autograde", "FIGURE_AUDIT_DIR": str(tmp_path / "figures"),
                assets.DATA_DIR_ENV: str(standin_assets), assets.STANDIN_ENV: "1"})
    notebook = _audited(assignment)
    (tmp_path / "run").mkdir()
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path / "run")}}).execute(env=env)
    report = notebook.cells[-1].outputs[-1]["text"].strip().splitlines()[-1]
    figures = json.loads(report)
    drawn = {figure["cell"] for figure in figures}
    assert _figure_cells(assignment) <= drawn, f"figure cells that showed no figure: {_figure_cells(assignment) - drawn}"
    found = [f"{figure['cell']} ({figure['png']}): {problem}" for figure in figures for problem in figure["problems"]]
    assert not found, "\n".join(found)
