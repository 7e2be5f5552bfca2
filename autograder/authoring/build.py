"""Build the notebooks from their sources: ``python -m autograder release``.

    autograder/authoring/assignments/NN_name.py   (edited by people; see source_format.py)
        -> <course>/source/NN_name/NN_name.ipynb     nbgrader source notebook (solutions + hidden tests)
        -> solutions/notebooks/NN_name.ipynb         the same, committed for TAs
        -> <course>/release/NN_name/NN_name.ipynb    nbgrader generate_assignment (stubs, no hidden tests)
        -> notebooks/NN_name.ipynb                   the student release, committed

Both committed copies are build outputs: ``release --check`` rebuilds them in a temporary folder
and fails when they differ from what is committed (CI runs it).
"""

from __future__ import annotations

import filecmp
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

from autograder.engine.nbgrader_worker import NbgraderWorker
from autograder.authoring.source_format import REPO_ROOT, build_notebook, split_rubric

ASSIGNMENTS_DIR = REPO_ROOT / "autograder" / "authoring" / "assignments"
COURSE_CONFIG = REPO_ROOT / "autograder" / "course" / "nbgrader_config.py"
RELEASE_DIR = REPO_ROOT / "notebooks"
SOLUTION_DIR = REPO_ROOT / "solutions" / "notebooks"


def assignment_ids() -> list[str]:
    """Assignment names, from the sources ``autograder/authoring/assignments/NN_name.py``, in order."""
    return sorted(path.stem for path in ASSIGNMENTS_DIR.glob("[0-9][0-9]_*.py"))


def grading_env(threads: int | None = None, code_root: Path = REPO_ROOT) -> dict:
    """Environment for nbgrader and its kernels: the grader code in ``code_root`` importable, venv
    first on PATH, quiet libraries, no bytecode files written (see ``grader_files``)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code_root), env.get("PYTHONPATH", "")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONWARNINGS"] = "ignore"
    env["TQDM_DISABLE"] = "1"
    env.pop("MPLBACKEND", None)  # with Agg set, figures vanish from executed notebooks
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        if threads is not None:
            env[name] = str(threads)
        elif not env.get(name, "1").strip().isdigit():
            # An empty or invalid value makes libgomp print to stderr inside a test cell: a 0.
            env.pop(name)
    return env


def new_course(root: Path) -> Path:
    """A fresh nbgrader course directory at ``root`` with the course configuration."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(COURSE_CONFIG, root / "nbgrader_config.py")
    return root


def write_sources(course_root: Path, assignments=None, repository: str | None = None,
                  ref: str | None = None) -> list[str]:
    """Build each assignment's nbgrader source notebook into ``course_root/source/`` (badges and
    set-up cell for ``repository`` at ``ref``, default ``[tool.xai_kit]``)."""
    assignments = assignments or assignment_ids()
    for assignment in assignments:
        folder = course_root / "source" / assignment
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(build_notebook(ASSIGNMENTS_DIR / f"{assignment}.py", repository, ref),
                       folder / f"{assignment}.ipynb")
    return assignments


def generate_releases(course_root: Path, assignments, database: bool = False) -> dict[str, Path]:
    """``nbgrader generate_assignment`` for each assignment (one nbgrader process for all of them):
    the student versions, in ``course_root/release/``; with ``database``, also into the gradebook."""
    with NbgraderWorker(course_root, env=grading_env(), no_database=not database) as worker:
        for assignment in assignments:
            worker.request("generate_assignment", assignment)
    return {assignment: course_root / "release" / assignment / f"{assignment}.ipynb" for assignment in assignments}


def build_all(out_root: Path, assignments=None, repository: str | None = None,
              ref: str | None = None) -> dict[str, tuple[Path, Path]]:
    """Build sources and releases in a course at ``out_root``: ``{assignment: (source, release)}``."""
    course = new_course(out_root)
    releases = generate_releases(course, write_sources(course, assignments, repository, ref))
    return {assignment: (course / "source" / assignment / f"{assignment}.ipynb", release)
            for assignment, release in releases.items()}


def solved_submission(assignment: str) -> nbformat.NotebookNode:
    """What a student who solved everything hands in: the release with the solution cells filled in.

    Locked and test cells stay exactly as released (hidden tests absent), so nbgrader sees no tampering;
    the graders' rubrics are left out (a student never sees them).
    """
    solution = nbformat.read(str(SOLUTION_DIR / f"{assignment}.ipynb"), as_version=4)
    answers = {cell.metadata["nbgrader"]["grade_id"]: split_rubric(cell.source)[0] for cell in solution.cells
               if cell.get("metadata", {}).get("nbgrader", {}).get("solution")}
    submission = nbformat.read(str(RELEASE_DIR / f"{assignment}.ipynb"), as_version=4)
    for cell in submission.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return submission


def release(check: bool = False, assignments=None) -> list[str]:
    """Rebuild ``notebooks/`` and ``solutions/notebooks/``; with ``check``, only compare.

    Returns the list of problems (stale or missing files); empty means up to date.
    """
    problems = []
    with tempfile.TemporaryDirectory(prefix="xai-release-") as tmp:
        built = build_all(Path(tmp) / "course", assignments)
        for assignment, (source, student) in built.items():
            for produced, committed in ((student, RELEASE_DIR / f"{assignment}.ipynb"),
                                        (source, SOLUTION_DIR / f"{assignment}.ipynb")):
                if check:
                    if not committed.is_file() or not filecmp.cmp(produced, committed, shallow=False):
                        problems.append(f"{committed.relative_to(REPO_ROOT)} is stale: "
                                        "run `python -m autograder release` and commit the result")
                else:
                    committed.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(produced, committed)
        if check and assignments is None:
            expected = {f"{a}.ipynb" for a in built}
            for folder in (RELEASE_DIR, SOLUTION_DIR):
                for extra in sorted(p.name for p in folder.glob("*.ipynb") if p.name not in expected):
                    problems.append(f"{folder.relative_to(REPO_ROOT)}/{extra} has no source in autograder/authoring/assignments")
    return problems
