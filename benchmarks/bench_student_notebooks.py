"""The students' side: each notebook run top to bottom as a student runs it, and its slowest cells.

    .venv/bin/python benchmarks/bench_student_notebooks.py [--assignment 02_gradcam ...] [--json OUT]

What a student who has solved everything hands in (``build.solved_submission``: the release with
the solution cells filled in, no hidden tests) runs in a plain ``python3`` kernel, not in grading
mode, on the downloaded model and data if present and on the stand-in otherwise (say which: the
real model is slower only where it changes what a cell does, e.g. ScoreCAM's batches). It prints,
per notebook, the time from the first cell to the last, wall-clock and CPU (see ``TIMER_CELL``),
and the three slowest cells (their ids and seconds). A free Colab CPU runtime has 2 cores, like the machine this kit is tested on:
the goal is every notebook under 3 minutes there.

The times a notebook states for itself come from this benchmark: ``--record`` writes every
notebook's total and cell times, with the machine and its load, to
``benchmarks/student_notebook_times.json``, and the build puts them where a source says
``{{runtime}}`` or ``{{runtime CELL_ID}}`` (``autograder/authoring/stated_times.py``; then
``python -m autograder release``). Record on a quiet machine: the load is in the file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autograder.authoring import build, stated_times  # noqa: E402
from student_src import assets, fetch, models  # noqa: E402

GOAL_SECONDS = 180
CIFAR10_TEST_IMAGES = 10_000


#: Run first in the kernel (not timed): records each cell's wall-clock and CPU seconds. CPU time
#: is the process's user + system time over all its threads, so it does not grow when other
#: programs share the cores; on a quiet 2-core machine a cell takes at most about its CPU time
#: (torch's two threads make it less where they work in parallel).
TIMER_CELL = """
import json as _bench_json, time as _bench_time
_bench_cells = []
get_ipython().events.register("pre_run_cell", lambda info: _bench_cells.append(
    [_bench_time.perf_counter(), _bench_time.process_time()]))
get_ipython().events.register("post_run_cell", lambda result: _bench_cells and _bench_cells[-1].extend(
    [_bench_time.perf_counter(), _bench_time.process_time()]))
"""
REPORT_CELL = "print(_bench_json.dumps(_bench_cells[:-1]))"


def run_notebook(assignment: str, folder: Path, env: dict) -> dict:
    """Run the solved notebook of ``assignment`` in ``folder``; return its total and per-cell times
    (wall-clock and CPU seconds, from the first cell of the notebook to its last)."""
    import nbformat
    from nbclient import NotebookClient

    notebook = build.solved_submission(assignment)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    notebook.cells = [nbformat.v4.new_code_cell(TIMER_CELL), *notebook.cells, nbformat.v4.new_code_cell(REPORT_CELL)]
    # The kernel's environment goes to execute() (nbclient hands it to the kernel manager; the
    # client itself has no ``env`` setting and would silently run the kernel in this process's).
    # No cell time limit: on a shared machine a wall-clock limit only loses a measurement (what is
    # recorded is CPU time, which the load does not change).
    NotebookClient(notebook, timeout=None, kernel_name="python3", resources={"metadata": {"path": str(folder)}},
                   allow_errors=True).execute(env=env)
    # One entry per cell of the notebook: the callbacks TIMER_CELL registers start with the cell
    # after it (its own post_run finds the list empty), and REPORT_CELL leaves out its own entry.
    timings = json.loads(notebook.cells[-1].outputs[-1]["text"].strip().splitlines()[-1])
    ids = [cell.get("id") or f"cell {index}" for index, cell in enumerate(code_cells)]
    wall = {name: end - start for name, (start, cpu_start, end, cpu_end) in zip(ids, timings)}
    cpu = {name: cpu_end - cpu_start for name, (start, cpu_start, end, cpu_end) in zip(ids, timings)}
    errors = [cell.get("id") for cell in code_cells
              if any(output.get("output_type") == "error" for output in cell.get("outputs", []))]
    return {"assignment": assignment, "seconds": sum(wall.values()), "cpu_seconds": sum(cpu.values()),
            "slowest": sorted(wall.items(), key=lambda c: -c[1])[:3], "cells": wall, "cpu_cells": cpu,
            "errors": errors}


def record(results: list, standin: bool, load_before: tuple, path=stated_times.TIMES_FILE) -> None:
    """Write (or update) the file the notebooks' stated times come from (see the module docstring)."""
    previous = stated_times.measured(path) if Path(path).is_file() else {"notebooks": {}}
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "load_before": [round(x, 2) for x in load_before],
               "load_after": [round(x, 2) for x in os.getloadavg()],
               "assets": "stand-in" if standin else "real", "date": datetime.now().date().isoformat()}
    for result in results:  # what the notebooks state: CPU seconds (see TIMER_CELL), not the load's wall clock
        previous["notebooks"][result["assignment"]] = {
            "seconds": round(result["cpu_seconds"], 1),
            "cells": {k: round(v, 2) for k, v in result["cpu_cells"].items()},
            "wall_seconds": round(result["seconds"], 1), "measured": machine}
    Path(path).write_text(json.dumps(previous, indent=1, sort_keys=True) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assignment", action="append", help="only these (default: all)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--record", action="store_true",
                        help=f"write the times the notebooks state to {stated_times.TIMES_FILE.name}")
    args = parser.parse_args(argv)
    assignments = args.assignment or build.assignment_ids()
    env = build.grading_env()
    env.pop("NBGRADER_EXECUTION", None)  # a student's run, not the autograder's
    load_before = os.getloadavg()
    standin = assets.standin_requested() or not models.checkpoint_path(standin=False).is_file()
    with tempfile.TemporaryDirectory(prefix="xai-student-bench-") as tmp:
        tmp = Path(tmp)
        if standin:
            # As many images as CIFAR-10's test split, so that every cell does the work it does on
            # the real data (the default stand-in has 500: Part 1 of 01 would be 20 times faster).
            fetch.make_standin(tmp / "data" / "standin", n_images=CIFAR10_TEST_IMAGES)
            env.update({assets.DATA_DIR_ENV: str(tmp / "data"), "XAI_KIT_STANDIN": "1"})
            print(f"no downloaded model and data: the stand-in with {CIFAR10_TEST_IMAGES} images (same work, meaningless figures)")
        results = []
        for assignment in assignments:
            folder = tmp / assignment
            folder.mkdir()
            result = run_notebook(assignment, folder, env)
            results.append(result)
            if args.record:  # notebook by notebook, so an interrupted run keeps what it measured
                record([result], standin, load_before)
            slowest = ", ".join(f"{name} {seconds:.1f} s (CPU {result['cpu_cells'][name]:.1f} s)"
                                for name, seconds in result["slowest"])
            verdict = "ok" if result["seconds"] < GOAL_SECONDS else f"OVER the {GOAL_SECONDS} s goal"
            print(f"{assignment}: {result['seconds']:.1f} s wall, {result['cpu_seconds']:.1f} s CPU "
                  f"({verdict}); slowest: {slowest}; "
                  f"load {os.getloadavg()[0]:.1f}"
                  + (f"; cells with errors: {result['errors']}" if result["errors"] else ""), flush=True)
    print(f"load average (1, 5, 15 min) before: {load_before}, after: {os.getloadavg()} ({os.cpu_count()} cores)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if all(result["seconds"] < GOAL_SECONDS and not result["errors"] for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
