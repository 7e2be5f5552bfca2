"""A term through the course folder, on the stand-in assets: init with a roster and a due date,
collect a Canvas download (with a re-upload) and an nbgrader exchange submission (late), grade
into the course, compare with plain ``nbgrader autograde``, grade a written answer through a real
formgrader's REST API, then feedback and export; a changed notebook of one student is regraded
alone. Two notebooks of the smallest assignment are graded once (module fixture ``term``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from autograder.authoring import build
from autograder.course.autograde import grade_course, load_state, plan
from autograder.course.collect import collect
from autograder.course.init import init_course
from tests import grading_harness as harness
from tests.conftest import standin_assets_in
from tests.formgrader_server import formgrader_on
from tests.kit_environment import installed_kit_env

ASSIGNMENT = "01_hooks"
ROSTER = ("id,first_name,last_name,email,lms_user_id\n"
          "jdoe,Jane,Doe,jane.doe@example.edu,12345\n"
          "rroe,Rick,Roe,rick@example.edu,222\n")
LATE_STAMP = "2027-02-02 10:00:00.000000 UTC"  # the due date is 2027-02-01 23:59 Berlin = 22:59 UTC
WRITTEN = "q_early_late"


def _grades(course, student: str) -> dict:
    with course.gradebook() as gradebook:
        notebook = gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, student)
        return {g.name: (g.auto_score, g.manual_score, g.needs_manual_grade) for g in notebook.grades}


@pytest.fixture(scope="module")
def term(tmp_path_factory):
    root = tmp_path_factory.mktemp("term")
    (root / "roster.csv").write_text(ROSTER)
    with standin_assets_in(root / "assets"):
        course = init_course(root / "course", course_id="xai-test", assignments=[ASSIGNMENT],
                             due_dates={ASSIGNMENT: "2027-02-01T23:59"}, timezone="Europe/Berlin",
                             roster=root / "roster.csv")
        canvas = root / "canvas"
        canvas.mkdir()
        shutil.copyfile(build.RELEASE_DIR / f"{ASSIGNMENT}.ipynb", canvas / "doejane_12345_678901_01_hooks.ipynb")
        nbformat.write(harness.mutated_submission(ASSIGNMENT), canvas / "doejane_12345_678902_01_hooks-1.ipynb")
        shutil.copyfile(build.RELEASE_DIR / f"{ASSIGNMENT}.ipynb", canvas / "nobody_99999_1_01_hooks.ipynb")
        canvas_report = collect(course, canvas, ASSIGNMENT)
        exchange = root / "exchange_collected" / "rroe" / ASSIGNMENT
        exchange.mkdir(parents=True)
        shutil.copyfile(build.RELEASE_DIR / f"{ASSIGNMENT}.ipynb", exchange / f"{ASSIGNMENT}.ipynb")
        (exchange / "timestamp.txt").write_text(LATE_STAMP + "\n")
        (exchange / "submission_secret.txt").write_text("5f0c2a9e1b7d4c3a8e6f\n")  # as nbgrader collect writes
        collect(course, root / "exchange_collected")
        started = time.perf_counter()
        first = grade_course(course, jobs=2, progress=False)
        first_seconds = time.perf_counter() - started
        yield SimpleNamespace(root=root, course=course, canvas_report=canvas_report, first=first,
                              first_seconds=first_seconds, assets=root / "assets")


def test_course_folder_is_an_nbgrader_course(term):
    course = term.course
    for folder in ("source", "release"):
        assert (course.path(folder, assignment=ASSIGNMENT) / f"{ASSIGNMENT}.ipynb").is_file()
    released = (course.path("release", assignment=ASSIGNMENT) / f"{ASSIGNMENT}.ipynb").read_text()
    assert "BEGIN SOLUTION" not in released and "HIDDEN TESTS" not in released
    config = (course.root / "nbgrader_config.py").read_text()
    assert "load_subconfig" in config and "'xai-test'" in config and "Europe/Berlin" in config
    with course.gradebook() as gradebook:
        assert str(gradebook.find_assignment(ASSIGNMENT).duedate) == "2027-02-01 22:59:00"
        assert {(s.id, s.lms_user_id, s.email) for s in gradebook.students} == {
            ("jdoe", "12345", "jane.doe@example.edu"), ("rroe", "222", "rick@example.edu")}
    assert "q_early_late" in (course.root / "grading_guide" / f"{ASSIGNMENT}.md").read_text()


def test_collect_takes_the_latest_canvas_upload_and_lists_the_unmatched(term):
    report = term.canvas_report
    assert [(s, a) for s, a, *_ in report.imported] == [("jdoe", ASSIGNMENT)]
    assert report.superseded == [("doejane_12345_678901_01_hooks.ipynb", "doejane_12345_678902_01_hooks-1.ipynb")]
    assert [origin for origin, _ in report.unmatched] == ["nobody_99999_1_01_hooks.ipynb"]


def test_grade_course_leaves_what_nbgrader_autograde_leaves(term):
    course = term.course
    assert sorted(term.first.graded) == [("jdoe", ASSIGNMENT), ("rroe", ASSIGNMENT)] and not term.first.failed
    for student in ("jdoe", "rroe"):
        assert (course.path("autograded", student, ASSIGNMENT) / f"{ASSIGNMENT}.ipynb").is_file()
    reference, blank = _grades(course, "jdoe"), _grades(course, "rroe")
    assert {name: g for name, g in reference.items() if not name.startswith("q_")} == {
        "test_record_activations_values": (3, None, False), "test_record_activations_cleanup": (3, None, False),
        "test_top_channels": (2, None, False)}
    assert all(reference[name] == (None, None, True) for name in reference if name.startswith("q_"))
    assert all(auto == 0 and not needs for auto, _, needs in blank.values())  # unanswered answers: 0, as nbgrader
    with course.gradebook() as gradebook:
        late = gradebook.find_submission(ASSIGNMENT, "rroe")
        assert str(late.timestamp) == "2027-02-02 10:00:00" and late.total_seconds_late == 11 * 3600 + 60
        assert gradebook.find_submission(ASSIGNMENT, "jdoe").total_seconds_late == 0


def test_nbgrader_autograde_gives_the_same_scores(term, tmp_path):
    """nbgrader's own command line on a copy of the course (its kit preprocessors, no sandbox)."""
    copy = Path(shutil.copytree(term.course.root, tmp_path / "course", symlinks=True))
    shutil.rmtree(copy / "autograded")
    result = subprocess.run(["nbgrader", "autograde", ASSIGNMENT, "--force"], cwd=copy, env=installed_kit_env(),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    from autograder.course.folder import Course

    plain = Course.open(copy)
    for student in ("jdoe", "rroe"):
        ours = {name: (auto, needs) for name, (auto, _, needs) in _grades(term.course, student).items()}
        theirs = {name: (auto, needs) for name, (auto, _, needs) in _grades(plain, student).items()}
        assert ours == theirs, student
    print(f"\nnbgrader autograde vs the kit's grader, per cell: {theirs} (rroe); jdoe 8/8 autograded in both")


def test_nothing_new_grades_nothing_in_under_ten_seconds(term):
    assert plan(term.course) == ([], 2)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "autograder", "grade", "--course", str(term.course.root)],
                            cwd=build.REPO_ROOT, capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert "nothing to grade: 2 notebook(s) unchanged" in result.stdout
    assert seconds < 10
    print(f"\nno-op grade --course: {seconds:.2f} s; first run (2 notebooks, 2 workers): {term.first_seconds:.1f} s; "
          f"gradebook merge per notebook: {', '.join(f'{s * 1000:.0f} ms' for s in term.first.merge_seconds)}")


