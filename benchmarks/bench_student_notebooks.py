"""The students' side: each notebook run top to bottom as a student runs it, and its slowest cells.

    .venv/bin/python benchmarks/bench_student_notebooks.py [--assignment 02_gradcam ...] [--json OUT]

What a student who has solved everything hands in (``build.solved_submission``: the release with
the solution cells filled in, no hidden tests) runs in a plain ``python3`` kernel, not in grading
mode, on the downloaded model and data if present and on the stand-in otherwise (say which: the
real model is slower only where it changes what a cell does, e.g. ScoreCAM's batches). It prints,
per notebook, the wall time from the first cell to the last and the three slowest cells (their
ids and seconds). A free Colab CPU runtime has 2 cores, like the machine this kit is tested on:
the goal is every notebook under 3 minutes there. The times a notebook states for itself come
from this benchmark.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autograder.authoring import build  # noqa: E402
from student_src import assets, fetch, models  # noqa: E402

GOAL_SECONDS = 180


def _seconds(cell) -> float:
    """A cell's run time from nbclient's timing metadata (execute_input to execute_reply)."""
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not start or not end:
        return 0.0
    parse = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def run_notebook(assignment: str, folder: Path, env: dict) -> dict:
    """Run the solved notebook of ``assignment`` in ``folder``; return its total and per-cell times."""
    from nbclient import NotebookClient

    notebook = build.solved_submission(assignment)
    started = time.perf_counter()
    NotebookClient(notebook, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(folder)}},
                   record_timing=True, env=env).execute()
    total = time.perf_counter() - started
    cells = [(cell.get("id") or f"cell {index}", _seconds(cell)) for index, cell in enumerate(notebook.cells)
             if cell.cell_type == "code"]
    errors = [cell.get("id") for cell in notebook.cells if cell.cell_type == "code"
              and any(output.get("output_type") == "error" for output in cell.get("outputs", []))]
    return {"assignment": assignment, "seconds": total, "slowest": sorted(cells, key=lambda c: -c[1])[:3],
            "errors": errors}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assignment", action="append", help="only these (default: all)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    assignments = args.assignment or build.assignment_ids()
    env = build.grading_env()
    env.pop("NBGRADER_EXECUTION", None)  # a student's run, not the autograder's
    with tempfile.TemporaryDirectory(prefix="xai-student-bench-") as tmp:
        tmp = Path(tmp)
        if assets.standin_requested() or not models.checkpoint_path(standin=False).is_file():
            fetch.make_standin(tmp / "data" / "standin")
            env.update({assets.DATA_DIR_ENV: str(tmp / "data"), "XAI_KIT_STANDIN": "1"})
            print("no downloaded model and data: the stand-in (same work, meaningless figures)")
        results = []
        for assignment in assignments:
            folder = tmp / assignment
            folder.mkdir()
            result = run_notebook(assignment, folder, env)
            results.append(result)
            slowest = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result["slowest"])
            verdict = "ok" if result["seconds"] < GOAL_SECONDS else f"OVER the {GOAL_SECONDS} s goal"
            print(f"{assignment}: {result['seconds']:.1f} s ({verdict}); slowest: {slowest}"
                  + (f"; cells with errors: {result['errors']}" if result["errors"] else ""), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if all(result["seconds"] < GOAL_SECONDS and not result["errors"] for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
