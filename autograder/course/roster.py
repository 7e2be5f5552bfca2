"""The course's students: nbgrader's roster CSV in, and files matched to students.

The roster is nbgrader's student CSV (what ``nbgrader db student import`` reads)::

    id,first_name,last_name,email,lms_user_id
    jdoe,Jane,Doe,jane.doe@example.edu,12345

``id`` is the student's id in the course (a login, or a student number: letters, digits and
``_ . @ -``); ``lms_user_id`` the LMS's own user id (Canvas and Moodle put it in their download
names). The students live in the course's gradebook (the single list formgrader, feedback and
the exports use): :func:`import_roster` adds or updates them there.

:class:`Roster` matches what a download says about a file (an LMS user id, a login, an email, a
full name) to one student; a name alone is used only when exactly one student has it.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from autograder.course.folder import Course, CourseError

COLUMNS = ("id", "first_name", "last_name", "email", "lms_user_id")
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")


@dataclass(frozen=True)
class Student:
    id: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    lms_user_id: str = ""


def read_roster(path: Path) -> list[Student]:
    """The students of a roster CSV; a bad row is an error naming its line (nothing imported)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            if not reader.fieldnames or "id" not in [name.strip() for name in reader.fieldnames]:
                raise CourseError(f"{path}: a roster needs a header with at least the column id "
                                  f"(nbgrader's columns: {', '.join(COLUMNS)})")
            students, seen = [], set()
            for line, row in enumerate(reader, start=2):
                row = {(key or "").strip(): (value or "").strip() for key, value in row.items()}
                if not STUDENT_ID.match(row.get("id", "")):
                    raise CourseError(f"{path}:{line}: unusable student id {row.get('id', '')!r} "
                                      "(letters, digits and _ . @ -, starting with a letter or digit)")
                if row["id"] in seen:
                    raise CourseError(f"{path}:{line}: student id {row['id']!r} appears twice")
                seen.add(row["id"])
                students.append(Student(**{column: row.get(column, "") for column in COLUMNS}))
    except FileNotFoundError:
        raise CourseError(f"roster not found: {path}") from None
    return students


def import_roster(course: Course, path: Path) -> list[Student]:
    """Add or update every student of the roster in the course's gradebook; return them."""
    students = read_roster(path)
    with course.gradebook() as gradebook:
        for student in students:
            fields = {column: getattr(student, column) or None for column in COLUMNS[1:]}
            gradebook.update_or_create_student(student.id, **fields)
    return students


def course_students(course: Course) -> list[Student]:
    """Every student in the course's gradebook."""
    with course.gradebook() as gradebook:
        return [Student(s.id, s.first_name or "", s.last_name or "", s.email or "", s.lms_user_id or "")
                for s in gradebook.students]


def name_key(text: str) -> str:
    """A name compared without case, accents, spaces or punctuation: ``"Doe, Jané"`` -> ``"doejane"``."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", plain.lower())


class Roster:
    """Look students up by LMS user id, id (login), email, or a unique full name."""

    def __init__(self, students):
        self.students = list(students)
        self._by_id = {s.id.lower(): s for s in self.students}
        self._by_lms = {s.lms_user_id: s for s in self.students if s.lms_user_id}
        self._by_email = {s.email.lower(): s for s in self.students if s.email}
        self._by_name: dict[str, list[Student]] = {}
        for s in self.students:
            for key in {name_key(s.last_name + s.first_name), name_key(s.first_name + s.last_name)}:
                if key:
                    self._by_name.setdefault(key, []).append(s)

    def __len__(self) -> int:
        return len(self.students)

    def match(self, lms_user_id: str | None = None, login: str | None = None, name: str | None = None) -> Student | None:
        """The student these identify, or None. The LMS user id decides when it is given (a name
        can be shared or changed); ``login`` is an id or an email (its local part counts as an id)."""
        if lms_user_id:
            return self._by_lms.get(lms_user_id.strip())
        if login:
            login = login.strip().lower()
            found = self._by_id.get(login) or self._by_email.get(login)
            if found is None and "@" in login:
                found = self._by_id.get(login.split("@", 1)[0])
            if found:
                return found
        if name:
            candidates = {s.id: s for s in self._by_name.get(name_key(name), [])}
            if len(candidates) == 1:
                return next(iter(candidates.values()))
        return None
