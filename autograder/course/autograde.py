"""``python -m autograder grade --course PATH [--assignment A] [--student S] [--shard K/N] [--jobs N] [--force]``.

Grades ``COURSE/submitted/`` with the kit's parallel, sandboxed workers (``autograder.engine.grade``)
and lands the results where ``nbgrader autograde`` would: ``COURSE/autograded/<student>/<A>/``
and the course gradebook (scores, needs-manual flags, late penalties from ``timestamp.txt``), so
that formgrader lists every submission, ready for manual grading.

0. Lock (:mod:`autograder.course.shards`): on a SQLite gradebook one run at a time per course (a
   second waits); on a database server one run per shard, shards side by side.
1. Plan (cheap: no nbgrader, no torch): a notebook is graded when it is new or changed, i.e.
   when the SHA-256 of its bytes and of its ``timestamp.txt`` differs from what the last run
   graded (``COURSE/.xai-kit/graded.json``), or with ``--force``. ``--student``/``--assignment``
   and ``--shard K/N`` (the students whose id hashes to K) narrow the run; nobody else is touched.
   With nothing to do, the command ends here.
2. Every notebook to grade is copied, as submissions are (no link followed, size-capped), into a
   private folder; each worker gets a temporary course with the course's configuration, sources,
   release and a snapshot of its gradebook, and runs ``nbgrader autograde`` there.
3. After each notebook the worker's results are read (``course.gradebook.read_result``), its
   ``autograded/`` folder copied into the course, and this process alone merges the results
   into the course gradebook (``course.gradebook.merge_result``): manual grades are kept; a
   notebook graded again has its manually graded cells flagged for review, as nbgrader does.
   Its entry in ``graded.json`` is then written under that file's own lock, read and written
   again, so that shards running side by side keep each other's entries.
4. A notebook that cannot be graded (unreadable, a cell that never ends) scores 0 in the
   gradebook with the reason in the summary: a stale score never survives a changed notebook.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from autograder.course.folder import Course, CourseError
from autograder.course.shards import Shard, grading_lock, locked_file

STATE_FILE = "graded.json"


@dataclass
class Run:
    """What one ``grade --course`` did; ``merge_seconds``: time of each gradebook merge."""

    graded: list = field(default_factory=list)  # (student, assignment)
    failed: list = field(default_factory=list)  # (student, assignment, why)
    skipped: int = 0
    merge_seconds: list = field(default_factory=list)

    def text(self) -> str:
        lines = [f"graded {len(self.graded)} notebook(s); {self.skipped} unchanged since the last run (skipped; "
                 "--force grades them again)"]
        if self.failed:
            lines.append(f"{len(self.failed)} notebook(s) could not be graded (0 points in the gradebook):")
            lines += [f"  {student} {assignment}: {why}" for student, assignment, why in self.failed]
        return "\n".join(lines)


def submission_digest(course: Course, student: str, assignment: str) -> str | None:
    """SHA-256 of the submitted notebook and its ``timestamp.txt`` (None when nothing is there)."""
    folder = course.path("submitted", student, assignment)
    notebook = folder / f"{assignment}.ipynb"
    if not notebook.is_file() or notebook.is_symlink():
        return None
    digest = hashlib.sha256(notebook.read_bytes())
    stamp = folder / "timestamp.txt"
    digest.update(b"\0timestamp\0" + (stamp.read_bytes() if stamp.is_file() and not stamp.is_symlink() else b""))
    return digest.hexdigest()


def load_state(course: Course) -> dict:
    path = course.state_folder / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def record_state(course: Course, student: str, assignment: str, entry: dict) -> None:
    """Write one notebook's entry into ``graded.json``: under the file's lock, the file is read
    again and replaced whole (atomically), so concurrent shards never lose each other's entries."""
    path = course.state_folder / STATE_FILE
    with locked_file(path):
        state = load_state(course)
        state.setdefault(student, {})[assignment] = entry
        partial = path.with_suffix(f".partial-{os.getpid()}")
        partial.write_text(json.dumps(state, indent=1, sort_keys=True))
        os.replace(partial, path)


def plan(course: Course, assignments=None, students=None, force: bool = False,
         shard: Shard = Shard()) -> tuple[list, int]:
    """``([(student, assignment, digest), ...] to grade, number skipped as unchanged)``, of the
    students in ``shard``."""
    assignments = course.select_assignments(assignments)
    submitted = course.root / "submitted"
    present = sorted(p.name for p in submitted.iterdir() if p.is_dir() and not p.is_symlink()) \
        if submitted.is_dir() else []
    if students:
        missing = sorted(set(students) - set(present))
        if missing:
            raise CourseError(f"no submission of {', '.join(missing)} in {submitted} (collect first)")
        present = [s for s in present if s in students]
    present = [s for s in present if shard.holds(s)]
    state = load_state(course)
    todo, skipped = [], 0
    for student in present:
        for assignment in assignments:
            digest = submission_digest(course, student, assignment)
            if digest is None:
                continue
            done = state.get(student, {}).get(assignment, {})
            if not force and done.get("sha256") == digest:
                skipped += 1
                continue
            todo.append((student, assignment, digest))
    return todo, skipped


