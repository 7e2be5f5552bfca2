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

The course gradebook is SQLite (``COURSE/gradebook.db``) or a database server such as PostgreSQL
(``course init --db-url``), where shards on several machines merge at once: each merge is one
transaction of one student's rows, and no two shards hold the same student
(:mod:`autograder.course.shards`). A worker's gradebook is always a local SQLite file:
:func:`snapshot` fills it from the course's, whatever its database.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


#: What a worker's gradebook needs to autograde (the course, its students, assignments and cells),
#: without anyone's submissions: the tables of nbgrader's schema less its submission tables.
DEFINITION_TABLES = ("course", "student", "assignment", "notebook", "base_cell", "source_cell",
                     "grade_cells", "solution_cells", "task_cells")


def snapshot(course_db_url: str, target: Path) -> Path:
    """A consistent copy of the course gradebook in the SQLite file ``target``: SQLite's backup API
    for a SQLite course (safe while formgrader writes), the definition tables otherwise."""
    from sqlalchemy.engine import make_url

    if not course_db_url.startswith("sqlite:"):
        copy_tables(course_db_url, f"sqlite:///{target}", DEFINITION_TABLES)
        return target
    source, copy = sqlite3.connect(make_url(course_db_url).database), sqlite3.connect(target)
    try:
        with copy:
            source.backup(copy)
    finally:
        source.close()
        copy.close()
    return target


def copy_tables(source_url: str, target_url: str, tables=None) -> None:
    """Copy the rows of nbgrader's tables (all, or those named in ``tables``) into a new gradebook at
    ``target_url``, read in one transaction (repeatable read on a server: one consistent state).

    nbgrader's ids are strings (UUIDs), so rows keep their keys and every reference between them."""
    from nbgrader.api import Base, Gradebook
    from sqlalchemy import create_engine

    from autograder.course.folder import ensure_venv_on_path

    ensure_venv_on_path()  # a new gradebook runs alembic from PATH
    Gradebook(target_url).close()  # nbgrader's schema and alembic version, as a new gradebook has them
    source, target = create_engine(source_url), create_engine(target_url)
    try:
        reading = source.connect()
        if source.dialect.name != "sqlite":
            reading = reading.execution_options(isolation_level="REPEATABLE READ")
        with reading, reading.begin(), target.begin() as writing:
            if tables is None or "course" in tables:  # the row a new gradebook adds ("default_course")
                writing.execute(Base.metadata.tables["course"].delete())
            for table in Base.metadata.sorted_tables:
                if tables is not None and table.name not in tables:
                    continue
                rows = [dict(row._mapping) for row in reading.execute(table.select())]
                if rows:
                    writing.execute(table.insert(), rows)
    finally:
        source.dispose()
        target.dispose()


def holds_assignments(db_url: str) -> bool:
    """Whether the gradebook at ``db_url`` exists with at least one assignment in it."""
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            if "assignment" not in inspect(connection).get_table_names():
                return False
            return connection.execute(text("SELECT count(*) FROM assignment")).scalar() > 0
    finally:
        engine.dispose()


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
    """Write ``result`` (:func:`read_result`) into the open course ``gradebook``, in one transaction."""
    import warnings

    from nbgrader.api import MissingEntry
    from sqlalchemy.exc import SAWarning

    with warnings.catch_warnings():
        # nbgrader's add_submission walks relationships before the new row is in the session
        # (SQLAlchemy warns; nbgrader's own autograde does the same): nothing is lost.
        warnings.simplefilter("ignore", SAWarning)
        try:
            _merge(gradebook, assignment, student, result, MissingEntry)
        except BaseException:
            gradebook.db.rollback()  # one transaction per notebook: all of it is written, or none
            raise


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
