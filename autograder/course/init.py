"""``python -m autograder course init PATH``: a real nbgrader course folder for one term.

What it writes (see :mod:`autograder.course.folder` for the layout):

- ``nbgrader_config.py``: loads the kit's settings from the *installed* kit
  (``autograder/course/nbgrader_config.py``: timeouts, output limits, the kit's preprocessors
  that run the hidden checks outside the kernel and score test cells from their verdicts), then
  sets the course's own: ``course_id``, ``db_url`` (SQLite in the folder, or ``--db-url``: a
  database server, e.g. PostgreSQL, that must exist and be empty), the exchange root and timezone,
  the late penalty. nbgrader's own commands (``nbgrader generate_assignment``, ``autograde``,
  ``formgrader``, ``generate_feedback``, ``release_feedback``, ``export``) run on it unchanged from
  inside the folder, wherever it is, with the kit's virtual environment: ``make install`` installs
  ``autograder``, ``solutions`` and ``student_src`` there (editable), so the configuration, the
  hidden checks and the kernels import them with no ``PYTHONPATH`` and from any working folder.
  One mechanism, the installed package: a course folder holds no path into the kit (only the
  checkout that wrote it, named in its error message), so it moves between machines and shards
  as is. Run by a Python without the kit, the configuration exits with a message saying which
  environment to activate, rather than let nbgrader log a config error and grade without the
  kit's preprocessors (every solved notebook 0) or render student content unsanitized.
- ``source/`` built from the kit's assignment sources, ``release/`` and the gradebook's
  assignments (``nbgrader generate_assignment``), each assignment's due date (given in the
  course's timezone, stored in UTC as nbgrader does).
- ``grading_guide/`` (model answers and rubrics for graders, :mod:`autograder.course.guide`).
- ``jupyter_server_config.json``: formgrader enabled for a Jupyter server started in the folder.

A course holds student data: by default it goes outside the kit's repository, and a path inside
the kit's checkout is refused unless git ignores it.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from autograder.authoring.source_format import REPO_ROOT
from autograder.course.folder import COURSE_FILE, Course, CourseError

DEFAULT_COURSE_ID = "cnn-explainability"
DEFAULT_LOCATION = Path("~/xai-kit-courses")
LATE_PENALTIES = ("none", "zero")

CONFIG_TEMPLATE = '''"""nbgrader configuration of the course {course_id!s} (written by `python -m autograder course init`).

The kit's settings come first (its timeouts, output limits and preprocessors, from the kit
installed in the Python environment that runs nbgrader: `make install` in the kit's checkout
installs it, editable, into its .venv); then this course's own. The folder works wherever that
environment runs nbgrader: from any working folder, with no PYTHONPATH, on any machine that has
the kit installed. Run nbgrader's commands with the kit's environment (e.g. `nbgrader
generate_feedback 01_hooks` after `source KIT/.venv/bin/activate`). Grade with the kit's
guarded, parallel grader, `python -m autograder grade --course .`: plain `nbgrader autograde`
gives the same scores but runs the notebooks outside the kit's sandbox.
"""

import os
import sys

KIT = {kit_root!r}  # the kit's checkout that wrote this file (named in the message below only)

try:
    import autograder.course
except ModuleNotFoundError as missing:
    if missing.name not in ("autograder", "autograder.course"):
        raise
    # Without the kit nbgrader would log a generic config error and go on with its defaults:
    # hidden checks not run (every solved notebook scores 0), student content not sanitized.
    sys.exit(f"{{__file__}}: this course needs the CNN explainability course kit (Python package "
             f"`autograder`), which {{sys.executable}} cannot import. Run nbgrader from the kit's "
             f"virtual environment: `source {{KIT}}/.venv/bin/activate` (this course was made by the "
             f"kit at {{KIT}}; on another machine, its own checkout), after `make install` there if "
             f"it has no .venv.")

c = get_config()  # noqa: F821 (provided by nbgrader)
load_subconfig(os.path.join(os.path.dirname(autograder.course.__file__), "nbgrader_config.py"))  # noqa: F821

c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
# The gradebook: SQLite in this folder (one machine), or a database server that shards on several
# machines write at once (`course init --db-url`; keep passwords out of this file: libpq reads
# PGPASSWORD or ~/.pgpass). The environment variable XAI_KIT_DB_URL overrides both.
c.CourseDirectory.db_url = (os.environ.get("XAI_KIT_DB_URL") or {db_url!r}
                            or "sqlite:///" + os.path.join(c.CourseDirectory.root, "gradebook.db"))
# Students are added by the roster import (`python -m autograder course roster`); autograde also
# adds an unknown one rather than fail (the kit's default).
c.Exchange.root = {exchange!r}
c.Exchange.timezone = {timezone!r}
# Late submissions (timestamp.txt after the due date): "none" records how late, "zero" scores 0.
c.LateSubmissionPlugin.penalty_method = {late_penalty!r}
# Due dates, in {timezone!s} (stored in the gradebook in UTC; change them with
# `nbgrader db assignment add NAME --duedate="YYYY-MM-DD HH:MM:SS +HH:MM"`):
DUE_DATES = {due_dates!r}
'''


def inside_kit_checkout(path: Path) -> bool:
    """Whether ``path`` is inside the kit's checkout and git would track files there."""
    try:
        path.resolve().relative_to(REPO_ROOT.resolve())
    except ValueError:
        return False
    result = subprocess.run(["git", "-C", str(REPO_ROOT), "check-ignore", "-q", str(path.resolve())],
                            capture_output=True)
    return result.returncode != 0  # 0: ignored; 1: not ignored; 128: not a repository (treat as tracked)


