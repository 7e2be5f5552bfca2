"""The term in miniature, offline, for ``make demo``: a course folder with two demo students,
their submissions as a Canvas bulk download, then collect, grade, one manual grade, feedback and
export, each with the command an instructor would type.

The students: ``ada`` (Ada Lovelace) hands in the reference solutions, her first ``01_hooks``
upload blank and a re-upload (Canvas names it ``01_hooks-1.ipynb``) solved; ``blaise`` (Blaise
Pascal) hands in the untouched release. A file of somebody not in the roster shows how an
unmatched upload is listed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import nbformat

from autograder.authoring import build
from autograder.course.autograde import grade_course
from autograder.course.collect import collect
from autograder.course.export import export
from autograder.course.feedback import generate
from autograder.course.init import init_course

ROSTER = ("id,first_name,last_name,email,lms_user_id\n"
          "ada,Ada,Lovelace,ada@example.edu,1001\n"
          "blaise,Blaise,Pascal,blaise@example.edu,1002\n")
MANUAL_GRADE = ("ada", "01_hooks", "q_early_late", 3.0,
                "Clear: edges and colours early, class evidence late, with your own figures.")


def fake_canvas_download(folder: Path) -> Path:
    """What Canvas's "Download Submissions" gives, unzipped: ``lastfirst_userid_submissionid_name``."""
    folder.mkdir(parents=True)
    for number, assignment in enumerate(build.assignment_ids()):
        release = build.RELEASE_DIR / f"{assignment}.ipynb"
        solved = folder / f"lovelaceada_1001_{5000 + number}_{assignment}.ipynb"
        if assignment == "01_hooks":  # a blank first upload, then the re-upload Canvas names -1
            shutil.copyfile(release, solved)
            solved = folder / f"lovelaceada_1001_{5100 + number}_{assignment}-1.ipynb"
        nbformat.write(build.solved_submission(assignment), solved)
        shutil.copyfile(release, folder / f"pascalblaise_1002_{6000 + number}_{assignment}.ipynb")
    shutil.copyfile(build.RELEASE_DIR / "01_hooks.ipynb", folder / "someoneelse_9999_7000_01_hooks.ipynb")
    return folder


def manual_grade(course, student: str, assignment: str, cell: str, score: float, comment: str) -> None:
    """What formgrader does when a grader scores a cell and writes a comment (its REST API's PUT
    /formgrader/api/grade/<id> and /comment/<id> set these fields)."""
    with course.gradebook() as gradebook:
        grade = gradebook.find_grade(cell, assignment, assignment, student)
        grade.manual_score = score
        grade.needs_manual_grade = False
        gradebook.find_comment(cell, assignment, assignment, student).manual_comment = comment
        gradebook.db.commit()


def run_term(out: Path, jobs: int = 1) -> Path:
    """The whole cycle in ``out``; returns the course folder."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "roster.csv").write_text(ROSTER)
    course_path = out / "course"
    step = "python -m autograder"
    print(f"\n$ {step} course init {course_path} --course-id demo --roster {out / 'roster.csv'}")
    course = init_course(course_path, course_id="demo", roster=out / "roster.csv")
    download = fake_canvas_download(out / "canvas_download")
    print(f"\n$ {step} collect --course {course_path} {download}")
    print(collect(course, download).text())
    print(f"\n$ {step} grade --course {course_path} --jobs {jobs}")
    print(grade_course(course, jobs=jobs).text())
    student, assignment, cell, score, comment = MANUAL_GRADE
    print(f"\n(formgrader) {student} {assignment} {cell}: {score:g} points, comment {comment!r}")
    manual_grade(course, student, assignment, cell, score, comment)
    print(f"\n$ {step} feedback --course {course_path} --zip")
    report = generate(course, zips=True)
    print(f"{len(report['written'])} feedback pages, {len(report['zips'])} zips in {course_path / 'exports' / 'feedback'}")
    for fmt in ("canvas", "long"):
        print(f"\n$ {step} export --course {course_path} --format {fmt}")
        path, incomplete = export(course, fmt)
        print(f"{path}" + (f" ({len(incomplete)} submissions with manual cells not graded yet)" if incomplete else ""))
    print(path.with_name("canvas.csv").read_text())
    print(f"Grade the written answers in formgrader:\n    cd {course_path} && {Path(sys.executable).parent}/jupyter lab\n"
          "    then open http://localhost:8888/formgrader (the course folder's jupyter_server_config.json enables it);\n"
          f"    the grading guide (model answers, rubrics) is in {course_path / 'grading_guide'}.\n"
          f"Regrade after a change: {step} grade --course {course_path} --student ada --force")
    return course_path
