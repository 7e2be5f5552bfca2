"""Autograde a class with nbgrader: ``python -m autograder grade DIR [--out OUT] [--jobs N]``.

How it works:

1. ``submissions.collect`` reads DIR: per student, only the allow-listed ``<assignment>.ipynb``
   files, copied at once into the run's private temporary folder (mode 0700) with their SHA-256;
   DIR is only read, no link in it is followed, zips are size-checked before and while they are
   extracted; unreadable or refused entries become problem rows. Each notebook is handed to
   nbgrader from that copy, and only if its bytes are unchanged (``submissions.hand_in``).
2. A *template* nbgrader course is built once in a temporary folder (sources from
   ``autograder/authoring/assignments``, ``generate_assignment`` into its gradebook).
3. Notebooks are split over N workers, the costliest assignments first. Each worker owns a copy
   of the template course (its own gradebook, so no two processes write one SQLite file), a
   private copy of the grader code and its own IPython/Jupyter folders (``grader_files``), and
   one long-lived nbgrader process
   (``nbgrader_worker``: nbgrader's start-up is paid once, not per notebook; kernels are forked
   from a process with torch already imported, ``prewarmed_kernel``) that runs, per student and
   notebook, ``autograde`` then ``generate_feedback``. Limits count CPU time, with a wall-clock
   backstop several times larger (``limits``): per cell the kernel's (``limited_execute``: the
   cell is interrupted and scores 0, a kernel restarted for it gets the earlier cells replayed),
   per notebook the worker's whole process tree. A submission that hangs or crashes nbgrader
   gets the process killed and restarted: it costs only its own row.
4. Every kernel runs in a bubblewrap sandbox (``--sandbox bwrap``, the default; ``sandbox``):
   it sees no course folder, gradebook, submissions or kit checkout, has no network, and the
   only code of the kit it can import is ``student_src`` (read-only). The hidden checks and the
   reference run outside it, in the nbgrader process (``check_server``), and test cells are
   scored from their verdicts (``nbgrader_plugins.ScoreTestCells``). ``--sandbox none`` is for
   trusted submissions only: notebooks then run with the grader's user, files and network.
   The notebook's scores are read from the gradebook at once. ``OUT/grades.csv`` gets one row per student, notebook and graded cell plus
   a total per notebook; ``OUT/feedback/<student>/<nb>.html`` the feedback (hidden tests cleared).
5. OUT is written by ``safe_output``: folders opened without following links, every file a new
   temporary file moved into place with ``os.replace`` (a link a notebook planted there, e.g.
   ``OUT/grades.csv -> ~/.bashrc``, is replaced, not written through), feedback pages over 5 MB
   replaced by a note. Text cells of grades.csv are one line, at most 500 characters, and a ``'``
   goes in front of any that starts with ``= + - @``, tab or CR (:func:`csv_cell`): a student's
   error message can neither be a formula nor forge a row.

Every run starts from fresh course folders, so a re-grade never shows a stale score.
"""

from __future__ import annotations

import csv
import io
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from autograder.authoring import build

from autograder.engine import capacity
from autograder.engine import sandbox as sandboxing
from autograder.engine.grader_files import private_code_copy, runtime_env, worker_runtime
from autograder.engine.limits import Limits
from autograder.engine.nbgrader_worker import CpuTimeExceeded, NbgraderWorker, WorkerError
from autograder.engine.safe_output import copy_feedback, remove_path, write_file_atomically
from autograder.engine.submissions import Submission, collect, hand_in
from student_src import assets

CSV_FIELDS = ("student_id", "assignment", "item", "kind", "score", "max_score", "status", "message")
TOTAL_ITEM = "autograded_total"
#: A cell of grades.csv starting with one of these is a formula to a spreadsheet (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MAX_CELL_CHARS = 500


@dataclass
class Row:
    student_id: str
    assignment: str
    item: str
    kind: str
    score: float | None
    max_score: float
    status: str
    message: str = ""


def _cell_errors(notebook_path: Path) -> dict:
    """``{grade_id: "ErrorName: message"}`` for graded cells that raised, from an executed notebook."""
    errors = {}
    if not notebook_path.is_file():
        return errors
    for cell in nbformat.read(str(notebook_path), as_version=4).cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if grade_id and output.get("output_type") == "error":
                errors[grade_id] = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"[:500]
    return errors