def _private_submissions(course: Course, todo: list, scratch: Path) -> tuple[list, list]:
    """The notebooks to grade copied as submissions are (``autograder.engine.submissions``), grouped
    per student: ``([Submission], [(student, assignment, digest, problem)])``."""
    from autograder.engine import submissions as safe

    by_student: dict = {}
    problems = []
    for student, assignment, digest in todo:
        submission = by_student.setdefault(student, safe.Submission(student))
        folder = course.path("submitted", student, assignment)
        target = safe.private_folder(scratch / student) / f"{assignment}.ipynb"
        try:
            with safe.open_regular_file(folder / f"{assignment}.ipynb") as source:
                copied = safe.copy_capped(source, target, safe.MAX_NOTEBOOK_BYTES)
        except (OSError, safe.Refused) as error:
            problems.append((student, assignment, digest, f"cannot be read ({error})"))
            continue
        problem = safe._read_problem(target)
        if problem:
            problems.append((student, assignment, digest, problem))
            continue
        submission.notebooks[assignment], submission.digests[assignment] = target, copied
        stamp = folder / "timestamp.txt"
        if stamp.is_file() and not stamp.is_symlink():
            submission.timestamps[assignment] = stamp.read_text(errors="replace").strip()
    return [s for s in by_student.values() if s.notebooks], problems


def _template(course: Course, root: Path) -> Path:
    """The workers' course: the course's configuration, sources, release, gradebook snapshot."""
    from autograder.course.gradebook import snapshot

    root.mkdir(parents=True)
    shutil.copyfile(course.root / "nbgrader_config.py", root / "nbgrader_config.py")
    for step in ("source", "release"):
        shutil.copytree(course.root / step, root / step, symlinks=True)
    snapshot(course.db_url, root / "gradebook.db")
    return root


def _replace_folder(source: Path, target: Path) -> None:
    """``target`` becomes a copy of ``source`` (links copied as links, never followed)."""
    staging = target.with_name(f".{target.name}.new-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, symlinks=True)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)


def _copy_secret(submitted: Path, autograded: Path) -> None:
    """nbgrader's ``submission_secret.txt`` (from its exchange) follows the submission into
    ``autograded/``, where ``generate_feedback`` and ``release_feedback`` look for it."""
    from autograder.course.collect import SECRET

    secret = submitted / SECRET
    if secret.is_file() and not secret.is_symlink():
        shutil.copyfile(secret, autograded / SECRET)


def grade_course(course: Course, assignments=None, students=None, jobs: int = 1, force: bool = False,
                 limits=None, prewarmed_kernels: bool = True, sandbox: str = "bwrap",
                 progress: bool = True, shard: Shard = Shard()) -> Run:
    """Grade what is new or changed in the course's ``shard`` (everything selected with ``force``),
    holding the run's lock."""
    with grading_lock(course, shard):
        todo, skipped = plan(course, assignments, students, force, shard)
        if not todo:
            return Run(skipped=skipped)
        return _grade(course, todo, Run(skipped=skipped), jobs, limits, prewarmed_kernels, sandbox, progress)


def _grade(course: Course, todo: list, run: Run, jobs: int, limits, prewarmed_kernels: bool, sandbox: str,
           progress: bool) -> Run:
    """Grade the plan's notebooks in workers and merge each result into the course as it comes."""
    import tempfile

    from autograder.course.gradebook import merge_result, read_result, zero_result
    from autograder.engine.grade import check_sandbox, grade_in_workers

    check_sandbox(sandbox)
    digests = {(student, assignment): digest for student, assignment, digest in todo}
    results: queue.Queue = queue.Queue()
    with tempfile.TemporaryDirectory(prefix="xai-course-grade-") as tmp:
        tmp = Path(tmp)
        submissions, problems = _private_submissions(course, todo, tmp / "submissions")
        for student, assignment, digest, problem in problems:
            results.put((student, assignment, None, {"problem": problem, "integrity": []}))
        template = _template(course, tmp / "template")

        def graded(worker_course: Path, submission, assignment: str, note: dict) -> None:
            student, result = submission.student_id, None
            if not note["problem"]:
                try:
                    result = read_result(f"sqlite:///{worker_course / 'gradebook.db'}", assignment, student)
                    target = course.path("autograded", student, assignment)
                    _replace_folder(worker_course / "autograded" / student / assignment, target)
                    _copy_secret(course.path("submitted", student, assignment), target)
                except Exception as error:  # noqa: BLE001 (a gradebook without the submission: say so)
                    note = dict(note, problem=f"nbgrader recorded no grade ({type(error).__name__}: {error})")
                    result = None
            results.put((student, assignment, result, note))

        workers = threading.Thread(target=grade_in_workers, args=(submissions, course.assignments, template, tmp,
                                                                  graded),
                                   kwargs=dict(jobs=jobs, limits=limits, progress=progress,
                                               prewarmed_kernels=prewarmed_kernels, sandbox=sandbox,
                                               feedback=False))
        workers.start()
        with course.gradebook() as gradebook:  # the course gradebook's one writer
            while workers.is_alive() or not results.empty():
                try:
                    student, assignment, result, note = results.get(timeout=0.5)
                except queue.Empty:
                    continue
                started = time.perf_counter()
                if result is None:
                    shutil.rmtree(course.path("autograded", student, assignment), ignore_errors=True)
                    merge_result(gradebook, assignment, student, zero_result(gradebook, assignment))
                    run.failed.append((student, assignment, note["problem"]))
                else:
                    merge_result(gradebook, assignment, student, result)
                    run.graded.append((student, assignment))
                run.merge_seconds.append(time.perf_counter() - started)
                record_state(course, student, assignment, {
                    "sha256": digests[(student, assignment)], "graded_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "status": "not graded" if result is None else "graded", "problem": note["problem"],
                    "integrity": note["integrity"]})
        workers.join()
    lost = set(digests) - {(s, a) for s, a in run.graded} - {(s, a) for s, a, _ in run.failed}
    run.failed += [(s, a, "the grading worker failed (see the output above): run grade again") for s, a in sorted(lost)]
    return run
