"""Command line of the instructor's side: ``python -m autograder --help``."""

from __future__ import annotations

import argparse
import os
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
    from autograder import sandbox

    problem = sandbox.check_choice(args.sandbox)  # before anything else: one clear message
    if problem:
        print(problem, file=sys.stderr)
        return 1
    from autograder.grade import Limits, grade, summary_table

    limits = Limits(cell_seconds=args.cell_timeout, notebook_seconds=args.notebook_timeout, memory_mb=args.memory_mb)
    from autograder.demo import real_assets_present
    from student_src import assets

    if args.standin:
        os.environ[assets.STANDIN_ENV] = "1"
    if not real_assets_present() and not assets.standin_requested():
        # Every notebook would fail in its set-up cell: say so once instead of grading everyone 0.
        print(f"The hub model and CIFAR-10 are not downloaded ({assets.data_dir()}). Fetch them with:\n"
              f"    {assets.FETCH_COMMAND}\nor grade on the untrained stand-in (scores are exact, figures are not):\n"
              f"    python -m autograder grade {args.directory} --standin", file=sys.stderr)
        return 1
    rows = grade(Path(args.directory), Path(args.out), jobs=args.jobs, progress=not args.quiet, limits=limits,
                 prewarmed_kernels=not args.plain_kernels, sandbox=args.sandbox)
    print(summary_table(rows))
    print(f"\ngrades: {Path(args.out) / 'grades.csv'}\nfeedback: {Path(args.out) / 'feedback'}/<student>/")
    return 0


def cmd_demo(args) -> int:
    from autograder.demo import run_demo

    return run_demo(Path(args.out), jobs=args.jobs)


def cmd_gradescope(args) -> int:
    from autograder.gradescope import build_zip

    path = build_zip(Path(args.out), assignments=args.assignment or None, with_data=args.with_data)
    print(f"Gradescope autograder zip: {path} ({path.stat().st_size / 2**20:.1f} MB)")
    return 0


def cmd_gradescope_run(args) -> int:
    from autograder.gradescope import run

    results = run(Path(args.root), assignments=args.assignments or None)
    print(results["output"])
    return 0


def cmd_figures(args) -> int:
    from autograder.figures import main as figures_main

    return figures_main(Path(args.out), assignments=args.assignment or None, standin=args.standin)


def cmd_validate(args) -> int:
    from autograder.validate import main as validate_main

    return validate_main(args.assignment or None, args.jobs)


def cmd_publish(args) -> int:
    from autograder.publish import main as publish_main

    return publish_main(args.out, args.repository, args.ref, args.assignment or None)


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
    grade.add_argument("--standin", action="store_true", help="grade on the untrained stand-in model (offline)")
    grade.add_argument("--cell-timeout", type=int, default=120, help="seconds per cell (then interrupted, 0 points)")
    grade.add_argument("--notebook-timeout", type=int, default=1200,
                       help="seconds per notebook (then killed; catches loops that ignore Ctrl-C)")
    grade.add_argument("--memory-mb", type=int, default=8192, help="address-space limit per notebook kernel")
    grade.add_argument("--plain-kernels", action="store_true",
                       help="start every kernel from scratch instead of forking a pre-warmed one (slower)")
    grade.add_argument("--sandbox", choices=("bwrap", "none"), default="bwrap",
                       help="bwrap (default): run every notebook in a bubblewrap sandbox (no network, no grader "
                            "files; needs the bubblewrap package); none: trust the submissions")
    grade.set_defaults(run=cmd_grade)

    demo = commands.add_parser("demo", help="release, then grade two demo students (reference, blank) offline")
    demo.add_argument("--out", default="graded/demo", help="output folder (default: graded/demo)")
    demo.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    demo.set_defaults(run=cmd_demo)

    gradescope = commands.add_parser("gradescope", help="build the Gradescope autograder zip")
    gradescope.add_argument("--out", default="graded/gradescope_autograder.zip")
    gradescope.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    gradescope.add_argument("--with-data", action="store_true",
                            help="pack the downloaded model and CIFAR-10 (default: stand-in made at setup)")
    gradescope.set_defaults(run=cmd_gradescope)

    gradescope_run = commands.add_parser("gradescope-run", help="(inside Gradescope) grade the submission")
    gradescope_run.add_argument("--root", default="/autograder")
    gradescope_run.add_argument("assignments", nargs="*")
    gradescope_run.set_defaults(run=cmd_gradescope_run)

    validate = commands.add_parser("validate", help="nbgrader validation: solutions pass, releases fail every test")
    validate.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    validate.add_argument("--jobs", type=int, default=2, help="notebooks validated side by side (default 2)")
    validate.set_defaults(run=cmd_validate)

    publish = commands.add_parser("publish", help="write the student repository (no solutions, no hidden checks)")
    publish.add_argument("out", help="folder to write (empty, or an earlier publication)")
    publish.add_argument("--repository", help="OWNER/NAME of the student repository on GitHub "
                         "(default: [tool.xai_kit] github_repository)")
    publish.add_argument("--ref", help="the tag students install, e.g. 2027-spring (default: [tool.xai_kit] ref)")
    publish.add_argument("--assignment", action="append", help="only this assignment (repeatable): "
                         "release assignments one at a time")
    publish.set_defaults(run=cmd_publish)

    figures = commands.add_parser("figures", help="execute the solution notebooks, write every figure as PNG")
    figures.add_argument("--out", default=str(build.REPO_ROOT / "solutions" / "figures"))
    figures.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    figures.add_argument("--standin", action="store_true", help="use the untrained stand-in (figures are marked)")
    figures.set_defaults(run=cmd_figures)

    args = parser.parse_args(argv)
    return args.run(args)
