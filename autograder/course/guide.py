"""The grading guide: for every manually graded cell, the question, the model answer and what earns
each point (the rubric), for graders only.

Where it comes from: the instructor (source) notebook. A written answer's cell (``[answer]`` in
the assignment source) holds the model answer; a manually graded code cell (``[solution]
points=N``) holds the model code between ``### BEGIN SOLUTION`` and ``### END SOLUTION``. The
rubric lines (``# RUBRIC: ...`` in the source, see ``autograder/authoring/source_format.py``) are written
into the same cells, inside what nbgrader clears from the release, under the heading
``source_format.RUBRIC_HEADING``. So the release never holds them, and the publish scan refuses any file
that does.

Where graders find it: ``COURSE/grading_guide/NN.md`` (written by ``course init``), open beside
formgrader; one section per manual cell, named by its grade id as formgrader shows it.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from autograder.course.folder import Course
from autograder.authoring.source_format import split_rubric


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def manual_cells(source_notebook) -> list[dict]:
    """Every manually graded cell: ``{grade_id, points, question, answer, rubric, kind}``, in order.
    The question is the markdown cell just before it."""
    cells, question = [], ""
    for cell in source_notebook.cells:
        meta = _nbgrader(cell)
        if meta.get("solution") and meta.get("grade"):
            text = cell.source
            if cell.cell_type == "code":
                text = "\n".join(re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", text, flags=re.S))
            answer, rubric = split_rubric(text)
            cells.append({"grade_id": meta["grade_id"], "points": meta.get("points", 0), "question": question,
                          "answer": answer, "rubric": rubric, "kind": cell.cell_type})
        if cell.cell_type == "markdown" and not meta:
            question = cell.source
    return cells


def guide_markdown(assignment: str, source_notebook) -> str:
    """The guide of one assignment as Markdown."""
    cells = manual_cells(source_notebook)
    total = sum(cell["points"] for cell in cells)
    lines = [f"# Grading guide: {assignment} (graders only: never give this to students)", "",
             f"{len(cells)} manually graded cells, {total:g} points. In formgrader, open the submission and find "
             "the cell by its id; score it against the rubric, and comment what was missing.", ""]
    for cell in cells:
        lines += [f"## `{cell['grade_id']}` ({cell['points']:g} points)", ""]
        if cell["question"]:
            lines += ["**Question.**", "", *[f"> {line}" for line in cell["question"].splitlines()], ""]
        lines += ["**Model answer.**", ""]
        if cell["kind"] == "code":
            lines += ["```python", cell["answer"], "```", ""]
        else:
            lines += [cell["answer"], ""]
        lines += ["**Rubric.**", ""]
        lines += [f"- {item}" for item in cell["rubric"]] or ["- (no rubric written: score against the model answer)"]
        lines.append("")
    return "\n".join(lines)


def write_guides(course: Course) -> list[Path]:
    """``COURSE/grading_guide/NN.md`` for every assignment of the course."""
    folder = course.root / "grading_guide"
    folder.mkdir(exist_ok=True)
    written = []
    for assignment in course.assignments:
        source = nbformat.read(str(course.path("source", assignment=assignment) / f"{assignment}.ipynb"), 4)
        path = folder / f"{assignment}.md"
        path.write_text(guide_markdown(assignment, source))
        written.append(path)
    return written
