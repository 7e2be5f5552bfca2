"""Collect's parsing of LMS download names and roster matching, and collect on made-up downloads
(pure Python and a small gradebook: no notebook is executed)."""

import json
import shutil
import zipfile

import nbformat
import pytest

from autograder.authoring import build
from autograder.course import collect as collecting
from autograder.course.folder import Course, CourseError
from autograder.course.roster import Roster, Student, import_roster
from autograder.authoring.source_format import RUBRIC_HEADING

ASSIGNMENTS = ["01_hooks", "02_gradcam"]
ROSTER = ("id,first_name,last_name,email,lms_user_id\n"
          "jdoe,Jane,Doe,jane.doe@example.edu,12345\n"
          "rroe,Rick,Roe,rick@example.edu,222\n"
          "amuller,Anna,Müller,anna@example.edu,333\n")


@pytest.mark.parametrize("name, expected", [
    ("01_hooks.ipynb", ("01_hooks", 0)),
    ("Copy of 01_hooks.ipynb", ("01_hooks", 0)),
    ("Copy of Copy of 01_hooks.ipynb", ("01_hooks", 0)),
    ("01_hooks (1).ipynb", ("01_hooks", 1)),
    ("Copy of 01_hooks (2).ipynb", ("01_hooks", 2)),
    ("01_hooks-1.ipynb", ("01_hooks", 1)),
    ("01_hooks-12.ipynb", ("01_hooks", 12)),
    ("01 hooks.IPYNB", ("01_hooks", 0)),
    ("hooks_final.ipynb", (None, 0)),
    ("02_gradcam-3.ipynb", ("02_gradcam", 3)),
])
def test_notebook_names(name, expected):
    assert collecting.notebook_name(name, ASSIGNMENTS) == expected


@pytest.mark.parametrize("name, fields", [
    ("doe_jane_12345_678901_01_hooks.ipynb", ("doe_jane", None, "12345", "678901", "01_hooks.ipynb")),
    ("doejane_12345_678901_01_hooks-1.ipynb", ("doejane", None, "12345", "678901", "01_hooks-1.ipynb")),
    ("doejane_LATE_12345_678901_01_hooks.ipynb", ("doejane", "LATE", "12345", "678901", "01_hooks.ipynb")),
    ("doejane_late_12345_678901_Copy of 01_hooks.ipynb", ("doejane", "late", "12345", "678901",
                                                          "Copy of 01_hooks.ipynb")),
])
def test_canvas_names(name, fields):
    match = collecting.CANVAS.match(name)
    assert (match["name"], match["late"], match["user"], match["submission"], match["file"]) == fields


def test_moodle_folder_names():
    match = collecting.MOODLE.match("Jane Doe_12345_assignsubmission_file_")
    assert (match["name"], match["user"], match["plugin"]) == ("Jane Doe", "12345", "file")
    assert collecting.MOODLE.match("jdoe") is None


def test_roster_matching():
    roster = Roster([Student("jdoe", "Jane", "Doe", "jane.doe@example.edu", "12345"),
                     Student("jdoe2", "Jane", "Doe", "jd2@example.edu", "777"),
                     Student("amuller", "Anna", "Müller", "anna@example.edu", "333")])
    assert roster.match(lms_user_id="12345").id == "jdoe"
    assert roster.match(lms_user_id="99999") is None  # an LMS id decides: no fallback to a name
    assert roster.match(login="JDOE").id == "jdoe"
    assert roster.match(login="jane.doe@example.edu").id == "jdoe"
    assert roster.match(login="amuller@other.example").id == "amuller"  # the local part is a login
    assert roster.match(name="Anna Muller").id == "amuller"  # accents and spaces do not count
    assert roster.match(name="mullerANNA").id == "amuller"
    assert roster.match(name="Jane Doe") is None  # two students are called that


@pytest.fixture(scope="module")
def course_with_roster(tmp_path_factory):
    """A course folder with a roster and no notebooks built (collect needs no more)."""
    root = tmp_path_factory.mktemp("template") / "course"
    root.mkdir()
    (root / "nbgrader_config.py").write_text("c = get_config()\n")
    (root / "course.json").write_text(json.dumps({"course_id": "test", "assignments": ASSIGNMENTS}))
    (root.parent / "roster.csv").write_text(ROSTER)
    import_roster(Course.open(root), root.parent / "roster.csv")
    return root


@pytest.fixture()
def course(course_with_roster, tmp_path):
    """A fresh copy of the course with its roster, per test."""
    return Course.open(shutil.copytree(course_with_roster, tmp_path / "course"))


