"""Grading speed: one student's four notebooks, and --jobs 2 against --jobs 1 on a class of 8.

    .venv/bin/python benchmarks/bench_grading.py [--students 8]

Generates a class of solved submissions (every check runs: the slowest case), grades it with
``--jobs 1`` and then ``--jobs 2`` in the same run, and prints the wall times, the time per
student and the speed-up. Uses the downloaded model and data if present, the stand-in otherwise
(grading does the same work on both). Goals (issue 6): under 60 s per student on 2 cores,
speed-up of at least 1.7.
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

from autograder import build  # noqa: E402
from autograder.grade import grade  # noqa: E402
from student_src import assets, fetch  # noqa: E402


def make_class(folder: Path, students: int, assignments) -> Path:
    for number in range(students):
        student = folder / f"student{number:02d}"
        student.mkdir(parents=True)
        for assignment in assignments:
            nbformat.write(build.solved_submission(assignment), student / f"{assignment}.ipynb")
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=8)
    args = parser.parse_args()
    assignments = build.assignment_ids()
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        tmp = Path(tmp)
        if not (assets.data_dir() / "models" / "resnet18_cifar10" / "pytorch_model.bin").is_file():
            os.environ[assets.DATA_DIR_ENV] = str(tmp / "assets")
            os.environ[assets.STANDIN_ENV] = "1"
            fetch.make_standin(tmp / "assets" / "standin")
            print("(stand-in model and images: the hub files are not downloaded)")
        cohort = make_class(tmp / "class", args.students, assignments)
        times = {}
        for jobs in (1, 2):
            started = time.perf_counter()
            rows = grade(cohort, tmp / f"out{jobs}", jobs=jobs, progress=False)
            times[jobs] = time.perf_counter() - started
            full = sum(1 for r in rows if r.item == "autograded_total" and r.score == r.max_score)
            print(f"--jobs {jobs}: {times[jobs]:7.1f} s for {args.students} students x {len(assignments)} notebooks "
                  f"({full} notebooks at full marks)")
    per_student = times[1] / args.students
    print(f"per student (4 notebooks, --jobs 1): {per_student:.1f} s   goal < 60 s")
    print(f"speed-up --jobs 2 / --jobs 1: {times[1] / times[2]:.2f}x   goal >= 1.7x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
