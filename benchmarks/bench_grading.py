"""Grading speed: one student's four notebooks, and --jobs 2 against --jobs 1 on a class of 8.

    .venv/bin/python benchmarks/bench_grading.py [--students 8] [--skip-plain]

In one run, on generated solved submissions (every check runs: the slowest case):

1. one student alone, ``--jobs 1``, pre-warmed kernels (the default) and then plain kernels
   (``--plain-kernels``): wall time per student, and what the pre-warmed kernels save;
2. the class graded with ``--jobs 1`` and then ``--jobs 2``: wall times, seconds per student,
   and the speed-up.

Uses the downloaded model and data if present, the stand-in otherwise (grading does the same
work on both). Goals (issue 6): under 60 s per student on 2 cores, speed-up of at least 1.7.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autograder.authoring import build  # noqa: E402
from autograder.engine.grade import grade  # noqa: E402
from student_src import assets, fetch  # noqa: E402


def make_class(folder: Path, students: int, assignments) -> Path:
    for number in range(students):
        student = folder / f"student{number:02d}"
        student.mkdir(parents=True)
        for assignment in assignments:
            nbformat.write(build.solved_submission(assignment), student / f"{assignment}.ipynb")
    return folder


def _timed_grade(cohort: Path, out: Path, jobs: int, prewarmed: bool = True) -> tuple[float, int]:
    started = time.perf_counter()
    rows = grade(cohort, out, jobs=jobs, progress=False, prewarmed_kernels=prewarmed)
    seconds = time.perf_counter() - started
    full = sum(1 for r in rows if r.item == "autograded_total" and r.score == r.max_score)
    return seconds, full


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=8)
    parser.add_argument("--skip-plain", action="store_true", help="do not time plain kernels")
    args = parser.parse_args()
    assignments = build.assignment_ids()
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        tmp = Path(tmp)
        if not (assets.data_dir() / "models" / "resnet18_cifar10" / "pytorch_model.bin").is_file():
            os.environ[assets.DATA_DIR_ENV] = str(tmp / "assets")
            os.environ[assets.STANDIN_ENV] = "1"
            fetch.make_standin(tmp / "assets" / "standin")
            print("(stand-in model and images: the hub files are not downloaded)")
        print(f"machine: {os.cpu_count()} cores; {len(assignments)} notebooks per student", flush=True)
        one = make_class(tmp / "one", 1, assignments)
        seconds, full = _timed_grade(one, tmp / "out-one", jobs=1)
        print(f"one student, --jobs 1, pre-warmed kernels: {seconds:6.1f} s   goal < 60 s   "
              f"({full}/{len(assignments)} notebooks at full marks)", flush=True)
        if not args.skip_plain:
            plain, full = _timed_grade(one, tmp / "out-plain", jobs=1, prewarmed=False)
            print(f"one student, --jobs 1, plain kernels:      {plain:6.1f} s   "
                  f"(pre-warmed / plain: {seconds / plain:.2f})", flush=True)
        cohort = make_class(tmp / "class", args.students, assignments)
        times = {}
        for jobs in (1, 2):
            times[jobs], full = _timed_grade(cohort, tmp / f"out{jobs}", jobs=jobs)
            print(f"class of {args.students}, --jobs {jobs}: {times[jobs]:7.1f} s   "
                  f"{times[jobs] / args.students:5.1f} s per student   "
                  f"({full}/{args.students * len(assignments)} notebooks at full marks)", flush=True)
    print(f"speed-up --jobs 2 / --jobs 1: {times[1] / times[2]:.2f}x   goal >= 1.7x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