def _notebook(text: str) -> bytes:
    notebook = nbformat.v4.new_notebook()
    notebook.cells.append(nbformat.v4.new_markdown_cell(text))
    return nbformat.writes(notebook).encode()


def _submitted(course, student, assignment) -> str:
    return nbformat.reads((course.path("submitted", student, assignment) / f"{assignment}.ipynb").read_text(),
                          4).cells[0].source


def test_every_layout_in_one_download(course, tmp_path):
    source = tmp_path / "download"
    source.mkdir()
    # Canvas: an upload and its re-upload (-1: the latest wins), marked late.
    (source / "doejane_LATE_12345_678901_01_hooks.ipynb").write_bytes(_notebook("first"))
    (source / "doejane_LATE_12345_678902_01_hooks-1.ipynb").write_bytes(_notebook("second"))
    # Moodle: one folder per student, a Colab copy inside.
    moodle = source / "Rick Roe_222_assignsubmission_file_"
    moodle.mkdir()
    (moodle / "Copy of 02_gradcam.ipynb").write_bytes(_notebook("rick gradcam"))
    # nbgrader's exchange layout with its timestamp.
    exchange = source / "amuller" / "01_hooks"
    exchange.mkdir(parents=True)
    (exchange / "01_hooks.ipynb").write_bytes(_notebook("anna hooks"))
    (exchange / "timestamp.txt").write_text("2027-02-02 10:00:00.000000 UTC\n")
    # The kit's folder layout (by email) and a zip.
    (source / "rick@example.edu").mkdir()
    (source / "rick@example.edu" / "01_hooks (1).ipynb").write_bytes(_notebook("rick hooks"))
    with zipfile.ZipFile(source / "amuller.zip", "w") as archive:
        archive.writestr("work/02_gradcam.ipynb", _notebook("anna gradcam"))
    # What must be listed, not taken.
    (source / "nobody_99999_1_01_hooks.ipynb").write_bytes(_notebook("unknown"))
    (source / "Stranger Person_4444_assignsubmission_file_").mkdir()
    (source / "Stranger Person_4444_assignsubmission_file_" / "01_hooks.ipynb").write_bytes(_notebook("x"))
    (source / "notes.pdf").write_bytes(b"%PDF")
    (source / "link.ipynb").symlink_to(source / "notes.pdf")

    report = collecting.collect(course, source)
    taken = {(student, assignment): layout for student, assignment, _, layout, _ in report.imported}
    assert taken == {("jdoe", "01_hooks"): "Canvas", ("rroe", "02_gradcam"): "Moodle",
                     ("amuller", "01_hooks"): "nbgrader exchange", ("rroe", "01_hooks"): "folder",
                     ("amuller", "02_gradcam"): "zip"}
    assert _submitted(course, "jdoe", "01_hooks") == "second"
    assert report.superseded == [("doejane_LATE_12345_678901_01_hooks.ipynb",
                                  "doejane_LATE_12345_678902_01_hooks-1.ipynb")]
    assert report.flagged_late == ["doejane_LATE_12345_678902_01_hooks-1.ipynb"]
    stamp = course.path("submitted", "amuller", "01_hooks") / "timestamp.txt"
    assert stamp.read_text() == "2027-02-02 10:00:00.000000 UTC\n"  # taken as is
    assert (course.path("submitted", "jdoe", "01_hooks") / "timestamp.txt").is_file()  # the file's time
    assert not (course.path("submitted", "rroe", "01_hooks") / "timestamp.txt").exists()
    unmatched = dict(report.unmatched)
    assert set(unmatched) == {"nobody_99999_1_01_hooks.ipynb", "Stranger Person_4444_assignsubmission_file_/01_hooks.ipynb",
                              "notes.pdf", "link.ipynb"}
    assert "symbolic link" in unmatched["link.ipynb"]
    assert "nobody_99999_1_01_hooks.ipynb" in report.text()


def test_assignment_option_takes_a_students_only_notebook(course, tmp_path):
    source = tmp_path / "canvas"
    source.mkdir()
    (source / "roerick_222_5_my hooks work.ipynb").write_bytes(_notebook("rick"))
    (source / "doejane_12345_6_02_gradcam.ipynb").write_bytes(_notebook("jane, wrong assignment"))
    report = collecting.collect(course, source, assignment="01_hooks")
    assert [(s, a) for s, a, *_ in report.imported] == [("rroe", "01_hooks")]
    assert dict(report.unmatched)["doejane_12345_6_02_gradcam.ipynb"] == "is 02_gradcam, not 01_hooks (--assignment)"