@pytest.fixture()
def formgrader(term, tmp_path):
    """formgrader on the term's course folder (:func:`tests.formgrader_server.formgrader_on`)."""
    with formgrader_on(term.course.root, tmp_path) as server:
        yield server


def test_formgrader_manual_grade_reaches_feedback_and_export(term, formgrader):
    from autograder.course.export import export
    from autograder.course.feedback import generate

    api = lambda path: f"{formgrader.base}/formgrader/api/{path}"  # noqa: E731
    submissions = formgrader.session.get(api(f"submissions/{ASSIGNMENT}")).json()
    assert {s["student"]: s["autograded"] for s in submissions} == {"jdoe": True, "rroe": True}
    assert {s["student"]: s["needs_manual_grade"] for s in submissions} == {"jdoe": True, "rroe": False}
    notebooks = formgrader.session.get(api(f"submitted_notebooks/{ASSIGNMENT}/{ASSIGNMENT}")).json()
    jdoe = next(n for n in notebooks if n["student"] == "jdoe")
    grades = formgrader.session.get(api("grades"), params={"submission_id": jdoe["id"]}).json()
    grade = next(g for g in grades if g["name"] == WRITTEN)
    answer = formgrader.session.put(api(f"grade/{grade['id']}"), data=json.dumps({"manual_score": 2}))
    assert answer.status_code == 200
    assert (answer.json()["manual_score"], answer.json()["needs_manual_grade"]) == (2, False)
    comments = formgrader.session.get(api("comments"), params={"submission_id": jdoe["id"]}).json()
    comment = next(c for c in comments if c["name"] == WRITTEN)
    answer = formgrader.session.put(api(f"comment/{comment['id']}"),
                                    data=json.dumps({"manual_comment": "Good on layer1; say what layer4 encodes."}))
    assert answer.status_code == 200

    # An unchanged notebook is not graded again: the manual grade stays, nothing is flagged.
    assert grade_course(term.course).graded == []
    assert _grades(term.course, "jdoe")[WRITTEN] == (None, 2, False)

    report = generate(term.course, zips=True)
    page = (term.course.path("feedback", "jdoe", ASSIGNMENT) / f"{ASSIGNMENT}.html").read_text()
    assert "Good on layer1; say what layer4 encodes." in page
    assert "Score: 2.0 / 3.0" in page and "Score: not graded yet / 2.0" in page
    assert "Score: 10.0 / 15.0; 4.0 points not graded yet" in page
    blank_page = (term.course.path("feedback", "rroe", ASSIGNMENT) / f"{ASSIGNMENT}.html").read_text()
    for shown in (page, blank_page):
        assert "HIDDEN TESTS" not in shown and "hidden.run" not in shown and "Rubric" not in shown
    assert "Score: 0.0 / 3.0" in blank_page  # an answer left as released scores 0, as in nbgrader
    assert report["not_graded_yet"] == {("jdoe", ASSIGNMENT): 4}
    with zipfile.ZipFile(term.course.root / "exports" / "feedback" / "jdoe.zip") as archive:
        assert archive.namelist() == [f"{ASSIGNMENT}/{ASSIGNMENT}.html"]

    long_path, incomplete = export(term.course, "long")
    assert incomplete == [("jdoe", ASSIGNMENT)]
    rows = long_path.read_text().splitlines()
    assert rows[0] == "student,assignment,cell,score,max_score,status"
    assert f"jdoe,{ASSIGNMENT},{WRITTEN},2,3,manually graded" in rows
    assert f"jdoe,{ASSIGNMENT},q_layer4_size,0,2,not graded yet" in rows
    assert f"jdoe,{ASSIGNMENT},total,10,15,incomplete" in rows and f"rroe,{ASSIGNMENT},total,0,15,complete" in rows
    canvas = export(term.course, "canvas")[0].read_text().splitlines()
    assert canvas[:4] == ["Student,ID,SIS User ID,SIS Login ID,Section,01_hooks",
                          "    Points Possible,,,,,15", '"Doe, Jane",12345,jdoe,jane.doe@example.edu,,10',
                          '"Roe, Rick",222,rroe,rick@example.edu,,0']
    moodle = export(term.course, "moodle")[0].read_text().splitlines()
    assert moodle[:2] == ["Email address,ID number,First name,Last name,01_hooks", "jane.doe@example.edu,jdoe,Jane,Doe,10"]
    wide = export(term.course, "wide")[0].read_text().splitlines()
    assert wide[:3] == ["student,first_name,last_name,email,01_hooks", "jdoe,Jane,Doe,jane.doe@example.edu,10",
                        "rroe,Rick,Roe,rick@example.edu,0"]


