"""What a course folder made by ``python -m autograder course init`` holds, and how to open it.

A standard nbgrader course (every nbgrader command works on it from inside the folder)::

    COURSE/
      nbgrader_config.py     the kit's settings (loaded from the installed kit) + this course's own
      course.json            what the kit needs to know: assignments, due dates, timezone
      gradebook.db           nbgrader's gradebook (students, assignments, scores, comments), unless
                             the configuration names a database server (``course init --db-url``,
                             or the environment variable XAI_KIT_DB_URL)
      source/NN/NN.ipynb     instructor notebooks (solutions, hidden tests, model answers)
      release/NN/NN.ipynb    what students get
      submitted/<student>/NN/NN.ipynb (+ timestamp.txt)   written by ``collect``
      autograded/<student>/NN/   written by ``grade --course`` (as ``nbgrader autograde`` does)
      feedback/<student>/NN/     written by ``feedback``
      grading_guide/NN.md    model answers and rubrics for graders (never released)
      exports/               grade files for the LMS
      .xai-kit/graded.json   SHA-256 of each graded submission (what ``grade`` skips)
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

COURSE_FILE = "course.json"
STATE_FOLDER = ".xai-kit"


def ensure_venv_on_path() -> None:
    """nbgrader makes a new gradebook by running ``alembic`` from PATH: put this Python's own
    scripts folder (the kit's virtual environment) first, as an activated environment would."""
    scripts = os.path.dirname(sys.executable)
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join(filter(None, [scripts, os.environ.get("PATH")]))


class CourseError(RuntimeError):
    """The course folder is missing, malformed, or the request does not fit it (clear message)."""


@dataclass
class Course:
    """An opened course folder; ``settings`` is ``course.json``."""

    root: Path
    settings: dict

    @classmethod
    def open(cls, path) -> Course:
        root = Path(path).expanduser().resolve()
        if not (root / "nbgrader_config.py").is_file() or not (root / COURSE_FILE).is_file():
            raise CourseError(f"{root} is not a course folder (no nbgrader_config.py and {COURSE_FILE}): "
                              "make one with `python -m autograder course init PATH`")
        return cls(root, json.loads((root / COURSE_FILE).read_text()))

    @property
    def course_id(self) -> str:
        return self.settings["course_id"]

    @property
    def assignments(self) -> list[str]:
        return list(self.settings["assignments"])

    def config(self):
        """The course's nbgrader configuration, as nbgrader's own commands load it from the folder."""
        from traitlets.config.loader import PyFileConfigLoader

        return PyFileConfigLoader("nbgrader_config.py", path=str(self.root)).load_config()

    @cached_property
    def db_url(self) -> str:
        """The gradebook's SQLAlchemy URL, from the course's configuration (``c.CourseDirectory.db_url``,
        which ``XAI_KIT_DB_URL`` overrides): ``COURSE/gradebook.db`` unless it names another."""
        configured = self.config().CourseDirectory.get("db_url")
        return str(configured) if configured else f"sqlite:///{self.root / 'gradebook.db'}"

    @property
    def db_is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite:")

    def gradebook(self):
        """nbgrader's own :class:`nbgrader.api.Gradebook` of the course (use as a context manager)."""
        from nbgrader.api import Gradebook

        ensure_venv_on_path()
        return Gradebook(self.db_url, self.course_id)

    def path(self, step: str, student: str | None = None, assignment: str | None = None) -> Path:
        """nbgrader's ``{step}/{student}/{assignment}`` (``source``/``release`` have no student)."""
        parts = [step] + [part for part in (student, assignment) if part is not None]
        return self.root.joinpath(*parts)

    def select_assignments(self, wanted) -> list[str]:
        """``wanted`` (None: all) checked against the course's assignments."""
        if not wanted:
            return self.assignments
        unknown = [a for a in wanted if a not in self.assignments]
        if unknown:
            raise CourseError(f"unknown assignment(s) {', '.join(unknown)}; the course has {', '.join(self.assignments)}")
        return [a for a in self.assignments if a in wanted]

    @property
    def state_folder(self) -> Path:
        folder = self.root / STATE_FOLDER
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder
