"""``python -m autograder collect --course PATH SOURCE [--assignment A]``: submissions into the course.

SOURCE is a folder (or a ``.zip`` of one) in any of these layouts, mixed freely:

=====================================================  ============================================
layout                                                 student / assignment / time
=====================================================  ============================================
``<student>/<assignment>/<assignment>.ipynb``          nbgrader's exchange (what ``nbgrader collect``
(+ ``timestamp.txt``, ``submission_secret.txt``)       writes): folder names; both files as they are
``<student>/<assignment>.ipynb``, ``<student>.zip``    the kit's own: folder or zip name; no time
``doejane_[LATE_]12345_678901_01_hooks.ipynb``         Canvas bulk download: name, ``LATE`` flag,
                                                       Canvas user id, submission id, uploaded name;
                                                       a re-upload ``01_hooks-1.ipynb``, ``-2``: the
                                                       highest number wins; time: the file's
``Jane Doe_12345_assignsubmission_file_/01_hooks.ipynb``  Moodle: full name and id; time: the file's
``Copy of 01_hooks.ipynb``, ``01_hooks (1).ipynb``     Colab / browser renames, in any layout above
=====================================================  ============================================

Students are matched through the roster in the gradebook (:class:`~autograder.course.roster.Roster`):
an LMS user id, a login (folder name) or email, or a full name only one student has. A folder
name that is a valid id is taken as a new student only while the course has no roster. A file
whose name is no assignment counts for ``--assignment A`` when it is the student's only notebook.

Everything is copied as the grader copies submissions (``autograder.engine.submissions``: no link
followed, size-capped, zips read member by member) into ``COURSE/submitted/<student>/<A>/<A>.ipynb``
with ``timestamp.txt`` (nbgrader's late penalties read it). Every file that was not taken is
listed with the reason; an import that takes nothing is an error.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from autograder.engine import submissions as safe
from autograder.course.folder import Course, CourseError
from autograder.course.roster import STUDENT_ID, Roster, Student, course_students

#: Canvas: ``lastfirst_[LATE_]userid_submissionid_originalname`` (the name part may hold ``_``).
CANVAS = re.compile(r"^(?P<name>[^_].*?)_(?:(?P<late>late)_)?(?P<user>\d+)_(?P<submission>\d+)_(?P<file>.+)$",
                    re.IGNORECASE)
#: Moodle: ``<Full Name>_<id>_assignsubmission_<plugin>_``.
MOODLE = re.compile(r"^(?P<name>.+?)_(?P<user>\d+)_assignsubmission_(?P<plugin>[a-z]+)_?$", re.IGNORECASE)
#: Browser and Colab renames: ``Copy of X``, ``X (1)``, Canvas re-uploads ``X-1``.
COPY_OF = re.compile(r"^(?:copy of\s+)+", re.IGNORECASE)
VERSION = re.compile(r"^(?P<stem>.*?)(?:\s*\((?P<paren>\d+)\)|-(?P<dash>\d+))$")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f %Z"
#: What nbgrader's exchange keeps beside a submission; release_feedback names the feedback by it.
SECRET = "submission_secret.txt"


@dataclass
class Candidate:
    """One notebook found in SOURCE, before the latest per student and assignment is chosen."""

    origin: str  # its path in SOURCE, as listed to the instructor
    path: Path  # the file to read (in SOURCE, or unpacked into the private scratch folder)
    layout: str
    student: Student | None
    assignment: str | None
    version: int = 0
    timestamp: str | None = None  # nbgrader's timestamp.txt text
    late: bool = False
    named_assignment: bool = True  # the file's own name names the assignment
    secret: bytes | None = None  # nbgrader's submission_secret.txt (release_feedback needs it)


@dataclass
class CollectReport:
    imported: list = field(default_factory=list)  # (student id, assignment, origin, layout, timestamp)
    unmatched: list = field(default_factory=list)  # (origin, why)
    superseded: list = field(default_factory=list)  # (origin, the one taken instead)
    flagged_late: list = field(default_factory=list)  # origins Canvas marked LATE

    def text(self) -> str:
        lines = [f"collected {len(self.imported)} notebook(s) of {len({i[0] for i in self.imported})} student(s)"]
        lines += [f"  {student} {assignment} <- {origin} ({layout})" for student, assignment, origin, layout, _
                  in self.imported]
        if self.superseded:
            lines.append(f"{len(self.superseded)} older version(s) not taken:")
            lines += [f"  {origin} (superseded by {newer})" for origin, newer in self.superseded]
        if self.flagged_late:
            lines.append(f"{len(self.flagged_late)} file(s) the LMS marked late: " + ", ".join(self.flagged_late))
        if self.unmatched:
            lines.append(f"{len(self.unmatched)} file(s) NOT collected:")
            lines += [f"  {origin}: {why}" for origin, why in self.unmatched]
        return "\n".join(lines)


def notebook_name(filename: str, assignments) -> tuple[str | None, int]:
    """``(assignment, version)`` a file name stands for: ``Copy of 01_hooks (2).ipynb`` ->
    ``("01_hooks", 2)``; ``(None, version)`` when the name is no assignment of ``assignments``."""
    stem = filename[:-len(".ipynb")] if filename.lower().endswith(".ipynb") else filename
    stem = COPY_OF.sub("", stem.strip())
    version = 0
    match = VERSION.match(stem)
    if match and (match["paren"] or match["dash"]):
        stem, version = match["stem"], int(match["paren"] or match["dash"])
    key = re.sub(r"[\s-]+", "_", stem.strip()).lower()
    return next((a for a in assignments if a.lower() == key), None), version


def _mtime_stamp(path: Path) -> str:
    moment = datetime.fromtimestamp(os.lstat(path).st_mtime, tz=timezone.utc)
    return moment.strftime(TIMESTAMP_FORMAT)


def _is_notebook(name: str) -> bool:
    return name.lower().endswith(".ipynb") and not name.startswith(".")


def _entries(folder: Path) -> list[tuple[str, int]]:
    """``(name, mode)`` of a folder's entries, links not followed."""
    return [(name, os.lstat(folder / name).st_mode) for name in sorted(os.listdir(folder))]


class _Finder:
    """Walk SOURCE once and turn every file into a :class:`Candidate` or an unmatched entry."""

    def __init__(self, roster: Roster, assignments, scratch: Path):
        self.roster, self.assignments, self.scratch = roster, list(assignments), scratch
        self.candidates: list[Candidate] = []
        self.unmatched: list[tuple[str, str]] = []

    def student_by_login(self, name: str) -> Student | None:
        found = self.roster.match(login=name)
        if found is None and not len(self.roster) and STUDENT_ID.match(name):
            return Student(name)  # no roster yet: nbgrader's own rule (the folder name is the id)
        return found

    def add(self, origin: str, path: Path, layout: str, student: Student | None, timestamp=None,
            late=False, filename: str | None = None) -> None:
        assignment, version = notebook_name(filename or path.name, self.assignments)
        if student is None:
            why = "no student in the roster matches it" if len(self.roster) else \
                "no roster in the course yet (python -m autograder course roster COURSE students.csv)"
            self.unmatched.append((origin, why))
            return
        self.candidates.append(Candidate(origin, path, layout, student, assignment, version, timestamp, late,
                                         assignment is not None))

    def walk(self, source: Path) -> None:
        for name, mode in _entries(source):
            origin, path = name, source / name
            if name.startswith((".", "__MACOSX")):
                continue
            if stat.S_ISLNK(mode):
                self.unmatched.append((origin, "a symbolic link: not followed"))
            elif stat.S_ISDIR(mode):
                self.folder(source, name)
            elif not stat.S_ISREG(mode):
                self.unmatched.append((origin, "not a regular file or folder"))
            elif _is_notebook(name) and CANVAS.match(name):
                match = CANVAS.match(name)
                student = self.roster.match(lms_user_id=match["user"]) or self.roster.match(name=match["name"])
                self.add(origin, path, "Canvas", student, _mtime_stamp(path), bool(match["late"]), match["file"])
            elif name.lower().endswith(".zip"):
                self.student_zip(origin, path, name[:-len(".zip")])
            elif _is_notebook(name):
                self.unmatched.append((origin, "a notebook with no student in its name or folder"))
            else:
                self.unmatched.append((origin, "not a notebook"))

    def folder(self, source: Path, name: str) -> None:
        folder = source / name
        moodle = MOODLE.match(name)
        if moodle:
            student = self.roster.match(lms_user_id=moodle["user"]) or self.roster.match(name=moodle["name"])
            layout = "Moodle"
        else:
            student, layout = self.student_by_login(name), "folder"
        for inner, mode in _entries(folder):
            origin, path = f"{name}/{inner}", folder / inner
            if inner.startswith("."):
                continue
            if stat.S_ISDIR(mode) and not moodle and inner in self.assignments:
                self.exchange_folder(origin, path, inner, student)
            elif stat.S_ISREG(mode) and _is_notebook(inner):
                self.add(origin, path, layout, student, None if layout == "folder" else _mtime_stamp(path))
            elif stat.S_ISREG(mode) and inner in ("timestamp.txt", SECRET):
                continue
            else:
                self.unmatched.append((origin, "not a notebook" if stat.S_ISREG(mode) else
                                       "a link or folder where a notebook was expected"))

    def exchange_folder(self, origin: str, path: Path, assignment: str, student: Student | None) -> None:
        """nbgrader's ``<student>/<assignment>/<assignment>.ipynb`` with its ``timestamp.txt``."""
        notebook = path / f"{assignment}.ipynb"
        if not notebook.is_file() or notebook.is_symlink():
            self.unmatched.append((origin, f"no regular file {assignment}.ipynb in it"))
            return
        timestamp = None
        stamp = path / "timestamp.txt"
        if stamp.is_file() and not stamp.is_symlink():
            with safe.open_regular_file(stamp) as file:
                timestamp = file.read(200).decode(errors="replace").strip() or None
        self.add(f"{origin}/{assignment}.ipynb", notebook, "nbgrader exchange", student, timestamp)
        secret = path / SECRET
        if self.candidates and self.candidates[-1].path == notebook and secret.is_file() and not secret.is_symlink():
            with safe.open_regular_file(secret) as file:
                self.candidates[-1].secret = file.read(1000)

    def student_zip(self, origin: str, path: Path, name: str) -> None:
        """``<student>.zip`` of the kit's layout: only ``<assignment>.ipynb`` members, capped."""
        student = self.student_by_login(name)
        if student is None:
            self.unmatched.append((origin, "no student in the roster matches the zip's name"))
            return
        target = safe.private_folder(Path(tempfile.mkdtemp(dir=self.scratch)))
        try:
            with safe.open_regular_file(path) as archive:
                found, problems = safe._from_zip(archive, self.assignments, target)
        except (zipfile.BadZipFile, safe.Refused) as error:
            self.unmatched.append((origin, f"not a readable zip file ({error})"))
            return
        for assignment, why in problems.items():
            self.unmatched.append((f"{origin}:{assignment}.ipynb", why))
        if not found:
            self.unmatched.append((origin, "holds no <assignment>.ipynb"))
        for assignment, (member, _) in found.items():
            self.add(f"{origin}:{assignment}.ipynb", member, "zip", student)