def test_a_download_that_finds_nobody_is_an_error(course, tmp_path, capsys):
    from autograder.cli import main

    source = tmp_path / "empty_download"
    source.mkdir()
    (source / "someone_55_66_01_hooks.ipynb").write_bytes(_notebook("?"))
    with pytest.raises(CourseError, match="someone_55_66_01_hooks.ipynb: no student in the roster"):
        collecting.collect(course, source)
    assert main(["collect", "--course", str(course.root), str(source)]) == 1
    assert "someone_55_66_01_hooks.ipynb" in capsys.readouterr().err
    assert not (course.root / "submitted").exists()


def test_a_zipped_canvas_download(course, tmp_path):
    archive = tmp_path / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("doejane_12345_678901_01_hooks.ipynb", _notebook("zipped"))
    report = collecting.collect(course, archive)
    assert [(s, a, layout) for s, a, _, layout, _ in report.imported] == [("jdoe", "01_hooks", "Canvas")]
    assert _submitted(course, "jdoe", "01_hooks") == "zipped"


def test_roster_errors_name_the_line(course, tmp_path):
    from autograder.course.roster import read_roster

    (tmp_path / "bad.csv").write_text("id,first_name\nok,A\n../etc,B\n")
    with pytest.raises(CourseError, match=r"bad.csv:3: unusable student id '../etc'"):
        read_roster(tmp_path / "bad.csv")
    (tmp_path / "twice.csv").write_text("id\nx\nx\n")
    with pytest.raises(CourseError, match="appears twice"):
        read_roster(tmp_path / "twice.csv")


def test_init_refuses_a_folder_tracked_in_the_kit(tmp_path):
    from autograder.course.init import init_course

    with pytest.raises(CourseError, match="inside the kit's repository and not git-ignored"):
        init_course(build.REPO_ROOT / "autograder" / "my_course")
    assert not (build.REPO_ROOT / "autograder" / "my_course").exists()


def test_every_manual_cell_has_a_rubric_that_students_never_get(tmp_path):
    """The grading guide's rubrics are in the instructor notebooks only: not in the release, and
    the publish scan refuses a file that holds one (the same scan guards the student repository)."""
    from autograder.authoring import publish
    from autograder.course import guide

    for assignment in build.assignment_ids():
        source = nbformat.read(str(build.SOLUTION_DIR / f"{assignment}.ipynb"), 4)
        cells = guide.manual_cells(source)
        assert cells and all(cell["rubric"] and cell["answer"] for cell in cells), assignment
        released = (build.RELEASE_DIR / f"{assignment}.ipynb").read_text()
        assert "Rubric" not in released and "Rubric" not in nbformat.writes(build.solved_submission(assignment))
        for cell in cells:
            assert cell["answer"].splitlines()[0] not in released
            assert not any(item in released for item in cell["rubric"]), cell["grade_id"]
        markdown = guide.guide_markdown(assignment, source)
        assert all(item in markdown for cell in cells for item in cell["rubric"])
    stage = tmp_path / "stage"
    stage.mkdir()
    item = cells[0]["rubric"][0]
    (stage / "notes.md").write_text(f"{RUBRIC_HEADING}\n- {item}\n")
    findings = publish.grader_only_findings(stage)
    assert any("Rubric (graders only)" in finding for finding in findings)


def test_feedback_template_is_nbgrader_s_with_not_graded_yet():
    """The kit's feedback template is derived from the installed nbgrader's (no drift), and a
    manual cell without a score renders as "not graded yet", one with a score as nbgrader does."""
    import jinja2

    from autograder.course import feedback

    committed = (feedback.TEMPLATE_FOLDER / feedback.TEMPLATE_NAME / "index.html.j2").read_text()
    assert committed == feedback.derive_template(feedback.nbgrader_feedback_template().read_text()), \
        "run: python -c 'from autograder.course.feedback import write_template; write_template()'"
    render = jinja2.Environment().from_string
    cell = {"metadata": {"nbgrader": {"score": None}}}
    assert render(feedback.SCORE).render(cell=cell) == "not graded yet"
    cell["metadata"]["nbgrader"]["score"] = 2
    assert render(feedback.SCORE).render(cell=cell) == "2.0"
    total = {"nbgrader": {"score": 8, "max_score": 15, "xai_not_graded": 7.0}}
    assert render(feedback.TOTAL).render(resources=total) == "8.0 / 15.0; 7.0 points not graded yet"