def test_export_never_writes_into_the_kit(term):
    from autograder.course.export import export
    from autograder.course.folder import CourseError

    tracked = build.REPO_ROOT / "autograder" / "marks.csv"
    with pytest.raises(CourseError, match="grades never go there"):
        export(term.course, "long", tracked)
    assert not tracked.exists()
    for usual in ("grades.csv", "exports/long.csv", "courses/x/gradebook.db"):  # git-ignored in the kit
        assert subprocess.run(["git", "-C", str(build.REPO_ROOT), "check-ignore", "-q", usual]).returncode == 0


def test_a_changed_notebook_of_one_student_is_regraded_alone(term):
    """A re-upload (-2) changes jdoe's notebook: only it is graded; the manual grade survives and
    is flagged for review, as nbgrader does; rroe's row is not touched."""
    before = load_state(term.course)["rroe"]
    changed = harness.edit_cell(harness.mutated_submission(ASSIGNMENT), "q_layer4_size", "Stride-2 stages halve it.")
    canvas = term.root / "canvas2"
    canvas.mkdir()
    nbformat.write(changed, canvas / "doejane_12345_678903_01_hooks-2.ipynb")
    collect(term.course, canvas, ASSIGNMENT)
    with standin_assets_in(term.assets):
        started = time.perf_counter()
        run = grade_course(term.course, students=["jdoe"], progress=False)
        seconds = time.perf_counter() - started
    assert run.graded == [("jdoe", ASSIGNMENT)] and run.skipped == 0
    grades = _grades(term.course, "jdoe")
    assert grades[WRITTEN] == (None, 2, True)  # kept, and to review
    assert grades["q_layer4_size"] == (None, None, True) and grades["test_top_channels"] == (2, None, False)
    assert load_state(term.course)["rroe"] == before
    from autograder.course.export import export

    rows = export(term.course, "long")[0].read_text().splitlines()
    assert f"jdoe,{ASSIGNMENT},{WRITTEN},2,3,to review" in rows
    print(f"\nregrade of one student (1 notebook): {seconds:.1f} s")


def test_feedback_released_to_the_exchange(term):
    from autograder.course.feedback import generate

    report = generate(term.course, release=True)
    assert report["released"] == [("rroe", ASSIGNMENT)]  # through the exchange, with nbgrader's secret
    assert report["not_released"] == [("jdoe", ASSIGNMENT)]  # from Canvas: a zip for the LMS instead
    pages = list((Path(term.course.settings["exchange"]) / "xai-test" / "feedback").glob("*.html"))
    assert len(pages) == 1 and "Score: 0.0 / 15.0" in pages[0].read_text()
