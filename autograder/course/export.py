"""``python -m autograder export --course PATH --format long|wide|canvas|moodle [--out F]``.

All formats are read from the course gradebook (autograded and manual scores together; a cell's
score is the grader's manual score when there is one, else the autograder's):

- ``long``: one row per student, assignment and graded cell: ``student, assignment, cell, score,
  max_score, status`` (``autograded``, ``manually graded``, ``not graded yet``, ``to review``: a
  manual score whose notebook changed since), plus a ``total`` row per submission (late penalty
  applied) with the status ``complete`` or ``incomplete``.
- ``wide``: one row per student of the roster, a column per assignment (empty: not handed in).
- ``canvas``: Canvas's gradebook import: ``Student, ID, SIS User ID, SIS Login ID, Section``, a
  column per assignment, and Canvas's ``Points Possible`` row. ``ID`` is the student's
  ``lms_user_id`` (Canvas's user id), ``SIS User ID`` the course id, ``SIS Login ID`` the email.
  A column whose name is no Canvas assignment yet becomes a new one on import.
- ``moodle``: Moodle's grade import (CSV): ``Email address, ID number, First name, Last name`` and a
  column per assignment; map "Email address" (or "ID number") to the user at import.

Totals while a manual cell is not graded yet count it as 0 and are listed on stderr by the command.
Every text cell goes through ``autograder.engine.grade.csv_cell`` (one line, bounded, no formula). The
default output is ``COURSE/exports/<format>.csv``; a path inside the kit's checkout that git does
not ignore is refused: grades never land in the kit's repository.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from autograder.course.folder import Course, CourseError

FORMATS = ("long", "wide", "canvas", "moodle")
LONG_FIELDS = ("student", "assignment", "cell", "score", "max_score", "status")
CANVAS_FIELDS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
MOODLE_FIELDS = ("Email address", "ID number", "First name", "Last name")


def _number(value) -> str:
    return "" if value is None else f"{float(value):g}"


def cell_status(grade) -> str:
    if grade.manual_score is not None:
        return "to review" if grade.needs_manual_grade else "manually graded"
    return "not graded yet" if grade.needs_manual_grade else "autograded"


def read_course(course: Course) -> dict:
    """Plain data: ``{"students": [...], "assignments": {name: max}, "cells": [...], "totals": {...}}``."""
    data = {"students": [], "assignments": {}, "cells": [], "totals": {}}
    with course.gradebook() as gradebook:
        for assignment in course.assignments:
            data["assignments"][assignment] = float(gradebook.find_assignment(assignment).max_score)
        for student in sorted(gradebook.students, key=lambda s: s.id):
            data["students"].append({"id": student.id, "first_name": student.first_name or "",
                                     "last_name": student.last_name or "", "email": student.email or "",
                                     "lms_user_id": student.lms_user_id or ""})
            for assignment in course.assignments:
                try:
                    notebook = gradebook.find_submission_notebook(assignment, assignment, student.id)
                except Exception:  # noqa: BLE001 (MissingEntry: not handed in)
                    continue
                complete = True
                for grade in sorted(notebook.grades, key=lambda g: g.name):
                    status = cell_status(grade)
                    complete &= status != "not graded yet"
                    data["cells"].append({"student": student.id, "assignment": assignment, "cell": grade.name,
                                          "score": grade.score, "max_score": grade.max_score, "status": status})
                penalty = notebook.late_submission_penalty or 0.0
                data["totals"][(student.id, assignment)] = {
                    "score": max(0.0, float(notebook.score) - penalty), "max_score": float(notebook.max_score),
                    "late_penalty": penalty, "complete": complete}
    return data


def _csv(header, rows) -> str:
    from autograder.engine.grade import csv_cell

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_cell(value) if isinstance(value, str) else _number(value) for value in row])
    return buffer.getvalue()


def long_csv(data: dict) -> str:
    rows = [[c["student"], c["assignment"], c["cell"], c["score"], c["max_score"], c["status"]] for c in data["cells"]]
    for (student, assignment), total in sorted(data["totals"].items()):
        rows.append([student, assignment, "total", total["score"], total["max_score"],
                     "complete" if total["complete"] else "incomplete"])
    rows.sort(key=lambda row: (row[0], row[1], row[2] == "total", row[2]))
    return _csv(LONG_FIELDS, rows)


def _scores(data: dict, student: str) -> list:
    return [data["totals"].get((student, a), {}).get("score") for a in data["assignments"]]


def wide_csv(data: dict) -> str:
    header = ["student", "first_name", "last_name", "email", *data["assignments"]]
    rows = [[s["id"], s["first_name"], s["last_name"], s["email"], *_scores(data, s["id"])] for s in data["students"]]
    return _csv(header, rows)


def canvas_csv(data: dict) -> str:
    header = [*CANVAS_FIELDS, *data["assignments"]]
    rows = [["    Points Possible", "", "", "", "", *data["assignments"].values()]]
    for s in data["students"]:
        name = ", ".join(part for part in (s["last_name"], s["first_name"]) if part) or s["id"]
        rows.append([name, s["lms_user_id"], s["id"], s["email"], "", *_scores(data, s["id"])])
    return _csv(header, rows)


def moodle_csv(data: dict) -> str:
    header = [*MOODLE_FIELDS, *data["assignments"]]
    rows = [[s["email"], s["id"], s["first_name"], s["last_name"], *_scores(data, s["id"])] for s in data["students"]]
    return _csv(header, rows)


WRITERS = {"long": long_csv, "wide": wide_csv, "canvas": canvas_csv, "moodle": moodle_csv}


def export(course: Course, format: str, out: Path | None = None) -> tuple[Path, list]:
    """Write the export; ``(path, [(student, assignment), ...] still incomplete)``."""
    from autograder.course.init import inside_kit_checkout

    if format not in WRITERS:
        raise CourseError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    out = Path(out).expanduser().absolute() if out else course.root / "exports" / f"{format}.csv"
    if inside_kit_checkout(out):
        raise CourseError(f"{out} is inside the kit's repository and not git-ignored: grades never go there "
                          f"(default: {course.root / 'exports'})")
    data = read_course(course)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_text(WRITERS[format](data))
    os.replace(partial, out)
    incomplete = sorted(key for key, total in data["totals"].items() if not total["complete"])
    return out, incomplete
