"""Find the notebooks students handed in, and only those.

Accepted layouts of the submissions directory (or a ``.zip`` of it)::

    DIR/<student_id>/<assignment>.ipynb        e.g. DIR/alice/01_hooks.ipynb
    DIR/<student_id>.zip                        a zip holding <assignment>.ipynb (at any depth)

Only an allow-list is read: files named exactly ``<assignment>.ipynb`` for a known assignment.
Everything else a student hands in (``numpy.py``, a ``student_src/`` folder, data) is ignored, so
nothing they submit can shadow an import at grading time. A notebook that is not valid JSON or not
a notebook is reported as a problem for that student and assignment only.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024


@dataclass
class Submission:
    """What one student handed in: readable notebooks, and problems per assignment."""

    student_id: str
    notebooks: dict = field(default_factory=dict)  # assignment -> Path of a readable notebook
    problems: dict = field(default_factory=dict)  # assignment -> why it cannot be graded


def _read_problem(path: Path) -> str | None:
    """None when ``path`` is a readable notebook, else a one-line reason."""
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        return f"notebook is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"
    try:
        notebook = nbformat.read(str(path), as_version=4)
    except Exception as error:  # JSON errors, wrong schema, binary junk
        return f"not a readable notebook ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
    if not isinstance(notebook.get("cells"), list):
        return "not a readable notebook (no cells)"
    return None


def _from_zip(archive: Path, assignments, scratch: Path) -> dict:
    """Extract only ``<assignment>.ipynb`` members (shallowest wins) into ``scratch``."""
    found = {}
    with zipfile.ZipFile(archive) as zipped:
        members = sorted(zipped.namelist(), key=lambda name: (name.count("/"), name))
        for member in members:
            name = member.rsplit("/", 1)[-1]
            assignment = name[:-len(".ipynb")] if name.endswith(".ipynb") else None
            if assignment in assignments and assignment not in found and "__MACOSX" not in member:
                target = scratch / f"{assignment}.ipynb"
                target.write_bytes(zipped.read(member))
                found[assignment] = target
    return found


def collect(directory: Path, assignments, scratch: Path | None = None) -> list[Submission]:
    """Every student's allow-listed notebooks under ``directory`` (a folder or a zip of one).

    ``scratch`` receives extracted zip members (a temporary folder by default, kept alive for
    the process). Students are returned sorted by id; unreadable entries become problems.
    """
    directory = Path(directory)
    assignments = list(assignments)
    scratch = Path(scratch or tempfile.mkdtemp(prefix="xai-submissions-"))
    if directory.is_file() and zipfile.is_zipfile(directory):
        unpacked = scratch / "_all"
        with zipfile.ZipFile(directory) as zipped:
            for member in zipped.namelist():
                if member.endswith((".ipynb", ".zip")) and ".." not in member and not member.startswith("/"):
                    zipped.extract(member, unpacked)
        roots = [p for p in unpacked.iterdir() if p.is_dir()]
        directory = roots[0] if len(roots) == 1 and not any(roots[0].glob("*.ipynb")) else unpacked
    if not directory.is_dir():
        raise FileNotFoundError(f"submissions directory not found: {directory}")

    submissions = []
    for entry in sorted(directory.iterdir()):
        student_id = entry.name[:-4] if entry.suffix == ".zip" else entry.name
        if entry.name.startswith(".") or not (entry.is_dir() or entry.suffix == ".zip"):
            continue
        submission = Submission(student_id)
        if not STUDENT_ID.match(student_id):
            submission.problems = {a: f"unusable student id {student_id!r}" for a in assignments}
            submissions.append(submission)
            continue
        if entry.is_dir():
            candidates = {a: entry / f"{a}.ipynb" for a in assignments if (entry / f"{a}.ipynb").is_file()}
        else:
            target = scratch / "zips" / student_id
            target.mkdir(parents=True, exist_ok=True)
            try:
                candidates = _from_zip(entry, assignments, target)
            except zipfile.BadZipFile as error:
                submission.problems = {a: f"not a readable zip file ({error})" for a in assignments}
                submissions.append(submission)
                continue
        for assignment in assignments:
            path = candidates.get(assignment)
            if path is None:
                submission.problems[assignment] = f"no {assignment}.ipynb handed in"
                continue
            problem = _read_problem(path)
            if problem:
                submission.problems[assignment] = problem
            else:
                submission.notebooks[assignment] = path
        submissions.append(submission)
    return submissions
