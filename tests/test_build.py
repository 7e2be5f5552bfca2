"""The notebook build: source format, reproducibility, committed outputs up to date, no leaks."""

import nbformat
import pytest

from autograder.authoring import build, publish, source_format

REPO = source_format.REPO_ROOT


def _student_files() -> list:
    """What students get from this checkout: the release notebooks and the student_src code."""
    return sorted(build.RELEASE_DIR.glob("*.ipynb")) + sorted((REPO / "student_src").rglob("*.py"))


def test_committed_release_and_solution_notebooks_are_up_to_date():
    assert build.release(check=True) == []


def test_every_assignment_has_a_release_and_solution_notebook():
    assert build.assignment_ids(), "no assignment sources found"
    for assignment in build.assignment_ids():
        assert (build.RELEASE_DIR / f"{assignment}.ipynb").is_file()
        assert (build.SOLUTION_DIR / f"{assignment}.ipynb").is_file()


def test_release_leaks_no_solution_no_hidden_test_no_grader_import():
    """The same scan that ``publish`` runs on the student repository (autograder/authoring/publish.py)."""
    assert len(publish.grader_only_lines()) > 10
    assert publish.grader_only_findings(REPO, _student_files()) == []


def test_release_has_stubs_and_locked_tests():
    for path in build.RELEASE_DIR.glob("*.ipynb"):
        cells = nbformat.read(str(path), 4).cells
        solutions = [c for c in cells if c.get("metadata", {}).get("nbgrader", {}).get("solution")]
        tests = [c for c in cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")
                 and not c.metadata["nbgrader"].get("solution")]
        assert solutions and tests
        assert all("raise NotImplementedError()" in c.source for c in solutions if c.cell_type == "code")
        assert all(c.metadata["nbgrader"]["locked"] for c in tests)
        assert all(not c.get("outputs") for c in cells if c.cell_type == "code")


def test_source_format_parses_kinds_attributes_and_rejects_mistakes(tmp_path):
    source = tmp_path / "99_demo.py"
    source.write_text("# preamble ignored\n# %% [markdown]\n# # Title\n#\n# text\n"
                      "# %% [solution] id=f functions=solutions.hooks:top_channels\n"
                      "# %% [tests] id=t points=2\nassert f\n"
                      "# %% [answer] id=q points=1\n# model answer\n# RUBRIC: 1 point: gives the model answer\n")
    notebook = source_format.build_notebook(source)
    kinds = [(c.cell_type, c.get("metadata", {}).get("nbgrader", {}).get("grade_id")) for c in notebook.cells]
    # The title, then the shared header (Colab badge, set-up cell: not tracked by nbgrader), then the cells.
    assert kinds == [("markdown", None), ("markdown", None), ("code", None), ("code", "f"),
                     ("code", "t"), ("markdown", "q")]
    assert notebook.cells[0].source == "# Title\n\ntext"
    assert "colab.research.google.com/github/" in notebook.cells[1].source
    assert "/notebooks/99_demo.ipynb" in notebook.cells[1].source
    assert notebook.cells[3].source.startswith("def top_channels(") and "### END SOLUTION" in notebook.cells[3].source
    assert notebook.cells[4].metadata.nbgrader["points"] == 2 and notebook.cells[4].metadata.nbgrader["locked"]
    assert notebook.cells[5].source == "model answer\n\n**Rubric (graders only).**\n- 1 point: gives the model answer"
    assert [c.id for c in notebook.cells] == [c.id for c in source_format.build_notebook(source).cells]
    for bad, message in (("# %% [tests] id=t\nx\n", "need points"),
                         ("# %% [bogus]\n", "unknown cell kind"),
                         ("# %% [solution] id=s functions=solutions.hooks:nope\n", "no top-level"),
                         ("# %% [code] id=a\n# %% [code] id=a\n", "duplicate cell id"),
                         ("# %% [answer] id=q points=2\n# model\n", "needs its rubric"),
                         ("# %% [answer] id=q points=2\n# model\n# RUBRIC: 1 point: half\n", "gives 1 points, the cell has 2"),
                         ("# %% [answer] id=q points=1\n# RUBRIC: says it\n", "must read 'N point")):
        source.write_text(bad)
        with pytest.raises(source_format.SourceError, match=message):
            source_format.build_notebook(source)


def test_every_test_cell_names_existing_hidden_checks_at_top_level():
    """The grader scores each test cell from the trusted verdicts of the checks its source names
    (``nbgrader_plugins.ScoreTestCells``): each autograded cell must name at least one, every
    named check must exist, and each call must run whenever the cell runs (top level)."""
    import ast
    import importlib

    from autograder.engine.nbgrader_plugins import checks_named

    for assignment in build.assignment_ids():
        source = nbformat.read(str(build.SOLUTION_DIR / f"{assignment}.ipynb"), 4)
        tests = [c for c in source.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")
                 and not c.metadata["nbgrader"].get("solution") and c.cell_type == "code"]
        assert tests, assignment
        for cell in tests:
            grade_id = cell.metadata["nbgrader"]["grade_id"]
            named = checks_named(cell.source)
            assert named, f"{assignment}/{grade_id}: no hidden.run(...) with literal names"
            for name in named:
                module, check = name.split(".")
                assert callable(getattr(importlib.import_module(f"autograder.engine.checks.{module}"), check, None)), name
            top_level = {f"{node.value.args[0].value}.{node.value.args[1].value}"
                         for node in ast.parse(cell.source).body
                         if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
                         and checks_named(ast.unparse(node))}
            assert top_level == named, f"{assignment}/{grade_id}: hidden.run inside a block: {named - top_level}"
