"""Cost per notebook of ``grade --course``, and what a class of 1,000 notebooks would take.

    .venv/bin/python benchmarks/bench_course_grading.py [--jobs 1 2] [--shards 10]

Makes a course folder with every assignment in a temporary folder (``course init``), hands in
one student's solved notebooks (every check runs: the slowest case), and times ``python -m
autograder grade --course C --jobs J --force --quiet`` for each J, run as an instructor runs it:
from the temporary folder, with no ``PYTHONPATH``. Prints the wall time, the seconds per
notebook and, from the fastest J, the estimate for 200 students x 5 notebooks on this machine
and on ``--shards`` machines like it (``grade --course --shard K/N``). Each run also pays for
its start (the course's template, the workers' kernels), which a class of 1,000 pays once per
worker: the per-notebook figure slightly overestimates a large class.

Uses the downloaded model and data if present, the stand-in otherwise (grading does the same
work on both). Say the machine's load (``uptime``) beside the numbers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

CLASS_NOTEBOOKS = 200 * 5
STUDENT = "solved"


def _load() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def _hand_in_solved(course, assignments) -> None:
    from autograder.authoring import build

    for assignment in assignments:
        folder = course.path("submitted", STUDENT, assignment)
        folder.mkdir(parents=True)
        nbformat.write(build.solved_submission(assignment), folder / f"{assignment}.ipynb")


def _full_marks(course, assignments) -> int:
    """How many of the student's notebooks lost no autograded point."""
    with course.gradebook() as gradebook:
        return sum(1 for assignment in assignments
                   if (notebook := gradebook.find_submission_notebook(assignment, assignment, STUDENT))
                   and notebook.code_score == notebook.max_code_score)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--shards", type=int, default=10)
    args = parser.parse_args()

    from autograder.authoring import build
    from autograder.course.init import init_course
    from student_src import assets, fetch

    assignments = build.assignment_ids()
    with tempfile.TemporaryDirectory(prefix="bench-course-") as tmp:
        tmp = Path(tmp)
        if not (assets.data_dir() / "models" / "resnet18_cifar10" / "pytorch_model.bin").is_file():
            os.environ[assets.DATA_DIR_ENV] = str(tmp / "assets")
            os.environ[assets.STANDIN_ENV] = "1"
            fetch.make_standin(tmp / "assets" / "standin")
            print("(stand-in model and images: the hub files are not downloaded)")
        course = init_course(tmp / "course", assignments=assignments)
        _hand_in_solved(course, assignments)
        env = {name: value for name, value in os.environ.items() if not name.startswith("PYTHON")}
        print(f"machine: {os.cpu_count()} cores; one student, {len(assignments)} solved notebooks", flush=True)
        per_notebook = {}
        for jobs in args.jobs:
            before = _load()
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "autograder", "grade", "--course", str(course.root),
                            "--jobs", str(jobs), "--force", "--quiet"], cwd=tmp, env=env, check=True)
            seconds = time.perf_counter() - started
            per_notebook[jobs] = seconds / len(assignments)
            print(f"--jobs {jobs}: {seconds:6.1f} s, {per_notebook[jobs]:5.1f} s per notebook "
                  f"({_full_marks(course, assignments)}/{len(assignments)} at full marks; "
                  f"load before {before}, after {_load()})", flush=True)
    jobs, best = min(per_notebook.items(), key=lambda item: item[1])
    hours = best * CLASS_NOTEBOOKS / 3600
    print(f"{CLASS_NOTEBOOKS} notebooks at {best:.1f} s each (--jobs {jobs}): about {hours:.1f} hours on this "
          f"machine, {hours / args.shards:.1f} with {args.shards} shards on {args.shards} machines like it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