def _graded_cells(notebook) -> dict:
    return {cell.metadata["nbgrader"]["grade_id"]: cell for cell in notebook.cells
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")}


def integrity_report(course: Path, assignment: str, submitted_path: Path) -> list[str]:
    """What nbgrader restores in a submission: deleted cells, edited locked cells, cell types, points.

    Compared with the release the student received (``course/release``) and the source's metadata.
    """
    source = _graded_cells(nbformat.read(str(course / "source" / assignment / f"{assignment}.ipynb"), 4))
    released = _graded_cells(nbformat.read(str(course / "release" / assignment / f"{assignment}.ipynb"), 4))
    handed_in = _graded_cells(nbformat.read(str(submitted_path), 4))
    notes = []
    for grade_id, cell in source.items():
        meta, student_cell = cell.metadata["nbgrader"], handed_in.get(grade_id)
        if student_cell is None:
            if meta.get("locked") or meta.get("grade"):
                notes.append(f"deleted cell {grade_id} restored")
            continue
        if student_cell.cell_type != cell.cell_type:
            notes.append(f"cell type of {grade_id} changed back to {cell.cell_type}")
        if meta.get("points") is not None and student_cell.metadata["nbgrader"].get("points") != meta["points"]:
            notes.append(f"points of {grade_id} restored")
        if meta.get("locked") and student_cell.source != released[grade_id].source:
            notes.append(f"edited locked cell {grade_id} restored")
    return notes


def _not_graded(student_id: str, assignment: str, max_auto: float, message: str) -> Row:
    """The total row of a notebook that got no score, saying why."""
    return Row(student_id, assignment, TOTAL_ITEM, "autograded", 0.0, max_auto, "not graded", message)


def _notebook_rows(course: Path, student_id: str, assignment: str, manual: set, max_auto: float,
                   problem: str | None, integrity_notes: list[str]) -> list[Row]:
    """The rows of one graded notebook, read from the worker's gradebook right after grading it
    (so nothing a later notebook does to the gradebook can change them)."""
    from nbgrader.api import Gradebook, MissingEntry

    if problem:
        return [_not_graded(student_id, assignment, max_auto, problem)]
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        try:
            notebook = gradebook.find_submission_notebook(assignment, assignment, student_id)
        except MissingEntry:
            return [_not_graded(student_id, assignment, max_auto, "no grade recorded")]
        grades = [(grade.cell.name, grade.score, float(grade.max_score), grade.needs_manual_grade)
                  for grade in notebook.grades]
    errors = _cell_errors(course / "autograded" / student_id / assignment / f"{assignment}.ipynb")
    rows, auto_total = [], 0.0
    for name, score, max_score, needs_manual in sorted(grades):
        if name not in manual:
            score = float(score)
            auto_total += score
            status = "passed" if score >= max_score else "failed"
            rows.append(Row(student_id, assignment, name, "autograded", score, max_score, status, errors.get(name, "")))
        elif needs_manual:
            rows.append(Row(student_id, assignment, name, "manual", None, max_score, "needs manual grading", ""))
        else:  # nbgrader gives 0 to an answer left exactly as released
            rows.append(Row(student_id, assignment, name, "manual", 0.0, max_score, "unanswered", ""))
    rows.append(Row(student_id, assignment, TOTAL_ITEM, "autograded", auto_total, max_auto, "graded",
                    "; ".join(integrity_notes)))
    return rows


def _manual_cells(course: Path, assignment: str) -> set:
    """grade_ids of manually graded cells (written answers, graded figures) in the source notebook."""
    source = nbformat.read(str(course / "source" / assignment / f"{assignment}.ipynb"), 4)
    return {grade_id for grade_id, cell in _graded_cells(source).items()
            if cell.metadata["nbgrader"].get("solution") and cell.metadata["nbgrader"].get("grade")}


def _max_autograded(course: Path, assignment: str, manual: set) -> float:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_notebook(assignment, assignment)
        return float(sum(cell.max_score for cell in notebook.grade_cells if cell.name not in manual))


def _grade_one(worker: NbgraderWorker, submission: Submission, assignment: str, limits: Limits,
               feedback: bool = True) -> dict:
    """autograde (+ generate_feedback) of one notebook; ``{"integrity": [...], "problem": ...}``.
    A submission time (``submission.timestamps``) goes beside it as nbgrader's ``timestamp.txt``."""
    course = worker.course
    target = course / "submitted" / submission.student_id / assignment
    target.mkdir(parents=True, exist_ok=True)
    problem = hand_in(submission, assignment, target / f"{assignment}.ipynb")
    if problem:  # its private copy changed since collect: nbgrader never sees it
        return {"integrity": [], "problem": problem}
    (target / "timestamp.txt").unlink(missing_ok=True)
    if submission.timestamps.get(assignment):
        (target / "timestamp.txt").write_text(submission.timestamps[assignment] + "\n")
    note = {"integrity": integrity_report(course, assignment, target / f"{assignment}.ipynb"), "problem": None}
    try:
        worker.request("autograde", assignment, submission.student_id, timeout=limits.notebook_wall_seconds,
                       cpu_seconds=limits.notebook_seconds)
        if feedback:
            worker.request("generate_feedback", assignment, submission.student_id, timeout=300)
    except CpuTimeExceeded:
        note["problem"] = (f"grading was stopped after {limits.notebook_seconds} s of CPU time "
                           "(a cell that never finishes and ignores interrupts?)")
    except subprocess.TimeoutExpired:
        note["problem"] = (f"grading was stopped after {limits.notebook_wall_seconds} s (wall clock: a cell "
                           "that waits without end and ignores interrupts?)")
    except WorkerError as error:
        last_lines = [line for line in str(error).splitlines() if line.strip()][-3:]
        note["problem"] = "nbgrader could not grade this notebook: " + " | ".join(last_lines)[:400]
    return note


#: The most threads a kernel's torch/OpenMP uses when it grades alone (``worker_env``).
MOST_KERNEL_THREADS = 2


def kernel_threads(jobs: int) -> int:
    """Threads per kernel: 1 when several workers share the cores, else ``MOST_KERNEL_THREADS``
    or the cores, whichever is fewer. Fixed, so that a cell's CPU time (what its limit counts)
    does not grow with the machine's core count."""
    return 1 if jobs > 1 else min(MOST_KERNEL_THREADS, capacity.cores())


def worker_env(jobs: int, code: Path, runtime: Path) -> dict:
    """Environment of one grading worker and its kernels: the grader code from the private copy
    ``code``, IPython/Jupyter folders in ``runtime``, :func:`kernel_threads` threads per kernel
    whose OpenMP threads sleep when idle (``OMP_WAIT_POLICY=PASSIVE``: a thread that spins
    waiting burns CPU time that the cell limit would count), and the asset folder as this process
    sees it (the kernels' ``student_src`` is the copy, which would not find ``<checkout>/data``
    on its own)."""
    env = build.grading_env(threads=kernel_threads(jobs), code_root=code) | runtime_env(runtime)
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    env[assets.DATA_DIR_ENV] = str(assets.data_dir())
    return env


def make_template_course(root: Path, assignments) -> Path:
    """An nbgrader course with every assignment generated into its gradebook."""
    course = build.new_course(root)
    build.generate_releases(course, build.write_sources(course, assignments), database=True)
    return course


def grade(directory: Path, out: Path, jobs: int = 1, assignments=None, progress: bool = True,
          limits: Limits | None = None, prewarmed_kernels: bool = True, sandbox: str = "bwrap") -> list[Row]:
    """Grade every student in ``directory``; write ``out/grades.csv`` and ``out/feedback/``; return the rows.

    ``jobs`` workers grade notebooks side by side, each in its own course folder; one student's
    notebooks may go to different workers. Kernels get a fixed number of threads
    (:func:`kernel_threads`: one each with more than one worker; two kernels fighting over both
    cores are slower than one each). ``limits``: :class:`~autograder.engine.limits.Limits`
    (CPU seconds per cell and notebook, memory); a ``jobs`` past the cores or the memory gets a
    warning on stderr (``capacity``).
    ``prewarmed_kernels``: run each notebook in a kernel forked from a process that has already
    imported torch and the other heavy libraries (``prewarmed_kernel``); False for plain kernels.
    ``sandbox``: ``"bwrap"`` runs every kernel in a bubblewrap sandbox (``autograder.engine.sandbox``;
    raises :class:`~autograder.engine.sandbox.SandboxUnavailable` where bwrap cannot run), ``"none"``
    trusts the submissions: notebooks then run with the grader's user, files and network.
    """
    check_sandbox(sandbox)
    assignments = list(assignments or build.assignment_ids())
    limits = limits or Limits()
    out = Path(out)
    # A re-grade replaces the previous results whole: no stale feedback or CSV survives (and a
    # link planted in their place is removed, not followed).
    remove_path(out, "feedback")
    remove_path(out, "grades.csv")
    with tempfile.TemporaryDirectory(prefix="xai-grade-") as tmp:
        tmp = Path(tmp)
        submissions = collect(Path(directory), assignments, scratch=tmp / "unpacked")
        template = make_template_course(tmp / "template", assignments)
        manual = {assignment: _manual_cells(template, assignment) for assignment in assignments}
        max_auto = {assignment: _max_autograded(template, assignment, manual[assignment]) for assignment in assignments}
        rows: list[Row] = []

        def graded(course: Path, submission: Submission, assignment: str, note: dict) -> None:
            rows.extend(_notebook_rows(course, submission.student_id, assignment, manual[assignment],
                                       max_auto[assignment], note["problem"], note["integrity"]))
            copy_feedback(course / "feedback" / submission.student_id / assignment / f"{assignment}.html",
                          out, submission.student_id, assignment)

        grade_in_workers(submissions, assignments, template, tmp, graded, jobs=jobs, limits=limits,
                         progress=progress, prewarmed_kernels=prewarmed_kernels, sandbox=sandbox)
        rows.extend(rows_not_graded(submissions, assignments, rows, max_auto))
    rows.sort(key=lambda row: (row.student_id, row.assignment, row.item == TOTAL_ITEM, row.item))
    write_csv(rows, out / "grades.csv")
    return rows


def check_sandbox(sandbox: str) -> None:
    """Raise when ``sandbox`` is unknown, or is ``"bwrap"`` where bubblewrap cannot run."""
    if sandbox == "bwrap":
        sandboxing.require_bwrap()
    elif sandbox != "none":
        raise ValueError(f"sandbox must be 'bwrap' or 'none', not {sandbox!r}")


def grade_in_workers(submissions: list[Submission], assignments, template: Path, tmp: Path, graded,
                     jobs: int = 1, limits: Limits | None = None, progress: bool = True,
                     prewarmed_kernels: bool = True, sandbox: str = "bwrap", feedback: bool = True) -> None:
    """Grade every notebook of ``submissions`` in ``jobs`` parallel workers made from the nbgrader
    course ``template`` (in folders under ``tmp``); after each notebook, the worker's thread calls
    ``graded(worker_course, submission, assignment, note)`` (``note``: integrity notes, problem)
    while the worker's gradebook and folders hold that notebook's results. A worker that fails
    is reported on stderr; the others go on (its notebooks get no call)."""
    limits = limits or Limits()
    for warning in capacity.oversubscription_warnings(jobs, limits.memory_mb):
        print(warning, file=sys.stderr)
    notebooks: queue.Queue = queue.Queue()
    for pair in notebooks_longest_first(submissions, assignments):
        notebooks.put(pair)
    jobs = max(1, min(jobs, notebooks.qsize() or 1))
    bar = _progress_bar(notebooks.qsize(), progress)

    def work(worker: int) -> None:
        # Own course folder (gradebook), own copy of the grader code, own Jupyter/IPython folders.
        course = shutil.copytree(template, tmp / f"worker{worker}")
        code = private_code_copy(tmp / f"code{worker}")
        runtime = worker_runtime(tmp / f"runtime{worker}", code)
        env = worker_env(jobs, code, runtime)
        with NbgraderWorker(course, env=env, memory_mb=limits.memory_mb, cell_seconds=limits.cell_seconds,
                            prewarm=prewarmed_kernels, runtime=runtime / "kernels", sandbox=sandbox,
                            code=code) as nbgrader:
            while True:
                try:
                    submission, assignment = notebooks.get_nowait()
                except queue.Empty:
                    return
                note = _grade_one(nbgrader, submission, assignment, limits, feedback=feedback)
                graded(course, submission, assignment, note)
                bar.update(1)

    def guarded_work(worker: int) -> None:
        try:
            work(worker)
        except Exception:  # noqa: BLE001 (the other workers go on; what is left gets a row below)
            traceback.print_exc()

    threads = [threading.Thread(target=guarded_work, args=(worker,)) for worker in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bar.close()


#: Relative grading cost of each assignment's notebook (measured, solved, stand-in): the longest are
#: handed out first, so that no worker starts a long notebook while the others run out of work.
GRADING_COST = {"04_beyond": 5, "05_imagenet": 4, "02_gradcam": 3, "03_guided": 3, "01_hooks": 2}


def notebooks_longest_first(submissions: list[Submission], assignments) -> list[tuple[Submission, str]]:
    """Every ``(submission, assignment)`` to grade, the costliest assignments first (students in
    their order within one assignment). Work is spread by notebook, not by student: one student's
    five notebooks use every worker."""
    pairs = [(submission, assignment) for submission in submissions for assignment in assignments
             if assignment in submission.notebooks]
    order = {assignment: position for position, assignment in enumerate(assignments)}
    return sorted(pairs, key=lambda pair: (-GRADING_COST.get(pair[1], 1), order[pair[1]]))


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="grading notebooks", unit="nb", disable=not enabled)


def rows_not_graded(submissions: list[Submission], assignments, rows: list[Row], max_auto: dict) -> list[Row]:
    """One total row for every student and assignment that ``rows`` has no total for, saying why:
    the submission's problem (unreadable, refused, two entries, ...), or a failed worker."""
    graded = {(row.student_id, row.assignment) for row in rows if row.item == TOTAL_ITEM}
    missing = []
    for submission in submissions:
        for assignment in assignments:
            if (submission.student_id, assignment) not in graded:
                problem = submission.problems.get(assignment) or (
                    "the grading worker failed (see the grader's output): grade this notebook again")
                missing.append(_not_graded(submission.student_id, assignment, max_auto[assignment], problem))
    return missing


def csv_cell(text: str) -> str:
    """A text cell of grades.csv that a spreadsheet shows as text: one line (line breaks of any
    kind become spaces), at most ``MAX_CELL_CHARS`` characters, and a ``'`` in front when it
    starts with a formula character (``FORMULA_STARTS``, as OWASP recommends against CSV
    injection). A student controls error messages, so every text column goes through this."""
    text = " ".join(str(text).splitlines())
    if text.startswith(FORMULA_STARTS):
        text = "'" + text
    return text if len(text) <= MAX_CELL_CHARS else text[:MAX_CELL_CHARS - 3] + "..."


def csv_text(rows: list[Row]) -> str:
    """The rows as CSV with the columns ``CSV_FIELDS``: text cells through :func:`csv_cell`,
    scores as plain numbers (``score`` empty while it needs manual grading)."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for row in rows:
        record = {name: csv_cell(value) for name, value in asdict(row).items()}
        record["score"] = "" if row.score is None else f"{row.score:g}"
        record["max_score"] = f"{row.max_score:g}"
        writer.writerow(record)
    return buffer.getvalue()


def write_csv(rows: list[Row], path: Path) -> Path:
    """Write the rows to ``path`` (:func:`csv_text`), as a new file moved into place: a link
    found at ``path`` is replaced, never written through (``safe_output``)."""
    path = Path(path)
    return write_file_atomically(path.parent, [path.name], csv_text(rows).encode())


def summary_table(rows: list[Row]) -> str:
    """A plain-text table: one line per student, autograded score per assignment."""
    totals = [row for row in rows if row.item == TOTAL_ITEM]
    assignments = sorted({row.assignment for row in totals})
    students = sorted({row.student_id for row in totals})
    cell = {(row.student_id, row.assignment): row for row in totals}
    width = max([len("student")] + [len(s) for s in students])
    lines = ["  ".join(["student".ljust(width)] + [a.rjust(14) for a in assignments])]
    for student in students:
        parts = [student.ljust(width)]
        for assignment in assignments:
            row = cell.get((student, assignment))
            text = "-" if row is None else (f"{row.score:g}/{row.max_score:g}" if row.status == "graded"
                                            else f"0/{row.max_score:g}*")
            parts.append(text.rjust(14))
        lines.append("  ".join(parts))
    if any(row.status != "graded" for row in totals):
        lines.append("* not graded: see the status and message columns of grades.csv")
    return "\n".join(lines)
