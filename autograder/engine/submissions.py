"""Find the notebooks students handed in, and only those, and copy them where the grader owns them.

Accepted layouts of the submissions directory (or a ``.zip`` of it)::

    DIR/<student_id>/<assignment>.ipynb        e.g. DIR/alice/01_hooks.ipynb
    DIR/<student_id>.zip                        a zip holding <assignment>.ipynb (at any depth)

Only an allow-list is read: files named exactly ``<assignment>.ipynb`` for a known assignment.
Everything else a student hands in (``numpy.py``, a ``student_src/`` folder, data) is ignored, so
nothing they submit can shadow an import at grading time. A notebook that is not valid JSON or not
a notebook is reported as a problem for that student and assignment only.

Submissions are hostile input, so :func:`collect`:

- copies every allow-listed notebook, before anything is graded, into a private folder (mode
  0700; ``tempfile.mkdtemp`` by default) and records its SHA-256 (``Submission.digests``), so a
  notebook graded earlier cannot change a later one unnoticed; DIR is only ever opened for
  reading and nothing in it is moved or changed;
- follows no symbolic link: a student folder, a zip or a notebook that is a link is refused with
  a problem row ("a symbolic link: not followed");
- counts as students only real folders and regular ``.zip`` files; hidden entries (``.git``,
  ``.DS_Store``), FIFOs, devices and other files in DIR's top level are skipped and listed once
  on stderr; a ``.zip`` that is not a zip gets a problem row. Two entries for one student id
  (``alice/`` and ``alice.zip``) grade neither: every assignment gets a problem row naming both;
- reads zips member by member: a member whose name is absolute or holds ``..`` is refused; a
  member's declared uncompressed size (``infolist()``) over :data:`MAX_NOTEBOOK_BYTES` is refused
  before anything is extracted, and extraction streams with a hard cap of that many bytes (the
  declared size can lie), so a zip bomb costs at most the limit in memory and disk.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import nbformat

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024
#: A student's zip inside a zip of the whole class may hold a few notebooks.
ZIPS_PER_NOTEBOOK = 8
_CHUNK = 2**20
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class Refused(Exception):
    """A file that is not read, with the one-line reason (it becomes the student's problem)."""


@dataclass
class Submission:
    """What one student handed in: readable notebooks, and problems per assignment.

    ``notebooks`` are the grader's private copies; ``digests`` their SHA-256 when copied.
    """

    student_id: str
    notebooks: dict = field(default_factory=dict)  # assignment -> Path of a readable notebook
    problems: dict = field(default_factory=dict)  # assignment -> why it cannot be graded
    digests: dict = field(default_factory=dict)  # assignment -> sha256 hex of the private copy
    timestamps: dict = field(default_factory=dict)  # assignment -> nbgrader's timestamp.txt text


def _too_big(limit: int) -> str:
    return f"notebook is larger than {limit / 2**20:g} MB"


def private_folder(path: Path | None = None) -> Path:
    """A folder only the grader's user may enter (mode 0700): ``path``, or a new temporary one."""
    if path is None:
        return Path(tempfile.mkdtemp(prefix="xai-submissions-"))
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def open_regular_file(name, dir_fd: int | None = None):
    """``name`` opened for reading in binary, if it is a regular file; never follows a link, never
    opens a device and never blocks on a FIFO. Raises :class:`Refused` saying what it is otherwise
    (``FileNotFoundError`` when there is nothing)."""
    mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    if stat.S_ISLNK(mode):
        raise Refused("a symbolic link: not followed")
    if not stat.S_ISREG(mode):  # checked before opening: opening a device can have effects
        raise Refused("not a regular file")
    try:  # O_NOFOLLOW and the fstat below: it cannot have been swapped for a link or FIFO meanwhile
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise Refused("a symbolic link: not followed") from None
        raise Refused(f"cannot be read ({error.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Refused("not a regular file")
    return open(fd, "rb")


def copy_capped(source, target: Path, limit: int) -> str:
    """Stream the binary file object ``source`` into the new file ``target`` (mode 0600), at most
    ``limit`` bytes; return the SHA-256 of what was written. Past ``limit`` the partial file is
    removed and :class:`Refused` raised: memory use is one chunk, disk use at most ``limit``."""
    digest, written = hashlib.sha256(), 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with open(fd, "wb") as out:
            while chunk := source.read(min(_CHUNK, limit + 1 - written)):
                written += len(chunk)
                if written > limit:
                    raise Refused(_too_big(limit))
                out.write(chunk)
                digest.update(chunk)
    except BaseException:
        target.unlink()
        raise
    return digest.hexdigest()


def unsafe_member_name(name: str) -> bool:
    """Whether a zip member's name is absolute (``/x``, ``C:\\x``) or climbs out with ``..``."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) is not None or ".." in parts


def _extract_member(zipped: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, limit: int) -> str:
    """One member into ``target``, refused by name, by declared size (before reading any of its
    data) or by its real size while streaming; return the SHA-256 of the extracted bytes."""
    if unsafe_member_name(info.filename):
        raise Refused(f"zip member {info.filename!r} has an unsafe name (absolute or '..'): not extracted")
    if info.file_size > limit:
        raise Refused(f"{_too_big(limit)} (zip member {info.filename!r} declares {info.file_size} bytes)")
    try:
        with zipped.open(info) as member:
            return copy_capped(member, target, limit)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as error:
        raise Refused(f"zip member {info.filename!r} cannot be read ({type(error).__name__}: "
                      f"{str(error)[:200]})") from None


def _allow_listed_members(zipped: zipfile.ZipFile, assignments) -> dict:
    """``{assignment: ZipInfo}``: members named ``<assignment>.ipynb`` at any depth, the
    shallowest (then alphabetically first) one per assignment; ``__MACOSX`` copies are ignored."""
    chosen = {}
    for info in sorted(zipped.infolist(), key=lambda info: (info.filename.count("/"), info.filename)):
        name = info.filename.replace("\\", "/").rsplit("/", 1)[-1]
        assignment = name[:-len(".ipynb")] if name.endswith(".ipynb") else None
        if assignment in assignments and assignment not in chosen and "__MACOSX" not in info.filename:
            chosen[assignment] = info
    return chosen


def _from_zip(archive, assignments, target: Path) -> tuple[dict, dict]:
    """Extract only ``<assignment>.ipynb`` members of the open zip file ``archive`` into ``target``;
    ``({assignment: (path, sha256)}, {assignment: problem})``."""
    found, problems = {}, {}
    with zipfile.ZipFile(archive) as zipped:
        for assignment, info in _allow_listed_members(zipped, assignments).items():
            path = target / f"{assignment}.ipynb"
            try:
                found[assignment] = (path, _extract_member(zipped, info, path, MAX_NOTEBOOK_BYTES))
            except Refused as refused:
                problems[assignment] = str(refused)
    return found, problems


def _from_folder(folder: Path, assignments, target: Path) -> tuple[dict, dict]:
    """Copy the ``<assignment>.ipynb`` files of the student folder ``folder`` into ``target``
    (read relative to the folder's descriptor, no link followed); same result as :func:`_from_zip`."""
    found, problems = {}, {}
    folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    try:
        for assignment in assignments:
            name = f"{assignment}.ipynb"
            path = target / name
            try:
                with open_regular_file(name, dir_fd=folder_fd) as source:
                    found[assignment] = (path, copy_capped(source, path, MAX_NOTEBOOK_BYTES))
            except FileNotFoundError:
                continue
            except Refused as refused:
                problems[assignment] = f"{name}: {refused}"
    finally:
        os.close(folder_fd)
    return found, problems


def _read_problem(path: Path) -> str | None:
    """None when ``path`` is a readable notebook, else a one-line reason."""
    try:
        notebook = nbformat.read(str(path), as_version=4)
    except Exception as error:  # JSON errors, wrong schema, binary junk
        return f"not a readable notebook ({type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]})"
    if not isinstance(notebook.get("cells"), list):
        return "not a readable notebook (no cells)"
    return None


@dataclass
class _Entry:
    """One top-level entry of DIR that stands for a student: ``kind`` is folder, zip or link."""

    name: str
    kind: str


def _student_id(name: str, kind: str) -> str:
    return name[:-len(".zip")] if kind != "folder" and name.endswith(".zip") else name


def classify_entries(directory: Path) -> tuple[dict, list]:
    """Sort DIR's top level, looking at each entry itself (``lstat``, no link followed):
    ``({student_id: [_Entry, ...]}, [(name, why skipped), ...])``.

    Students: real folders, regular ``*.zip`` files, and links that look like one of them (a link
    to a folder, or a ``*.zip`` link: they get a problem row instead of vanishing). Skipped:
    hidden entries, FIFOs, devices, sockets, and other files.
    """
    students, skipped = {}, []
    for name in sorted(os.listdir(directory)):
        mode = os.lstat(os.path.join(directory, name)).st_mode
        if name.startswith("."):
            skipped.append((name, "hidden"))
            continue
        if stat.S_ISDIR(mode):
            kind = "folder"
        elif stat.S_ISREG(mode) and name.endswith(".zip"):
            kind = "zip"
        elif stat.S_ISLNK(mode) and (name.endswith(".zip") or os.path.isdir(os.path.join(directory, name))):
            kind = "link"
        else:
            skipped.append((name, "not a folder or a .zip file" if stat.S_ISREG(mode) or stat.S_ISLNK(mode)
                            else "not a regular file or folder"))
            continue
        students.setdefault(_student_id(name, kind), []).append(_Entry(name, kind))
    return students, skipped


def _report_skipped(directory: Path, skipped: list) -> None:
    """One line on stderr listing what in DIR was not taken for a student."""
    if skipped:
        listed = ", ".join(f"{name!r} ({why})" for name, why in skipped[:20])
        more = f" and {len(skipped) - 20} more" if len(skipped) > 20 else ""
        print(f"submissions: skipped in {directory}: {listed}{more}", file=sys.stderr)


def _entry_problem(student_id: str, entries: list) -> str | None:
    """Why this student is not read at all (bad id, two entries, a link), or None."""
    if not STUDENT_ID.match(student_id):
        return f"unusable student id {student_id!r}"
    if len(entries) > 1:
        names = " and ".join(repr(entry.name) for entry in entries)
        return f"two entries for student {student_id!r}: {names}; keep one of them and grade again"
    if entries[0].kind == "link":
        return f"{entries[0].name!r} is a symbolic link: not followed"
    return None


def _collect_student(directory: Path, student_id: str, entry: _Entry, assignments, scratch: Path) -> tuple:
    """The private copies of one student's notebooks: ``(found, problems)`` as in :func:`_from_zip`."""
    target = scratch / "students" / student_id
    target.mkdir(mode=0o700, parents=True)
    if entry.kind == "folder":
        try:
            return _from_folder(directory / entry.name, assignments, target)
        except OSError as error:  # unreadable, or swapped for a link since it was listed
            return {}, {a: f"folder {entry.name!r} cannot be read ({error.strerror})" for a in assignments}
    try:
        with open_regular_file(directory / entry.name) as archive:
            return _from_zip(archive, assignments, target)
    except (zipfile.BadZipFile, Refused) as error:
        return {}, {a: f"not a readable zip file ({error})" for a in assignments}


def _submission(student_id: str, assignments, found: dict, problems: dict) -> Submission:
    """A :class:`Submission` from the private copies, each checked to be a readable notebook."""
    submission = Submission(student_id)
    for assignment in assignments:
        if assignment in problems:
            submission.problems[assignment] = problems[assignment]
        elif assignment not in found:
            submission.problems[assignment] = f"no {assignment}.ipynb handed in"
        else:
            path, digest = found[assignment]
            problem = _read_problem(path)
            if problem:
                submission.problems[assignment] = problem
            else:
                submission.notebooks[assignment], submission.digests[assignment] = path, digest
    return submission


def _unpack_class_zip(archive: Path, target: Path) -> Path:
    """Extract a zip of the whole submissions folder into ``target``: only ``*.ipynb`` members
    (each capped at :data:`MAX_NOTEBOOK_BYTES`) and ``*.zip`` ones (each capped at
    ``ZIPS_PER_NOTEBOOK`` times that); refused members are listed on stderr. Return the folder
    that holds the students (the single top folder of the zip, if that is all there is)."""
    refused = []
    target.mkdir(mode=0o700, parents=True)
    with open_regular_file(archive) as file, zipfile.ZipFile(file) as zipped:
        for info in zipped.infolist():
            if info.is_dir() or not info.filename.endswith((".ipynb", ".zip")) or "__MACOSX" in info.filename:
                continue
            limit = MAX_NOTEBOOK_BYTES * (ZIPS_PER_NOTEBOOK if info.filename.endswith(".zip") else 1)
            path = target.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
            try:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                _extract_member(zipped, info, path, limit)
            except (Refused, FileExistsError, NotADirectoryError) as error:
                refused.append((info.filename, str(error) or type(error).__name__))
    _report_skipped(archive, refused)
    roots = [p for p in target.iterdir() if p.is_dir() and not p.is_symlink()]
    return roots[0] if len(roots) == 1 and not any(roots[0].glob("*.ipynb")) else target


def collect(directory: Path, assignments, scratch: Path | None = None) -> list[Submission]:
    """Every student's allow-listed notebooks under ``directory`` (a folder or a zip of one),
    copied into ``scratch`` (made mode 0700; a new temporary folder by default, kept alive for the
    process) before anything else happens. Students are returned sorted by id; entries that cannot
    be graded become problems (see the module's docstring)."""
    directory = Path(os.path.realpath(directory))  # DIR itself is the instructor's: a link to it is fine
    assignments = list(assignments)
    scratch = private_folder(scratch)
    if directory.is_file() and zipfile.is_zipfile(directory):
        directory = _unpack_class_zip(directory, scratch / "class_zip")
    if not directory.is_dir():
        raise FileNotFoundError(f"submissions directory not found: {directory}")
    students, skipped = classify_entries(directory)
    _report_skipped(directory, skipped)
    submissions = []
    for student_id, entries in sorted(students.items()):
        problem = _entry_problem(student_id, entries)
        if problem:
            shown = "".join(c if c.isprintable() else "?" for c in student_id)  # no escape codes in the summary
            submissions.append(Submission(shown, problems={a: problem for a in assignments}))
            continue
        found, problems = _collect_student(directory, student_id, entries[0], assignments, scratch)
        submissions.append(_submission(student_id, assignments, found, problems))
    return submissions


def hand_in(submission: Submission, assignment: str, target: Path) -> str | None:
    """Copy the private copy of ``assignment`` to ``target`` (replacing it); None if its bytes are
    still those :func:`collect` copied, else the problem to report (``target`` is then removed).
    The copy is read like a submission (no link followed, capped): an earlier notebook may have
    replaced it."""
    target.unlink(missing_ok=True)
    changed = "the grader's copy of this notebook changed after it was handed in: not graded"
    try:
        with open_regular_file(submission.notebooks[assignment]) as source:
            digest = copy_capped(source, target, MAX_NOTEBOOK_BYTES)
    except (OSError, Refused):
        return changed
    if digest != submission.digests.get(assignment):
        target.unlink()
        return changed
    return None