def _resolve_unnamed(candidates: list[Candidate], assignment: str | None, unmatched: list) -> list[Candidate]:
    """A file that names no assignment counts as ``assignment`` (``--assignment``) when it is the
    only notebook of its student; otherwise it is listed as unmatched."""
    keep = []
    for candidate in candidates:
        if candidate.assignment is not None:
            if assignment is None or candidate.assignment == assignment:
                keep.append(candidate)
            else:
                unmatched.append((candidate.origin, f"is {candidate.assignment}, not {assignment} (--assignment)"))
            continue
        same_student = [c for c in candidates if c.student.id == candidate.student.id]
        if assignment is not None and len(same_student) == 1:
            candidate.assignment = assignment
            keep.append(candidate)
        else:
            why = "its name is no assignment of the course" + (
                "" if assignment else " (with --assignment A, a student's only notebook counts as A)")
            unmatched.append((candidate.origin, why))
    return keep


def _latest(candidates: list[Candidate], report: CollectReport) -> list[Candidate]:
    """One per student and assignment: the highest re-upload number, then the newest file."""
    groups: dict[tuple, list[Candidate]] = {}
    for candidate in candidates:
        groups.setdefault((candidate.student.id, candidate.assignment), []).append(candidate)
    chosen = []
    for group in groups.values():
        group.sort(key=lambda c: (c.named_assignment, c.version, os.lstat(c.path).st_mtime, c.origin))
        chosen.append(group[-1])
        report.superseded += [(older.origin, group[-1].origin) for older in group[:-1]]
    return sorted(chosen, key=lambda c: (c.student.id, c.assignment))


