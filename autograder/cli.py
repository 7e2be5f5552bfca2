"""Command line of the instructor's side: ``python -m autograder --help``."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from autograder import build


def cmd_release(args) -> int:
    problems = build.release(check=args.check, assignments=args.assignment or None)
    if args.check:
        for problem in problems:
            print(problem, file=sys.stderr)
        print("release is up to date" if not problems else f"{len(problems)} stale file(s)")
        return 1 if problems else 0
    print(f"built {', '.join(args.assignment or build.assignment_ids())} into notebooks/ and solutions/notebooks/")
    return 0


def cmd_grade(args) -> int:
    from autograder.grade import grade, summary_table

    rows = grade(Path(args.directory), Path(args.out), jobs=args.jobs, progress=not args.quiet)
    print(summary_table(rows))
    print(f"\ngrades: {Path(args.out) / 'grades.csv'}\nfeedback: {Path(args.out) / 'feedback'}/<student>/")
    return 0


def cmd_demo(args) -> int:
    from autograder.demo import run_demo

    return run_demo(Path(args.out), jobs=args.jobs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    release = commands.add_parser("release", help="build notebooks/ and solutions/notebooks/ from the sources")
    release.add_argument("--check", action="store_true", help="only check that the committed notebooks are up to date")
    release.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    release.set_defaults(run=cmd_release)

    grade = commands.add_parser("grade", help="autograde DIR/<student>/<assignment>.ipynb (or zips)")
    grade.add_argument("directory", help="submissions folder, or a .zip of one")
    grade.add_argument("--out", default="graded", help="where grades.csv and feedback/ go (default: graded/)")
    grade.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel workers (default: cores)")
    grade.add_argument("--quiet", action="store_true", help="no progress bar")
    grade.set_defaults(run=cmd_grade)

    demo = commands.add_parser("demo", help="release, then grade two demo students (reference, blank) offline")
    demo.add_argument("--out", default="graded/demo", help="output folder (default: graded/demo)")
    demo.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    demo.set_defaults(run=cmd_demo)

    args = parser.parse_args(argv)
    return args.run(args)
