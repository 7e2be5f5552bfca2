"""Where the time goes when one notebook is graded: a table per notebook, solved and blank.

    .venv/bin/python benchmarks/profile_grading.py [--assignment 02_gradcam ...] [--kind solved|blank]
        [--sandbox bwrap|none] [--checks]

Runs one grading worker *in this process* (``nbgrader_worker.start_api``: the same sandbox,
zygotes, configuration and check server as ``grade``) on the stand-in model and images, and
times, per notebook, with wrappers installed around the worker's own functions:

- the worker's start (nbgrader imported, sandbox and zygotes made; the zygotes' imports of
  torch and the other libraries, until their CPU time stops growing);
- the notebook kernel's start (a fork of the zygote) and the check kernel's;
- the notebook kernel's cells by role: the set-up cell, the solution (student) cells, the tools
  cells, the visible part of the test cells, every other code cell (exploration and figures);
- the check kernel: its set-up and function cells, and the hidden lines of the test cells, split
  into the checks the grader ran (per check with ``--checks``), the frames it sent (count, MB,
  ``torch.save`` seconds), the frames it read (count, MB, ``torch.load`` seconds), the models it
  sent in full, and the deep copies its pristine copies made (``check_server.PristineCopies``);
- nbgrader's preprocessors, one line each (``SaveAutoGrades`` is the gradebook write), what
  else ``autograde`` did (copying files, the submission in the gradebook), and
  ``generate_feedback``.

The load (``os.getloadavg``) is printed with every table: on a shared machine it says how far
the figures can be trusted. Nothing here changes what a notebook scores; the score is printed
beside the times.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autograder.authoring import build  # noqa: E402
from autograder.engine import check_kernel, check_server, grade as grading, nbgrader_plugins  # noqa: E402
from autograder.engine import nbgrader_worker  # noqa: E402
from autograder.engine.grader_files import private_code_copy, worker_runtime  # noqa: E402
from student_src import assets, fetch  # noqa: E402
from student_src import grading_client as wire  # noqa: E402


def _children(pid: int) -> list[int]:
    found = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                found += [int(child) for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return found


def cpu_seconds() -> float:
    """CPU seconds used so far by this process (every thread: the check server's too) and by
    every process below it that is still running (the zygotes, the kernels they forked)."""
    total, pending, tick = time.process_time(), _children(os.getpid()), os.sysconf("SC_CLK_TCK")
    while pending:
        pid = pending.pop()
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            pending += _children(pid)
    return total


class Profile:
    """Wall and CPU seconds, and counts, of one notebook by phase (thread-safe: the checks run in
    the server's threads). CPU seconds are those of the whole process tree, so they say what a
    phase cost the machine also when other work shares it (the load inflates wall seconds)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seconds: dict[str, float] = collections.defaultdict(float)
        self.cpu: dict[str, float] = collections.defaultdict(float)
        self.counts: dict[str, int] = collections.defaultdict(int)
        self.cells: list[tuple[float, float, str]] = []  # (wall, CPU seconds, cell id)

    def add(self, phase: str, seconds: float = 0.0, count: int = 1, cpu: float | None = None) -> None:
        with self.lock:
            self.seconds[phase] += seconds
            self.counts[phase] += count
            if cpu is not None:
                self.cpu[phase] += cpu


CURRENT = Profile()
#: Cells listed by name under each table, costliest (CPU) first.
SLOWEST = 6
#: Wall and CPU seconds of wrapped calls nested inside the running cell (hidden lines, replays):
#: subtracted from the cell's own, so that each second is counted once.
NESTED = threading.local()


def timed(phase_of, nested: bool = False, cpu: bool = True):
    """Wrap a function: its wall (and, with ``cpu``, CPU) seconds go to ``phase_of(*args)`` (a
    name, or None: not counted). ``cpu=False`` for calls made many times per notebook (reading
    the process tree's CPU time costs about a millisecond)."""
    def wrap(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            started, cpu_started = time.perf_counter(), cpu_seconds() if cpu else 0.0
            if nested:
                NESTED.depth = getattr(NESTED, "depth", 0) + 1
            try:
                return function(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started
                cpu_spent = cpu_seconds() - cpu_started if cpu else None
                phase = phase_of(*args, **kwargs) if callable(phase_of) else phase_of
                if phase:
                    CURRENT.add(phase, spent, cpu=cpu_spent)
                if nested:
                    NESTED.depth -= 1
                    if NESTED.depth == 0:  # the outermost nested call (a start inside a replay: once)
                        NESTED.seconds = getattr(NESTED, "seconds", 0.0) + spent
                        NESTED.cpu = getattr(NESTED, "cpu", 0.0) + (cpu_spent or 0.0)
        return wrapper
    return wrap


def _cell_phase(cell) -> str:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if cell.get("cell_type") != "code":
        return "notebook kernel: markdown cells"
    if meta.get("grade_id") == "setup":
        return "notebook kernel: set-up cell"
    if meta.get("solution") and meta.get("grade"):
        return "notebook kernel: manually graded cells (answers, graded figures)"
    if meta.get("solution"):
        return "notebook kernel: solution cells (student code)"
    if check_kernel.TOOLS_CELL_ID.match(str(cell.get("id", ""))):
        return "notebook kernel: tools cells"
    if meta.get("grade"):
        return "notebook kernel: test cells, visible part"
    return "notebook kernel: exploration and figures (other code cells)"


def install_wrappers(per_check: bool) -> None:
    """Wrap the worker's functions (in this process) so that they report to :data:`CURRENT`."""
    import torch
    from nbclient.client import NotebookClient
    from nbconvert.preprocessors.base import Preprocessor
    from nbgrader.converters.autograde import Autograde

    # Kernels.
    NotebookClient.start_new_kernel = timed("notebook kernel: start (fork of the zygote)")(NotebookClient.start_new_kernel)
    NotebookClient.start_new_kernel_client = timed("notebook kernel: start (fork of the zygote)")(
        NotebookClient.start_new_kernel_client)
    check_kernel.CheckKernel.start = timed("  check kernel: start (part of the line it starts in)", nested=True)(
        check_kernel.CheckKernel.start)
    check_kernel.CheckKernel.shutdown = timed("kernels: shut down")(check_kernel.CheckKernel.shutdown)

    def function_cell_phase(checker, source):
        return "check kernel: set-up cell" if "session.start" in source else "check kernel: solution and tools cells"
    check_kernel.CheckKernel.run_function_cell = timed(function_cell_phase, nested=True)(
        check_kernel.CheckKernel.run_function_cell)
    check_kernel.CheckKernel.run_hidden = timed("check kernel: hidden lines of the test cells", nested=True)(
        check_kernel.CheckKernel.run_hidden)

    # Cells of the notebook kernel: each cell's time less what ran nested in it (check kernel).
    original_cell = nbgrader_plugins.ExecuteWithTrustedChecks.preprocess_cell

    def preprocess_cell(self, cell, resources, index):
        NESTED.seconds = NESTED.cpu = 0.0
        started, cpu_started = time.perf_counter(), cpu_seconds()
        try:
            return original_cell(self, cell, resources, index)
        finally:
            spent, cpu_spent = time.perf_counter() - started, cpu_seconds() - cpu_started
            CURRENT.add(_cell_phase(cell), spent - NESTED.seconds, cpu=cpu_spent - NESTED.cpu)
            CURRENT.cells.append((spent, cpu_spent, str(cell.get("id", index))))
    nbgrader_plugins.ExecuteWithTrustedChecks.preprocess_cell = preprocess_cell

    # The trusted side of the hidden checks.
    def check_phase(connection, request, budget=None):
        name = f"{request.get('module')}.{request.get('check')}" if isinstance(request, dict) else "?"
        return f"  check {name}" if per_check else None
    check_server.run_check = timed(check_phase, cpu=per_check)(check_server.run_check)
    check_server.run_check = timed("  trusted side: checks in all")(check_server.run_check)
    original_save, original_load = torch.save, torch.load

    def save(obj, f, *args, **kwargs):
        started = time.perf_counter()
        original_save(obj, f, *args, **kwargs)
        CURRENT.add("  trusted side: torch.save of frames to the kernel", time.perf_counter() - started)
    torch.save = save

    def load(f, *args, **kwargs):
        started = time.perf_counter()
        try:
            return original_load(f, *args, **kwargs)
        finally:
            CURRENT.add("  trusted side: torch.load of the kernel's frames", time.perf_counter() - started)
    torch.load = load
    original_send, original_receive = wire.send_frame, wire.receive_bytes

    def send_frame(connection, message):
        started = time.perf_counter()
        original_send(connection, message)
        CURRENT.add("  frames to the kernel (send, torch.save included)", time.perf_counter() - started)
    wire.send_frame = send_frame

    def receive_bytes(connection, *args, **kwargs):
        started = time.perf_counter()
        data = original_receive(connection, *args, **kwargs)
        CURRENT.add("  waiting for the kernel (its compute, load and save, the transfer)",
                    time.perf_counter() - started)
        CURRENT.add("  MB from the kernel", 0.0, len(data) >> 10)
        return data
    wire.receive_bytes = receive_bytes
    original_sent_module = wire.SentModule.__init__

    def sent_module(self, ref, module, *args, **kwargs):
        original_sent_module(self, ref, module, *args, **kwargs)
        if module is not None:
            CURRENT.add("  models sent in full", 0.0)
    wire.SentModule.__init__ = sent_module
    check_server._PristineModule.__init__ = timed("  trusted side: pristine copies of sent models (deepcopy)", cpu=False)(
        check_server._PristineModule.__init__)
    check_server.TrustedSession._rebuild_module = timed("  trusted side: models rebuilt from the kernel's", cpu=False)(
        check_server.TrustedSession._rebuild_module)

    # nbgrader: every preprocessor (its own line), the submission in the gradebook.
    original_call = Preprocessor.__call__

    def call(self, nb, resources):
        if isinstance(self, nbgrader_plugins.ExecuteWithTrustedChecks):
            return original_call(self, nb, resources)  # its parts are timed above
        started = time.perf_counter()
        try:
            return original_call(self, nb, resources)
        finally:
            CURRENT.add(f"nbgrader: {type(self).__name__}", time.perf_counter() - started)
    Preprocessor.__call__ = call
    Autograde.init_assignment = timed("nbgrader: submission into the gradebook (init_assignment)")(
        Autograde.init_assignment)


def _wait_until_idle(quiet_seconds: float = 1.0, limit: float = 120.0) -> None:
    """Until the processes below this one (the zygotes importing torch) stop using CPU."""
    def cpu() -> int:
        total = 0
        for pid in nbgrader_worker.descendants(os.getpid()):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        return total
    deadline, last = time.monotonic() + limit, -1
    while time.monotonic() < deadline:
        now = cpu()
        if now == last:
            return
        last = now
        time.sleep(quiet_seconds)


def _submission(assignment: str, kind: str):
    if kind == "solved":
        return build.solved_submission(assignment)
    return nbformat.read(str(build.RELEASE_DIR / f"{assignment}.ipynb"), as_version=4)


def _score(course: Path, assignment: str, student: str) -> str:
    """The autograded score, ``score/max`` (the manually graded cells wait for a grader)."""
    from nbgrader.api import Gradebook

    manual = grading._manual_cells(course, assignment)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_submission_notebook(assignment, assignment, student)
        auto = [grade for grade in notebook.grades if grade.cell.name not in manual]
        return f"autograded {sum(grade.score for grade in auto):g}/{sum(grade.max_score for grade in auto):g}"


#: Phases that contain the others (not summed into "the rest of autograde").
TOTALS = ("nbgrader: autograde in all", "nbgrader: generate_feedback")


def print_table(title: str, profile: Profile, total: float, total_cpu: float) -> None:
    """One notebook's phases: wall seconds, CPU seconds (the process tree's; blank where only
    wall time is taken), count; indented lines break down the check kernel's hidden lines."""
    load = " ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\n{title}   (load {load})")
    print(f"  {'phase':76s} {'wall s':>7s} {'CPU s':>7s} {'count':>6s}")
    for phase in sorted(profile.seconds, key=lambda name: (name.startswith("  "), name)):
        seconds, count = profile.seconds[phase], profile.counts[phase]
        cpu = f"{profile.cpu[phase]:7.2f}" if phase in profile.cpu else ""
        if phase.startswith("  MB"):
            print(f"  {phase:76s} {'':7s} {'':7s} {count / 1024:6.1f}")
        else:
            print(f"  {phase:76s} {seconds:7.2f} {cpu:>7s} {count:6d}")
    top = [phase for phase in profile.seconds if not phase.startswith(("  ", *TOTALS))]
    other = profile.seconds[TOTALS[0]] - sum(profile.seconds[phase] for phase in top)
    other_cpu = profile.cpu[TOTALS[0]] - sum(profile.cpu[phase] for phase in top)
    print(f"  {'nbgrader: the rest of autograde (files, kernel shut-down, conversions)':76s} {other:7.2f} "
          f"{other_cpu:7.2f}")
    print(f"  {'the notebook in all (autograde + feedback)':76s} {total:7.2f} {total_cpu:7.2f}")
    costliest = sorted(profile.cells, key=lambda cell: -cell[1])[:SLOWEST]
    print("  costliest cells (CPU s, wall s): " + ", ".join(f"{name} {cpu:.1f}/{wall:.1f}" for wall, cpu, name in costliest),
          flush=True)


def main() -> int:
    global CURRENT
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assignment", action="append", help="default: every assignment")
    parser.add_argument("--kind", action="append", choices=("solved", "blank"), help="default: both")
    parser.add_argument("--sandbox", default="bwrap", choices=("bwrap", "none"))
    parser.add_argument("--checks", action="store_true", help="one line per hidden check")
    args = parser.parse_args()
    assignments = args.assignment or build.assignment_ids()
    kinds = args.kind or ["solved", "blank"]
    grading.check_sandbox(args.sandbox)
    from sqlalchemy.exc import SAWarning

    warnings.filterwarnings("ignore", category=SAWarning)  # nbgrader's own, on every autograde
    tmp = Path(tempfile.mkdtemp(prefix="profile-grading-"))
    try:
        os.environ[assets.DATA_DIR_ENV] = str(tmp / "assets")
        os.environ[assets.STANDIN_ENV] = "1"
        fetch.make_standin(tmp / "assets" / "standin")
        template = grading.make_template_course(tmp / "template", assignments)
        course = shutil.copytree(template, tmp / "worker0")
        code = private_code_copy(tmp / "code0")
        runtime = worker_runtime(tmp / "runtime0", code)
        os.environ.update(grading.worker_env(1, code, runtime))
        install_wrappers(args.checks)
        started = time.perf_counter()
        sandbox_root = Path(tempfile.mkdtemp(prefix="xai-sb-", dir="/tmp")) if args.sandbox == "bwrap" else None
        api, _ = nbgrader_worker.start_api(course, cell_seconds=grading.Limits().cell_seconds, prewarm=True,
                                           runtime=runtime / "kernels", sandbox_root=sandbox_root, code=code)
        ready = time.perf_counter() - started
        _wait_until_idle()
        print(f"worker start: {ready:.1f} s until nbgrader is ready, {time.perf_counter() - started:.1f} s until "
              f"the zygotes are idle (load {os.getloadavg()[0]:.1f}; {os.cpu_count()} cores; stand-in)", flush=True)
        for assignment in assignments:
            for kind in kinds:
                student = f"{kind}_{assignment}"
                folder = Path(course) / "submitted" / student / assignment
                folder.mkdir(parents=True)
                nbformat.write(_submission(assignment, kind), folder / f"{assignment}.ipynb")
                CURRENT = Profile()
                started, cpu_started = time.perf_counter(), cpu_seconds()
                result = timed("nbgrader: autograde in all")(api.autograde)(assignment, student, force=True,
                                                                             create=True)
                timed("nbgrader: generate_feedback")(api.generate_feedback)(assignment, student, force=True)
                total, total_cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
                if not result.get("success"):
                    print(result.get("log", "")[-3000:], result.get("error", "")[-3000:])
                print_table(f"{assignment}, {kind}: score {_score(Path(course), assignment, student)}",
                            CURRENT, total, total_cpu)
                if kind == "solved":
                    errors = grading._cell_errors(Path(course) / "autograded" / student / assignment
                                                  / f"{assignment}.ipynb")
                    for grade_id, error in errors.items():
                        print(f"  FAILED {grade_id}: {error[:300]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