def due_dates_utc(due_dates: dict, timezone: str) -> dict:
    """``{assignment: "YYYY-MM-DD HH:MM:SS"}`` in UTC, from dates written in ``timezone``
    (``2027-02-01``, ``2027-02-01T23:59`` or with seconds; a date alone means 23:59:59)."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise CourseError(f"unknown timezone {timezone!r} (an IANA name such as Europe/Berlin or UTC)") from error
    converted = {}
    for assignment, text in due_dates.items():
        try:
            moment = datetime.fromisoformat(text.replace(" ", "T"))
        except ValueError as error:
            raise CourseError(f"due date of {assignment} {text!r} is not YYYY-MM-DD[THH:MM[:SS]]") from error
        if len(text.strip()) <= 10:
            moment = moment.replace(hour=23, minute=59, second=59)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        converted[assignment] = moment.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M:%S")
    return converted


def init_course(path, course_id: str = DEFAULT_COURSE_ID, assignments=None, due_dates: dict | None = None,
                timezone: str = "UTC", exchange: str | None = None, late_penalty: str = "none",
                roster: Path | None = None, db_url: str | None = None) -> Course:
    """Write the course folder at ``path`` (new or empty) and return it opened; its gradebook is
    ``COURSE/gradebook.db``, or the empty database at ``db_url``."""
    from autograder.authoring import build
    from autograder.course import gradebook as gradebooks
    from autograder.course import guide
    from autograder.course import roster as rosters

    root = Path(path).expanduser().absolute()
    if inside_kit_checkout(root):
        raise CourseError(f"{root} is inside the kit's repository and not git-ignored: a course holds student "
                          f"data and grades. Put it elsewhere (e.g. {DEFAULT_LOCATION / course_id}) or "
                          "git-ignore that folder first.")
    if root.exists() and any(root.iterdir()):
        raise CourseError(f"{root} exists and is not empty: choose a new folder for the course")
    if late_penalty not in LATE_PENALTIES:
        raise CourseError(f"late penalty must be one of {LATE_PENALTIES}, not {late_penalty!r}")
    available = build.assignment_ids()
    assignments = list(assignments or available)
    unknown = sorted(set(assignments) - set(available)) + sorted(set(due_dates or {}) - set(assignments))
    if unknown:
        raise CourseError(f"unknown assignment(s) {', '.join(unknown)}; the kit has {', '.join(available)}")
    due = due_dates_utc(due_dates or {}, timezone)
    if db_url:
        _check_empty_database(db_url)
    root.mkdir(parents=True, exist_ok=True)
    exchange = str(Path(exchange).expanduser().absolute()) if exchange else str(root / "exchange")
    # nbgrader needs the exchange root to exist. In the course folder it is the instructor's own
    # (release_feedback writes there); on a shared JupyterHub give --exchange /srv/nbgrader/exchange,
    # made world-writable by the admin as nbgrader's docs describe, so students can submit.
    Path(exchange).mkdir(mode=0o755, parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(CONFIG_TEMPLATE.format(
        course_id=course_id, exchange=exchange, timezone=timezone, late_penalty=late_penalty,
        due_dates=dict(due_dates or {}), db_url=db_url, kit_root=str(REPO_ROOT)))
    settings = {"course_id": course_id, "assignments": assignments, "timezone": timezone,
                "due_dates_utc": due, "exchange": exchange, "late_penalty": late_penalty}
    (root / COURSE_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    build.write_sources(root, assignments)
    build.generate_releases(root, assignments, database=True)  # into COURSE/gradebook.db (nbgrader's worker)
    if db_url:
        gradebooks.copy_tables(f"sqlite:///{root / 'gradebook.db'}", db_url)
        (root / "gradebook.db").unlink()
    course = Course.open(root)
    with course.gradebook() as gradebook:
        for assignment in assignments:
            gradebook.update_or_create_assignment(assignment, duedate=due.get(assignment))
    # `cd COURSE && jupyter lab` (or `jupyter server`) then serves formgrader at /formgrader:
    # Jupyter reads this file from its working folder.
    (root / "jupyter_server_config.json").write_text(json.dumps(
        {"ServerApp": {"jpserver_extensions": {"nbgrader.server_extensions.formgrader": True}}}, indent=2) + "\n")
    guide.write_guides(course)
    if roster is not None:
        rosters.import_roster(course, Path(roster))
    return course


def _check_empty_database(db_url: str) -> None:
    """A clear :class:`CourseError` unless ``db_url`` names a database that exists and holds no gradebook."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    from autograder.course.gradebook import holds_assignments

    example = "e.g. postgresql://USER@HOST/DATABASE"
    try:
        shown = make_url(db_url).render_as_string(hide_password=True)
    except ArgumentError as error:
        raise CourseError(f"--db-url is no database URL ({error}); {example}") from error
    try:
        full = holds_assignments(db_url)
    except (NoSuchModuleError, ModuleNotFoundError) as error:
        raise CourseError(f"--db-url {shown}: no such database driver ({error}; the kit's requirements bring "
                          f"psycopg for PostgreSQL); {example}") from error
    except DBAPIError as error:
        raise CourseError(f"cannot open the database {shown} (create it first, e.g. `createdb`): "
                          f"{str(error.orig).strip()}") from error
    if full:
        raise CourseError(f"the database {shown} already holds a gradebook: give an empty one")
