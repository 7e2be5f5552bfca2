"""Build submissions (solved, blank, mutated, tampered) and grade them with the real pipeline."""

from __future__ import annotations

import ast
import copy
import inspect
import re
from pathlib import Path

import nbformat

from autograder.authoring import build
from autograder.engine.grade import TOTAL_ITEM, grade


def replace_function(cell_source: str, name: str, new_source: str) -> str:
    """Replace the top-level ``def name`` in a cell by ``new_source`` (the rest of the cell stays)."""
    lines = cell_source.splitlines()
    for node in ast.parse(cell_source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            return "\n".join(lines[:start - 1] + new_source.splitlines() + lines[node.end_lineno:])
    raise KeyError(f"no top-level {name} in the cell")


def notebook_namespace(*modules) -> dict:
    """The reference modules' code run as if typed into notebook cells, in one namespace.

    ``hidden.run`` refuses the instructor's own functions (code under ``solutions/``), so a test
    that wants honest code to pass hands in these copies, as the solution notebooks do.
    """
    namespace = {"__name__": "__main__"}
    for module in modules:
        source = re.sub(r"^(\s*)from solutions\.\w+ import [^\n]+$", r"\1pass", inspect.getsource(module),
                        flags=re.MULTILINE)
        exec(compile(source, f"/tmp/ipykernel_tests/{module.__name__}.py", "exec"), namespace)  # noqa: S102
    return namespace


def mutant_source(function) -> tuple[str, str]:
    """(student name, source renamed to it) of a mutant called ``<student_name>__<mistake>``."""
    student_name = function.__name__.split("__")[0]
    source = inspect.getsource(function).replace(f"{function.__name__}(", f"{student_name}(", 1)
    return student_name, source


def mutated_submission(assignment: str, *mutants) -> nbformat.NotebookNode:
    """The solved submission with each mutant swapped in for the student function of its name."""
    notebook = build.solved_submission(assignment)
    for mutant in mutants:
        name, source = mutant_source(mutant)
        for cell in notebook.cells:
            if cell.get("metadata", {}).get("nbgrader", {}).get("solution") and cell.cell_type == "code":
                try:
                    cell.source = replace_function(cell.source, name, source)
                    break
                except KeyError:
                    continue
        else:
            raise KeyError(f"no solution cell of {assignment} defines {name}")
    return notebook


def with_code(notebook, grade_id: str, code: str, prepend: bool = True) -> nbformat.NotebookNode:
    """A copy of ``notebook`` with ``code`` added to the solution cell ``grade_id``."""
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = f"{code}\n{cell.source}" if prepend else f"{cell.source}\n{code}"
            return notebook
    raise KeyError(grade_id)


def blank_submission(assignment: str) -> nbformat.NotebookNode:
    return nbformat.read(str(build.RELEASE_DIR / f"{assignment}.ipynb"), as_version=4)


def edit_cell(notebook, grade_id: str, new_source: str) -> nbformat.NotebookNode:
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = new_source
            return notebook
    raise KeyError(grade_id)


def hand_in(path: Path, notebook) -> None:
    """Write a submission: a notebook, or raw bytes (a corrupt file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(notebook, bytes):
        path.write_bytes(notebook)
    else:
        nbformat.write(notebook, path)


def grade_cohort(root: Path, assignment: str, students: dict, jobs: int = 2, limits=None, extra_files=None,
                 sandbox: str = "bwrap") -> dict:
    """Grade ``{student_id: notebook or bytes}``; return ``{student_id: {item: Row}}``.

    ``extra_files`` maps a student to ``{relative path: text}`` handed in beside the notebook;
    ``sandbox``: as ``grade``'s.
    """
    submissions = root / "submissions"
    for student_id, notebook in students.items():
        hand_in(submissions / student_id / f"{assignment}.ipynb", notebook)
    for student_id, files in (extra_files or {}).items():
        for relative, text in files.items():
            path = submissions / student_id / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    rows = grade(submissions, root / "out", jobs=jobs, assignments=[assignment], progress=False, limits=limits,
                 sandbox=sandbox)
    table: dict = {}
    for row in rows:
        table.setdefault(row.student_id, {})[row.item] = row
    return table


def grade_class(root: Path, cohorts: dict, jobs: int = 2) -> dict:
    """Grade ``{assignment: {student_id: notebook}}`` in ONE ``grade`` run, all assignments side by side.

    One run pays the course build and the workers' start-up once, and keeps both workers busy
    to the end. Returns ``{assignment: {student_id: {item: Row}}}``. Every student id is
    graded under ``<assignment>-<id>`` so that each notebook is its own unit of work.
    """
    submissions = root / "submissions"
    for assignment, students in cohorts.items():
        for student_id, notebook in students.items():
            hand_in(submissions / f"{assignment}-{student_id}" / f"{assignment}.ipynb", notebook)
    rows = grade(submissions, root / "out", jobs=jobs, assignments=sorted(cohorts), progress=False)
    table: dict = {assignment: {} for assignment in cohorts}
    for row in rows:
        prefix, _, student_id = row.student_id.partition("-")
        if prefix == row.assignment:
            table[row.assignment].setdefault(student_id, {})[row.item] = row
    return table


def alternative_submissions(assignment: str, alternatives: dict) -> dict:
    """``{"alternatives_k": notebook}``: notebook k has the k-th correct alternative of every
    student function (the last one where a function has fewer), so every alternative is graded."""
    count = max(len(functions) for functions in alternatives.values())
    return {f"alternatives_{k + 1}": mutated_submission(
                assignment, *(functions[min(k, len(functions) - 1)] for functions in alternatives.values()))
            for k in range(count)}


def points_of(assignment: str) -> dict:
    """``{grade_id: points}`` of the autograded test cells of an assignment (from the release)."""
    notebook = blank_submission(assignment)
    return {cell.metadata["nbgrader"]["grade_id"]: cell.metadata["nbgrader"]["points"]
            for cell in notebook.cells
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade")
            and not cell.metadata["nbgrader"].get("solution")}


def assert_reference_full_marks(table: dict, assignment: str, points: int, manual) -> None:
    """The reference loses no autograded cell and scores every point of the release (``points``);
    its manual cells (``manual``: their number, or their grade ids) all wait for a grader."""
    assert_loses_exactly(table, "reference", assignment, set())
    assert table["reference"][TOTAL_ITEM].score == sum(points_of(assignment).values()) == points
    cells = {item for item, row in table["reference"].items() if row.kind == "manual"}
    assert (len(cells) == manual) if isinstance(manual, int) else (cells == set(manual)), sorted(cells)
    assert all(table["reference"][item].status == "needs manual grading" for item in cells)


def assert_blank_scores_zero(table: dict, assignment: str, points: int) -> None:
    """The blank release is graded, fails every autograded cell (0 of ``points``), and its
    manual cells are unanswered."""
    total = table["blank"][TOTAL_ITEM]
    assert total.status == "graded" and total.score == 0 and total.max_score == points
    autograded = [row for item, row in table["blank"].items() if row.kind == "autograded" and item != TOTAL_ITEM]
    assert len(autograded) == len(points_of(assignment)) and all(row.status == "failed" for row in autograded)
    assert {row.status for row in table["blank"].values() if row.kind == "manual"} == {"unanswered"}


def assert_loses_exactly(table: dict, student_id: str, assignment: str, failing_cells: set) -> None:
    """The student's failed autograded cells are exactly ``failing_cells``; the total matches."""
    points = points_of(assignment)
    rows = table[student_id]
    assert rows[TOTAL_ITEM].status == "graded", rows[TOTAL_ITEM].message
    failed = {item for item, row in rows.items() if row.kind == "autograded" and item != TOTAL_ITEM
              and row.status == "failed"}
    assert failed == set(failing_cells), f"{student_id}: failed {sorted(failed)}, expected {sorted(failing_cells)}"
    expected_total = sum(points.values()) - sum(points[cell] for cell in failing_cells)
    assert rows[TOTAL_ITEM].score == expected_total


def assert_alternatives_get_full_marks(table: dict, assignment: str, alternatives: dict) -> None:
    """Every notebook of :func:`alternative_submissions` was graded and lost nothing."""
    names = sorted(name for name in table if name.startswith("alternatives_"))
    assert len(names) == max(len(functions) for functions in alternatives.values())
    for name in names:
        assert_loses_exactly(table, name, assignment, set())


#: The visible message of a test cell whose call left the model in train mode (student_src/checks.py).
TRAIN_MODE = "left the model in train mode (it was in eval mode): do not call `model.train()` or `model.eval()`"
#: ... and of one whose call resized (B, h, w) maps with F.interpolate (the exception type follows "raised").
INTERPOLATE = "`F.interpolate` needs a (B, 1, h, w) tensor for 2-D (bilinear) resizing"


def assert_loses_exactly_with_messages(table: dict, student_id: str, assignment: str, messages: dict) -> None:
    """The student loses exactly the cells of ``messages``, and each cell's row message (the first
    error the cell showed) starts with ``AssertionError: `` and the expected text; ``None``: the
    cell failed, its message is the hidden check's."""
    assert_loses_exactly(table, student_id, assignment, set(messages))
    rows = table[student_id]
    for cell, expected in messages.items():
        assert rows[cell].status == "failed", (student_id, cell, rows[cell].status)
        if expected is not None:
            assert rows[cell].message.startswith(f"AssertionError: {expected}"), (student_id, cell, rows[cell].message)
