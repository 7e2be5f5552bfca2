"""Limits in CPU time: the same grades quietly and while every core is busy with other work.

The clock (``cpu_clock.ProcessTreeClock``) is tested on real processes; the limits through the
real pipeline (``grade``, sandboxed kernels): a small class of Assignment 1 notebooks is graded
twice, once as the machine is and once while three CPU burners per core run beside it, with a
cell limit of ``CELL_CPU_SECONDS`` CPU seconds (wall-clock backstop 5x that).
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import re
import subprocess
import sys
import time

import nbformat
import pytest

from autograder.engine import capacity, sandbox
from autograder.engine.cpu_clock import ProcessTreeClock, descendants
from autograder.engine.grade import TOTAL_ITEM, kernel_threads, worker_env
from autograder.engine.limits import CELL_WALL_FACTOR, Limits
from tests import grading_harness as harness
from tests.conftest import standin_assets_in
from tests.processes import alive, burning_children

A = "01_hooks"
CELL_CPU_SECONDS = 8
#: The half-limit notebook's extra CPU seconds, before its definitions. Under three burners per
#: core it gets at most a quarter of a core or so: far more than CELL_CPU_SECONDS of wall-clock
#: time, far less than the backstop (CELL_WALL_FACTOR * CELL_CPU_SECONDS).
HALF_SECONDS = 3
BURNERS_PER_CORE = 3

#: Burns CPU for {seconds} s of this process's own CPU time (``time.process_time``), then waits
#: for its standard input to close.
BURN_THEN_WAIT = ("import sys, time\nstart = time.process_time()\nwhile time.process_time() - start < {seconds}:\n"
                  "    pass\nprint('burnt', flush=True)\nsys.stdin.read()\n")

# Prepended to the solution cell of record_activations: threads fixed by the grader, then half
# the cell limit in CPU time, then the cell's definitions. Prints its wall-clock time.
HALF_LIMIT = f'''import os as _os
import time as _time

import torch as _torch

assert _torch.get_num_threads() == 1 and _os.environ.get("OMP_WAIT_POLICY") == "PASSIVE", (
    _torch.get_num_threads(), _os.environ.get("OMP_WAIT_POLICY"))
_wall, _cpu = _time.monotonic(), _time.process_time()
while _time.process_time() - _cpu < {HALF_SECONDS}:
    pass
print(f"half the limit in CPU time took {{_time.monotonic() - _wall:.2f}} s of wall-clock time")
'''
# Two ungraded cells a student added, each starting 16 processes that burn CPU: the kernel's
# process tree runs past the cell limit long before the wall-clock backstop, however busy the
# machine is. The first waits (and is interrupted: its kernel lives on), the second ignores the
# interrupt (its kernel is restarted, the cells before it are run again, and every later cell
# still needs their state).
INTERRUPTED = burning_children(16) + '''import time
try:
    time.sleep(3600)
finally:
    for burner in burners:
        burner.kill()
        burner.wait()
'''
IGNORES_INTERRUPTS = burning_children(16) + '''import time
while True:
    try:
        time.sleep(0.05)
    except KeyboardInterrupt:
        pass
'''


def _burner(seconds: float) -> subprocess.Popen:
    """``sh`` whose child Python burns ``seconds`` of CPU time, prints ``burnt`` and waits for
    its input to close; ``sh`` itself then sleeps on (the clock's root outlives the child)."""
    program = BURN_THEN_WAIT.format(seconds=seconds)
    return subprocess.Popen(["sh", "-c", f'"{sys.executable}" -c "$0"; sleep 60', program],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_a_childs_cpu_time_is_counted_and_stays_counted_after_it_dies():
    shell = _burner(1.5)
    try:
        clock = ProcessTreeClock([shell.pid])
        assert shell.stdout.readline() == "burnt\n"
        burnt = clock.seconds()
        assert 1.5 <= burnt < 2.5, burnt  # the child's 1.5 s, its start-up, nothing of this process
        (child,) = descendants(shell.pid)
        shell.stdin.close()
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child) and alive(shell.pid)
        assert clock.seconds() >= burnt  # the dead child's time is still there
    finally:
        shell.kill()
        shell.wait()


def test_sleeping_uses_no_cpu_time():
    sleeper = subprocess.Popen(["sh", "-c", f'"{sys.executable}" -c "import time; time.sleep(2)"'])
    try:
        clock = ProcessTreeClock([sleeper.pid])
        time.sleep(1.5)
        assert clock.seconds() < 0.3 and clock.processes() >= 1
    finally:
        sleeper.kill()
        sleeper.wait()


def test_kernels_get_fixed_threads_that_sleep_when_idle(tmp_path):
    assert kernel_threads(2) == 1 and kernel_threads(1) == min(2, capacity.cores())
    env = worker_env(1, tmp_path / "code", tmp_path / "runtime")
    assert env["OMP_NUM_THREADS"] == str(min(2, capacity.cores())) and env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert sandbox.kernel_environment(env)["OMP_WAIT_POLICY"] == "PASSIVE"  # the sandbox lets it through


def test_jobs_follow_the_cores_and_the_memory(monkeypatch):
    monkeypatch.setattr(capacity, "cores", lambda: 8)
    monkeypatch.setattr(capacity, "available_memory_mb", lambda: 20_000)
    assert capacity.default_jobs(8192) == 2 and capacity.default_jobs(1024) == 8
    assert capacity.oversubscription_warnings(2, 8192) == []
    cores, memory = capacity.oversubscription_warnings(9, 4096)
    assert "more than the 8 CPU cores" in cores and "9 x --memory-mb 4096" in memory
    assert len(capacity.oversubscription_warnings(3, 8192)) == 1  # memory only


def _burn_forever() -> None:
    while True:
        pass


def _with_cells(notebook, after: dict) -> nbformat.NotebookNode:
    """``notebook`` with a new, ungraded code cell after each cell ``grade_id`` of ``after``."""
    notebook = copy.deepcopy(notebook)
    for grade_id, source in after.items():
        index = next(i for i, cell in enumerate(notebook.cells)
                     if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)
        notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return notebook


def _scores(table: dict) -> dict:
    return {student: {item: (row.score, row.status) for item, row in rows.items()} for student, rows in table.items()}


def _grade(root, students: dict, limits: Limits) -> tuple:
    """``(table, out folder)`` of one grading of ``students`` under ``root``."""
    return harness.grade_cohort(root, A, students, limits=limits), root / "out"


@pytest.fixture(scope="module")
def graded_twice(tmp_path_factory):
    """``{"quiet"|"loaded": (table, out folder)}``: the class graded as the machine is, then beside
    ``BURNERS_PER_CORE`` CPU burners per core (killed in ``finally``)."""
    root = tmp_path_factory.mktemp("cpu_limits")
    solved = harness.mutated_submission(A)
    students = {"solved": solved,
                "half_limit": harness.with_code(solved, "record_activations", HALF_LIMIT),
                "burner": _with_cells(solved, {"record_activations": INTERRUPTED,
                                               "test_record_activations_cleanup": IGNORES_INTERRUPTS})}
    limits = Limits(cell_seconds=CELL_CPU_SECONDS)
    results = {}
    with standin_assets_in(root / "assets"):
        started = time.monotonic()
        results["quiet"] = _grade(root / "quiet", students, limits)
        print(f"quiet: {time.monotonic() - started:.0f} s, load {os.getloadavg()}")
        context = multiprocessing.get_context("fork")
        burners = [context.Process(target=_burn_forever, daemon=True)
                   for _ in range(BURNERS_PER_CORE * capacity.cores())]
        try:
            for burner in burners:
                burner.start()
            started = time.monotonic()
            results["loaded"] = _grade(root / "loaded", students, limits)
            print(f"loaded: {time.monotonic() - started:.0f} s, load {os.getloadavg()}")
        finally:
            for burner in burners:
                burner.kill()
                burner.join()
    return results


def _feedback(out, student) -> str:
    return (out / "feedback" / student / f"{A}.html").read_text()


def test_the_same_grades_quietly_and_with_every_core_busy(graded_twice):
    quiet, loaded = (_scores(graded_twice[run][0]) for run in ("quiet", "loaded"))
    assert quiet == loaded
    assert {student: rows[TOTAL_ITEM] for student, rows in quiet.items()} == {
        student: (8.0, "graded") for student in ("solved", "half_limit", "burner")}


def test_a_cell_at_half_its_cpu_limit_passes_quietly_and_under_load(graded_twice):
    """The cell used half its CPU limit and passed in both runs, within the wall-clock backstop.
    (How much longer it took under load depends on how the scheduler shares the cores: with
    autogroup scheduling a sandboxed kernel, in a session of its own, gets a core's worth
    whatever runs beside it. The wall-clock time is printed, not asserted.)"""
    walls = {}
    for run in ("quiet", "loaded"):
        table, out = graded_twice[run]
        assert table["half_limit"][TOTAL_ITEM].score == 8
        (wall,) = re.findall(r"half the limit in CPU time took ([\d.]+) s of wall-clock time",
                             _feedback(out, "half_limit"))
        walls[run] = float(wall)
    print(f"half the CPU limit ({HALF_SECONDS} s) took, in wall-clock seconds: {walls}")
    assert max(walls.values()) < CELL_CPU_SECONDS * CELL_WALL_FACTOR, walls


def test_a_cell_over_its_cpu_limit_fails_alone_and_the_cells_after_it_keep_their_state(graded_twice):
    """Both added cells are stopped by the CPU limit (their child processes are counted);
    the kernel that ignored the interrupt is restarted and the cells before it run again, so
    every graded cell after it passes: no NameError, no note about lost state."""
    for run in ("quiet", "loaded"):
        table, out = graded_twice[run]
        assert all(row.status in ("passed", "graded", "needs manual grading") for row in table["burner"].values())
        page = _feedback(out, "burner")
        stops = re.findall(r"(?:used more than|did not finish within|Error)[^<]{0,160}", page)
        assert page.count(f"used more than {CELL_CPU_SECONDS} s of CPU time") >= 2, (run, stops)
        assert "CellTimeoutError" in page and "NameError" not in page and "KernelRestarted" not in page