def _write(course: Course, candidate: Candidate) -> None:
    """Copy into ``submitted/<student>/<assignment>/`` (replacing what an earlier collect put there)."""
    target = course.path("submitted", candidate.student.id, candidate.assignment)
    target.mkdir(parents=True, exist_ok=True)
    notebook = target / f"{candidate.assignment}.ipynb"
    partial = target / f".{candidate.assignment}.ipynb.partial"
    partial.unlink(missing_ok=True)
    with safe.open_regular_file(candidate.path) as source:
        safe.copy_capped(source, partial, safe.MAX_NOTEBOOK_BYTES)
    os.replace(partial, notebook)
    (target / SECRET).unlink(missing_ok=True)
    if candidate.secret:
        (target / SECRET).write_bytes(candidate.secret)
    stamp = target / "timestamp.txt"
    if candidate.timestamp:
        stamp.write_text(candidate.timestamp + "\n")
    else:
        stamp.unlink(missing_ok=True)


def collect(course: Course, source: Path, assignment: str | None = None) -> CollectReport:
    """Import every submission under ``source`` into the course; raise :class:`CourseError` when
    none could be taken (the report lists every file and why)."""
    source = Path(os.path.realpath(source))
    assignments = course.select_assignments([assignment] if assignment else None)
    report = CollectReport()
    roster = Roster(course_students(course))
    with tempfile.TemporaryDirectory(prefix="xai-collect-") as scratch:
        scratch = safe.private_folder(Path(scratch))
        if source.is_file() and zipfile.is_zipfile(source):
            source = safe._unpack_class_zip(source, scratch / "download")
        if not source.is_dir():
            raise CourseError(f"submissions not found: {source} (a folder or a .zip of one)")
        finder = _Finder(roster, course.assignments, scratch)
        finder.walk(source)
        report.unmatched = finder.unmatched
        candidates = _resolve_unnamed(finder.candidates, assignment, report.unmatched)
        for candidate in _latest(candidates, report):
            try:
                _write(course, candidate)
            except (OSError, safe.Refused) as error:
                report.unmatched.append((candidate.origin, f"could not be copied ({error})"))
                continue
            if candidate.late:
                report.flagged_late.append(candidate.origin)
            report.imported.append((candidate.student.id, candidate.assignment, candidate.origin, candidate.layout,
                                    candidate.timestamp))
    if not report.imported:
        raise CourseError(f"nothing collected from {source}:\n{report.text()}")
    return report
