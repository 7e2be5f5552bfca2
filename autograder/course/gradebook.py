"""One notebook's autograde results carried from a grading worker's gradebook into the course's.

Each grading worker runs ``nbgrader autograde`` against its own copy of the course gradebook
(SQLite has one writer at a time), so what it leaves there is exactly what ``nbgrader autograde``
leaves: per graded cell ``Grade.auto_score`` and ``needs_manual_grade``, per answer cell
``Comment.auto_comment`` ("No response." for an answer left as released), the submission's
``timestamp`` and the notebook's ``late_submission_penalty``. :func:`read_result` reads those
fields right after the notebook is graded; :func:`merge_result` writes them into the course
gradebook, from the one process that writes it, with nbgrader's own API
(:class:`nbgrader.api.Gradebook`), and with nbgrader's own rule for manual grades
(``nbgrader.preprocessors.SaveAutoGrades``): a manual score is never overwritten, and a cell that
has one is flagged for review (``needs_manual_grade``) because its notebook was graded again.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def snapshot(course_db: Path, target: Path) -> Path:
    """A consistent copy of the course gradebook (SQLite's backup API: safe while formgrader writes)."""
    source, copy = sqlite3.connect(course_db), sqlite3.connect(target)
    try:
        with copy:
            source.backup(copy)
    finally:
        source.close()
        copy.close()
    return target


def read_result(worker_db_url: str, assignment: str, student: str) -> dict:
    """What ``nbgrader autograde`` left in a worker's gradebook for one notebook (plain data)."""
    from nbgrader.api import Gradebook

    with Gradebook(worker_db_url) as gradebook:
        submission = gradebook.find_submission(assignment, student)
        notebook = gradebook.find_submission_notebook(assignment, assignment, student)
        return {
            "timestamp": submission.timestamp.isoformat() if submission.timestamp else None,
            "late_submission_penalty": notebook.late_submission_penalty,
            "grades": {grade.name: {"auto_score": grade.auto_score, "needs_manual_grade": grade.needs_manual_grade}
                       for grade in notebook.grades},
            "comments": {comment.name: comment.auto_comment for comment in notebook.comments},
        }


def zero_result(gradebook, assignment: str) -> dict:
    """The result of a notebook that could not be graded: every cell 0 (as nbgrader scores a
    notebook that is missing), no comment."""
    notebook = gradebook.find_notebook(assignment, assignment)
    return {"timestamp": None, "late_submission_penalty": None,
            "grades": {cell.name: {"auto_score": 0.0, "needs_manual_grade": False} for cell in notebook.grade_cells},
            "comments": {}}


def merge_result(gradebook, assignment: str, student: str, result: dict) -> None:
    """Write ``result`` (:func:`read_result`) into the open course ``gradebook``."""
    import warnings

    from nbgrader.api import MissingEntry
    from sqlalchemy.exc import SAWarning

    with warnings.catch_warnings():
        # nbgrader's add_submission walks relationships before the new row is in the session
        # (SQLAlchemy warns; nbgrader's own autograde does the same): nothing is lost.
        warnings.simplefilter("ignore", SAWarning)
        _merge(gradebook, assignment, student, result, MissingEntry)


def _merge(gradebook, assignment: str, student: str, result: dict, MissingEntry) -> None:  # noqa: N803
    try:
        gradebook.find_student(student)
    except MissingEntry:
        gradebook.add_student(student)
    submission = gradebook.update_or_create_submission(assignment, student)
    submission.timestamp = None if result["timestamp"] is None else _utc(result["timestamp"])
    notebook = gradebook.find_submission_notebook(assignment, assignment, student)
    for grade in notebook.grades:
        new = result["grades"].get(grade.name, {"auto_score": 0.0, "needs_manual_grade": False})
        grade.auto_score = new["auto_score"]
        grade.needs_manual_grade = bool(new["needs_manual_grade"]) or grade.manual_score is not None
    for comment in notebook.comments:
        comment.auto_comment = result["comments"].get(comment.name)
    notebook.late_submission_penalty = result["late_submission_penalty"]
    gradebook.db.commit()


def _utc(text: str):
    from nbgrader.utils import parse_utc

    return parse_utc(text)
