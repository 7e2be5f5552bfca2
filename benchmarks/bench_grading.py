"""Grading speed, three ways side by side: plain ``nbgrader autograde``, the kit ``--jobs 1``, ``--jobs 2``.

    .venv/bin/python benchmarks/bench_grading.py [--students 8] [--ways plain kit1 kit2] [--shards 10]

One run makes a class of ``--students`` solved and as many blank students (the release handed in
unchanged), each with every assignment, in three identical course folders (``course init`` in a
temporary folder: as an instructor runs it, outside the checkout, with no ``PYTHONPATH``), and
grades one folder each way:

- ``plain``: nbgrader's own ``nbgrader autograde ASSIGNMENT --force``, one assignment after the
  other, from inside the course folder (the kit's ``nbgrader_config.py`` loads: the kit's
  preprocessors, plain ``python3`` kernels, the hidden lines in the notebook's own kernel);
- ``kit1`` / ``kit2``: ``python -m autograder grade --course C --jobs 1`` / ``--jobs 2``
  (sandboxed pre-warmed kernels, the hidden checks in check kernels and the trusted server).

It asserts that the three gradebooks hold the same score for every notebook, prints each way's
wall time and seconds per notebook, the ratios (issue 24's goals on 2 cores: ``kit1`` at most 0.5x
``plain``, ``kit2`` at most 0.25x), one solved student's five notebooks alone (goal: under 40 s),
and from the fastest way the estimate for a class of 200 students x 5 notebooks on this machine
and on ``--shards`` machines like it (``grade --course --shard K/N``).

Uses the downloaded model and data if present, the stand-in otherwise (grading does the same
work on both). The load (``os.getloadavg``) is printed beside every figure: compare figures of
one run only.
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
GOALS = {"kit1": 0.5, "kit2": 0.25}
ONE_STUDENT_GOAL_SECONDS = 40


def _load() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def _clean_environment() -> dict:
    """The environment an instructor's shell has: no PYTHONPATH (the kit comes from its install)."""
    return {name: value for name, value in os.environ.items() if not name.startswith("PYTHON")}


def make_course(root: Path, assignments, students: int):
    """A course folder at ``root`` with ``students`` solved and ``students`` blank submissions."""
    from autograder.authoring import build
    from autograder.course.init import init_course

    course = init_course(root, assignments=assignments)
    for number in range(students):
        for kind, notebook_of in (("solved", build.solved_submission),
                                  ("blank", lambda a: nbformat.read(build.RELEASE_DIR / f"{a}.ipynb", as_version=4))):
            for assignment in assignments:
                folder = course.path("submitted", f"{kind}{number:02d}", assignment)
                folder.mkdir(parents=True)
                nbformat.write(notebook_of(assignment), folder / f"{assignment}.ipynb")
    return course


def scores(course, assignments) -> dict:
    """``{(student, assignment): code score}`` from the course's gradebook."""
    table = {}
    with course.gradebook() as gradebook:
        for assignment in assignments:
            for submission in gradebook.assignment_submissions(assignment):
                for notebook in submission.notebooks:
                    table[(submission.student.id, assignment)] = round(notebook.code_score, 3)
    return table


def grade_plain(course, assignments) -> None:
    nbgrader = Path(sys.executable).with_name("nbgrader")
    for assignment in assignments:
        subprocess.run([str(nbgrader), "autograde", assignment, "--force"], cwd=course.root,
                       env=_clean_environment(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def grade_kit(course, jobs: int, cwd: Path, student: str | None = None) -> None:
    command = [sys.executable, "-m", "autograder", "grade", "--course", str(course.root), "--jobs", str(jobs),
               "--force", "--quiet"]
    if student:
        command += ["--student", student]
    subprocess.run(command, cwd=cwd, env=_clean_environment(), check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=8, help="solved students, and as many blank ones")
    parser.add_argument("--ways", nargs="+", default=["plain", "kit1", "kit2"], choices=["plain", "kit1", "kit2"])
    parser.add_argument("--shards", type=int, default=10)
    args = parser.parse_args()

    from autograder.authoring import build
    from student_src import assets, fetch

    assignments = build.assignment_ids()
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        tmp = Path(tmp)
        if not (assets.data_dir() / "models" / "resnet18_cifar10" / "pytorch_model.bin").is_file():
            os.environ[assets.DATA_DIR_ENV] = str(tmp / "assets")
            os.environ[assets.STANDIN_ENV] = "1"
            fetch.make_standin(tmp / "assets" / "standin")
            print("(stand-in model and images: the hub files are not downloaded)")
        # One course folder per way (a copy would share the first one's gradebook: its path is in the config).
        courses = {way: make_course(tmp / f"course-{way}", assignments, args.students) for way in args.ways}
        courses["one"] = make_course(tmp / "course-one", assignments, 1)  # solved00 alone
        notebooks = 2 * args.students * len(assignments)
        print(f"machine: {os.cpu_count()} cores; {args.students} solved + {args.students} blank students x "
              f"{len(assignments)} assignments = {notebooks} notebooks", flush=True)
        seconds, graded = {}, {}
        for way in args.ways:
            before, started = _load(), time.perf_counter()
            if way == "plain":
                grade_plain(courses[way], assignments)
            else:
                grade_kit(courses[way], int(way[-1]), tmp)
            seconds[way] = time.perf_counter() - started
            graded[way] = scores(courses[way], assignments)
            print(f"{way:6s} {seconds[way]:7.1f} s  {seconds[way] / notebooks:5.1f} s per notebook  "
                  f"(load before {before}, after {_load()})", flush=True)
        reference = graded[args.ways[0]]
        for way, table in graded.items():
            assert table == reference and len(table) == notebooks, f"{way}: scores differ from {args.ways[0]}'s"
        print(f"identical scores in every way ({len(reference)} notebooks)")
        if "plain" in seconds:
            for way, goal in GOALS.items():
                if way in seconds:
                    ratio = seconds[way] / seconds["plain"]
                    print(f"{way} / plain = {ratio:.2f} (goal at most {goal}: {'met' if ratio <= goal else 'NOT met'})")
        before, started = _load(), time.perf_counter()
        grade_kit(courses["one"], 2, tmp, student="solved00")
        alone = time.perf_counter() - started
        print(f"one solved student's {len(assignments)} notebooks alone, --jobs 2: {alone:.1f} s (goal under "
              f"{ONE_STUDENT_GOAL_SECONDS} s; load before {before})")
    way = min(seconds, key=seconds.get)
    hours = seconds[way] / notebooks * CLASS_NOTEBOOKS / 3600
    print(f"{CLASS_NOTEBOOKS} notebooks (half solved, half blank) at {way}'s pace: about {hours:.1f} hours on this "
          f"machine, {hours / args.shards:.1f} with {args.shards} shards on {args.shards} machines like it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
