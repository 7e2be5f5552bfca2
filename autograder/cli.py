"""Command line of the instructor's side: ``python -m autograder --help``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from autograder.engine.limits import CELL_WALL_FACTOR, NOTEBOOK_WALL_FACTOR

#: The kit's checkout (cheap: the command line imports nothing heavy before it knows the command).
REPO_ROOT = Path(__file__).resolve().parents[1]


def cmd_release(args) -> int:
    from autograder.authoring import build

    problems = build.release(check=args.check, assignments=args.assignment or None)
    if args.check:
        for problem in problems:
            print(problem, file=sys.stderr)
        print("release is up to date" if not problems else f"{len(problems)} stale file(s)")
        return 1 if problems else 0
    print(f"built {', '.join(args.assignment or build.assignment_ids())} into notebooks/ and solutions/notebooks/")
    return 0


def _grading_problem(args) -> str | None:
    """Why grading cannot start (no sandbox, no model and data), or None."""
    from autograder.engine import sandbox

    problem = sandbox.check_choice(args.sandbox)
    if problem:
        return problem
    from autograder.course.demo import real_assets_present
    from student_src import assets

    if args.standin:
        os.environ[assets.STANDIN_ENV] = "1"
    if not real_assets_present() and not assets.standin_requested():
        # Every notebook would fail in its set-up cell: say so once instead of grading everyone 0.
        what = f"--course {args.course}" if args.course else args.directory
        return (f"The hub model and CIFAR-10 are not downloaded ({assets.data_dir()}). Fetch them with:\n"
                f"    {assets.FETCH_COMMAND}\nor grade on the untrained stand-in (scores are exact, figures are not):\n"
                f"    python -m autograder grade {what} --standin")
    return None


def _grading_limits(args):
    """The notebooks' :class:`~autograder.engine.grade.Limits`, or None (the reason printed) when
    grading cannot start."""
    problem = _grading_problem(args)
    if problem:
        print(problem, file=sys.stderr)
        return None
    from autograder.engine.limits import Limits

    return Limits(cell_seconds=args.cell_timeout, notebook_seconds=args.notebook_timeout, memory_mb=args.memory_mb)


def _jobs(args) -> int:
    """``--jobs``, or by default as many workers as the cores and the memory hold (``capacity``)."""
    from autograder.engine.capacity import default_jobs

    return args.jobs if args.jobs is not None else default_jobs(args.memory_mb)


def cmd_grade_course(args) -> int:
    """``grade --course``: plan first (cheap), start workers only when something is new or changed."""
    from autograder.course.autograde import grade_course, plan
    from autograder.course.folder import Course
    from autograder.course.shards import Shard

    course = Course.open(args.course)
    shard = Shard.parse(args.shard) if args.shard else Shard()
    todo, skipped = plan(course, args.assignment, args.student, args.force, shard)
    if not todo:
        print(f"nothing to grade: {skipped} notebook(s) unchanged since they were graded (--force grades them again)")
        return 0
    limits = _grading_limits(args)
    if limits is None:
        return 1
    run = grade_course(course, args.assignment, args.student, jobs=_jobs(args), force=args.force, limits=limits,
                       prewarmed_kernels=not args.plain_kernels, sandbox=args.sandbox, progress=not args.quiet,
                       shard=shard)
    print(run.text())
    print(f"\nmanual grading: cd {course.root} && jupyter lab, then open /formgrader; "
          f"guide: {course.root / 'grading_guide'}")
    return 1 if run.failed and not run.graded else 0


def cmd_grade(args) -> int:
    if args.course:
        if args.directory:
            print("error: give either DIR (a one-off run into --out) or --course, not both", file=sys.stderr)
            return 2
        return _course_errors(cmd_grade_course)(args)
    if not args.directory:
        print("error: give the submissions folder DIR, or --course PATH", file=sys.stderr)
        return 2
    if args.student or args.force or args.shard:
        print("error: --student, --shard and --force go with --course (a one-off run grades all of DIR)",
              file=sys.stderr)
        return 2
    limits = _grading_limits(args)
    if limits is None:
        return 1
    from autograder.engine.grade import grade, summary_table

    rows = grade(Path(args.directory), Path(args.out), jobs=_jobs(args), progress=not args.quiet, limits=limits,
                 prewarmed_kernels=not args.plain_kernels, sandbox=args.sandbox, assignments=args.assignment)
    print(summary_table(rows))
    print(f"\ngrades: {Path(args.out) / 'grades.csv'}\nfeedback: {Path(args.out) / 'feedback'}/<student>/")
    return 0


def cmd_demo(args) -> int:
    from autograder.course.demo import run_demo

    return run_demo(Path(args.out), jobs=args.jobs)


def cmd_gradescope(args) -> int:
    from autograder.course.gradescope import build_zip

    path = build_zip(Path(args.out), assignments=args.assignment or None, with_data=args.with_data)
    print(f"Gradescope autograder zip: {path} ({path.stat().st_size / 2**20:.1f} MB)")
    return 0


def cmd_gradescope_run(args) -> int:
    from autograder.course.gradescope import run

    results = run(Path(args.root), assignments=args.assignments or None)
    print(results["output"])
    return 0


def cmd_figures(args) -> int:
    from autograder.authoring.figures import main as figures_main

    return figures_main(Path(args.out), assignments=args.assignment or None, standin=args.standin)


def cmd_validate(args) -> int:
    from autograder.authoring.validate import main as validate_main

    return validate_main(args.assignment or None, args.jobs)


def cmd_publish(args) -> int:
    from autograder.authoring.publish import main as publish_main

    return publish_main(args.out, args.repository, args.ref, args.assignment or None)


def _course_errors(command):
    """Run a course command; a :class:`CourseError` becomes its message on stderr and exit code 1."""
    def run(args) -> int:
        from autograder.course.folder import CourseError

        try:
            return command(args)
        except CourseError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    return run


def _due_dates(items) -> dict:
    from autograder.course.folder import CourseError

    dates = {}
    for item in items or []:
        assignment, equals, date = item.partition("=")
        if not equals:
            raise CourseError(f"--due takes ASSIGNMENT=DATE, e.g. 01_hooks=2027-02-01T23:59, not {item!r}")
        dates[assignment] = date
    return dates


def cmd_course_init(args) -> int:
    from autograder.course.init import DEFAULT_LOCATION, init_course

    path = Path(args.path) if args.path else DEFAULT_LOCATION.expanduser() / args.course_id
    course = init_course(path, course_id=args.course_id, assignments=args.assignment, due_dates=_due_dates(args.due),
                         timezone=args.timezone, exchange=args.exchange, late_penalty=args.late_penalty,
                         roster=Path(args.roster) if args.roster else None, db_url=args.db_url)
    print(f"course {course.course_id} in {course.root}: {', '.join(course.assignments)}\n"
          f"next: python -m autograder course roster {course.root} students.csv, then\n"
          f"      python -m autograder collect --course {course.root} DOWNLOAD")
    return 0


def cmd_course_roster(args) -> int:
    from autograder.course.folder import Course
    from autograder.course.roster import import_roster

    students = import_roster(Course.open(args.path), Path(args.csv))
    print(f"{len(students)} students in the gradebook of {args.path}")
    return 0


def cmd_collect(args) -> int:
    from autograder.course.collect import collect
    from autograder.course.folder import Course

    report = collect(Course.open(args.course), Path(args.source), assignment=args.assignment)
    print(report.text())
    return 0


def cmd_feedback(args) -> int:
    from autograder.course.feedback import generate
    from autograder.course.folder import Course

    course = Course.open(args.course)
    report = generate(course, args.assignment, args.student, release=args.release, zips=args.zip)
    print(f"feedback: {len(report['written'])} page(s) in {course.root / 'feedback'}/<student>/<assignment>/")
    if report["released"]:
        print(f"released to the exchange ({len(report['released'])}): students run `nbgrader fetch_feedback`")
    if report["not_released"]:
        print(f"not released ({len(report['not_released'])}: collected from outside nbgrader's exchange, "
              "students cannot fetch them; use --zip): " + ", ".join(f"{s} {a}" for s, a in report["not_released"]))
    if report["zips"]:
        print(f"one zip per student ({len(report['zips'])}) in {report['zips'][0].parent}")
    for (student, assignment), points in sorted(report["not_graded_yet"].items()):
        print(f"  {student} {assignment}: {points:g} point(s) not graded yet (the page says so)")
    return 0


def cmd_export(args) -> int:
    from autograder.course.export import export
    from autograder.course.folder import Course

    path, incomplete = export(Course.open(args.course), args.format, Path(args.out) if args.out else None)
    print(f"{args.format} export: {path}")
    if incomplete:
        print(f"{len(incomplete)} submission(s) still have manual cells not graded yet (counted as 0 so far): "
              + ", ".join(f"{s} {a}" for s, a in incomplete), file=sys.stderr)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    release = commands.add_parser("release", help="build notebooks/ and solutions/notebooks/ from the sources")
    release.add_argument("--check", action="store_true", help="only check that the committed notebooks are up to date")
    release.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    release.set_defaults(run=cmd_release)

    grade = commands.add_parser("grade", help="autograde a course (--course) or DIR/<student>/<assignment>.ipynb")
    grade.add_argument("directory", nargs="?", help="one-off: submissions folder, or a .zip of one (results in --out)")
    grade.add_argument("--course", help="grade the course folder's new or changed submissions into its gradebook")
    grade.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    grade.add_argument("--student", action="append", help="with --course: only this student (repeatable)")
    grade.add_argument("--force", action="store_true", help="with --course: grade again even if unchanged")
    grade.add_argument("--shard", metavar="K/N", help="with --course: only the students of shard K of N (0 <= K < "
                       "N, by a hash of the student id: N runs on N machines grade everyone once, e.g. "
                       "--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)")
    grade.add_argument("--out", default="graded", help="where grades.csv and feedback/ go (default: graded/)")
    grade.add_argument("--jobs", type=int, help="parallel workers (default: the cores, no more than the available "
                       "memory holds at --memory-mb each; more gets a warning)")
    grade.add_argument("--quiet", action="store_true", help="no progress bar")
    grade.add_argument("--standin", action="store_true", help="grade on the untrained stand-in model (offline)")
    grade.add_argument("--cell-timeout", type=int, default=120, metavar="SECONDS",
                       help="CPU seconds per cell, the kernel's (then interrupted, 0 points; a wall-clock "
                            f"backstop of {CELL_WALL_FACTOR}x that catches cells that wait)")
    grade.add_argument("--notebook-timeout", type=int, default=1200, metavar="SECONDS",
                       help="CPU seconds per notebook, nbgrader and kernels (then killed; catches loops that ignore "
                            f"Ctrl-C; a wall-clock backstop of {NOTEBOOK_WALL_FACTOR}x that)")
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
    figures.add_argument("--out", default=str(REPO_ROOT / "solutions" / "figures"))
    figures.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    figures.add_argument("--standin", action="store_true", help="use the untrained stand-in (figures are marked)")
    figures.set_defaults(run=cmd_figures)

    course = commands.add_parser("course", help="the term's nbgrader course folder (init, roster)")
    course_commands = course.add_subparsers(dest="course_command", required=True)
    init = course_commands.add_parser("init", help="create an nbgrader course folder from the kit's assignments")
    init.add_argument("path", nargs="?", help="new or empty folder, outside the kit's repository "
                      "(default: ~/xai-kit-courses/COURSE_ID)")
    init.add_argument("--course-id", default="cnn-explainability")
    init.add_argument("--assignment", action="append", help="only this assignment (repeatable; default: all)")
    init.add_argument("--due", action="append", metavar="ASSIGNMENT=DATE",
                      help="due date in the course's timezone, e.g. 01_hooks=2027-02-01T23:59 (repeatable)")
    init.add_argument("--timezone", default="UTC", help="IANA timezone of the due dates (default UTC)")
    init.add_argument("--exchange", help="nbgrader exchange root (default: COURSE/exchange)")
    init.add_argument("--late-penalty", choices=("none", "zero"), default="none",
                      help="late submissions: none (recorded only, nbgrader's default) or zero")
    init.add_argument("--roster", help="nbgrader student CSV (id,first_name,last_name,email,lms_user_id)")
    init.add_argument("--db-url", help="gradebook on a database server, for shards on several machines: an "
                      "existing, empty database, e.g. postgresql://grader@dbhost/course (default: SQLite in the "
                      "folder; XAI_KIT_DB_URL overrides either at run time)")
    init.set_defaults(run=_course_errors(cmd_course_init))
    roster = course_commands.add_parser("roster", help="import nbgrader's student CSV into the gradebook")
    roster.add_argument("path", help="the course folder")
    roster.add_argument("csv", help="id,first_name,last_name,email,lms_user_id")
    roster.set_defaults(run=_course_errors(cmd_course_roster))

    collect = commands.add_parser("collect", help="submissions (exchange, folders, zips, Canvas, Moodle, Colab) "
                                  "into COURSE/submitted/")
    collect.add_argument("source", help="a folder or .zip: nbgrader exchange, DIR/<student>/, Canvas or Moodle download")
    collect.add_argument("--course", required=True, help="the course folder (python -m autograder course init)")
    collect.add_argument("--assignment", help="only this assignment; a student's only notebook counts as it")
    collect.set_defaults(run=_course_errors(cmd_collect))

    feedback = commands.add_parser("feedback", help="feedback pages after manual grading (release or zip them)")
    feedback.add_argument("--course", required=True)
    feedback.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    feedback.add_argument("--student", action="append", help="only this student (repeatable)")
    feedback.add_argument("--release", action="store_true", help="nbgrader release_feedback into the exchange")
    feedback.add_argument("--zip", action="store_true", help="one zip per student in COURSE/exports/feedback/")
    feedback.set_defaults(run=_course_errors(cmd_feedback))

    export = commands.add_parser("export", help="grades for the LMS: long, wide, canvas or moodle CSV")
    export.add_argument("--course", required=True)
    export.add_argument("--format", choices=("long", "wide", "canvas", "moodle"), default="long")
    export.add_argument("--out", help="the CSV to write (default: COURSE/exports/FORMAT.csv)")
    export.set_defaults(run=_course_errors(cmd_export))

    args = parser.parse_args(argv)
    return args.run(args)
