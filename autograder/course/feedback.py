"""``python -m autograder feedback --course PATH``: the students' feedback after manual grading.

Per student and assignment, nbgrader's own ``generate_feedback`` on the course (its configuration,
so the kit's feedback preprocessors apply): the autograded notebook as graded (tracebacks
already cleaned of grader frames at autograde, ``nbgrader_plugins.StripGraderTracebacks``),
hidden tests cleared (``ClearHiddenTests``), every score and comment from the gradebook, the
manual ones included. Two kit additions, configured in ``autograder/course/nbgrader_config.py``:

- :class:`MarkNotGradedYet` (after nbgrader's ``GetGrades``): a manually graded cell that no
  grader has scored yet gets no score (nbgrader would show 0), and the notebook's header counts
  its points as "not graded yet";
- the feedback template ``feedback_template/xai_feedback`` (nbgrader's own, with the scores written
  through :data:`SCORE`): such a cell reads "not graded yet", never "0.0".

Then either ``--release`` (nbgrader's ``release_feedback`` into the exchange, where students fetch
it with ``nbgrader fetch_feedback``) or ``--zip`` (one zip per student in
``COURSE/exports/feedback/<student>.zip``, to upload to the LMS).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from nbgrader.api import Gradebook
from nbgrader.preprocessors import NbGraderPreprocessor

from autograder.course.folder import Course, CourseError

TEMPLATE_FOLDER = Path(__file__).with_name("feedback_template")
TEMPLATE_NAME = "xai_feedback"
NOT_GRADED = "not graded yet"
#: How the feedback template writes a cell's score (nbgrader's writes ``score | float``: 0.0 for None).
SCORE = ("{% if cell.metadata.nbgrader.score is none %}" + NOT_GRADED +
         "{% else %}{{ cell.metadata.nbgrader.score | float | round(2) }}{% endif %}")
TOTAL = ("{{ resources.nbgrader.score | float | round(2) }} / {{ resources.nbgrader.max_score | float | round(2) }}"
         "{% if resources.nbgrader.xai_not_graded %}; {{ resources.nbgrader.xai_not_graded | float | round(2) }} "
         "points " + NOT_GRADED + "{% endif %}")


def nbgrader_feedback_template() -> Path:
    """nbgrader's own feedback template (``index.html.j2``) of the installed nbgrader."""
    import nbgrader

    return Path(nbgrader.__file__).parent / "server_extensions" / "formgrader" / "templates" / "feedback" / "index.html.j2"


def derive_template(nbgrader_template: str) -> str:
    """The kit's feedback template from nbgrader's: each score through :data:`SCORE`, the total
    through :data:`TOTAL`. Raises when nbgrader's template no longer has what is replaced."""
    cell_score = "{{ cell.metadata.nbgrader.score | float | round(2) }}"
    total = "{{ resources.nbgrader.score | float | round(2) }} / {{ resources.nbgrader.max_score | float | round(2) }}"
    if nbgrader_template.count(cell_score) < 2 or nbgrader_template.count(total) != 1:
        raise RuntimeError("nbgrader's feedback template changed: update autograder/course/feedback.py")
    header = ("{#- The kit's feedback template: nbgrader's feedback/index.html.j2 with a manual score not given "
              "yet written as \"" + NOT_GRADED + "\" (made by autograder.course.feedback.derive_template). -#}\n")
    return header + nbgrader_template.replace(cell_score, SCORE).replace(total, TOTAL)


class MarkNotGradedYet(NbGraderPreprocessor):
    """After ``GetGrades``: no score for a manual cell nobody has graded yet (``needs_manual_grade``
    and no ``manual_score``); ``resources["nbgrader"]["xai_not_graded"]``: their points."""

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        not_graded = 0.0
        with Gradebook(info["db_url"]) as gradebook:
            notebook = gradebook.find_submission_notebook(info["notebook"], info["assignment"], info["student"])
            waiting = {grade.name: grade.max_score for grade in notebook.grades
                       if grade.needs_manual_grade and grade.manual_score is None}
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade") and meta.get("grade_id") in waiting:
                meta["score"] = None
                not_graded += float(waiting[meta["grade_id"]])
        info["xai_not_graded"] = not_graded
        return nb, resources


def _api(course: Course):
    """nbgrader's API on the course, with the course's configuration."""
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course.root)).load_config()
    config.CourseDirectory.root = str(course.root)
    return NbGraderAPI(config=config)


def graded_submissions(course: Course, assignments=None, students=None) -> list[tuple[str, str]]:
    """``(student, assignment)`` of every autograded submission in the selection."""
    found = []
    for assignment in course.select_assignments(assignments):
        autograded = course.root / "autograded"
        for folder in sorted(autograded.glob(f"*/{assignment}/{assignment}.ipynb")) if autograded.is_dir() else []:
            student = folder.parent.parent.name
            if not students or student in students:
                found.append((student, assignment))
    return found


def generate(course: Course, assignments=None, students=None, release: bool = False,
             zips: bool = False) -> dict:
    """Feedback for every graded submission selected; ``{"written": [...], "zips": [...],
    "released": [...], "not_released": [...], "not_graded_yet": {(student, assignment): points}}``.
    Only a submission that came through nbgrader's exchange (it has ``submission_secret.txt``)
    can be released there; the others are listed in ``not_released`` (give them ``--zip``)."""
    chosen = graded_submissions(course, assignments, students)
    if not chosen:
        raise CourseError("no graded submission to give feedback on (run grade --course first)")
    api = _api(course)
    report = {"written": [], "zips": [], "released": [], "not_released": [], "not_graded_yet": {}}
    for student, assignment in chosen:
        result = api.generate_feedback(assignment, student, force=True)
        if not result["success"]:
            raise CourseError(f"nbgrader generate_feedback {assignment} {student} failed:\n{result['error'][-2000:]}")
        report["written"].append(course.path("feedback", student, assignment) / f"{assignment}.html")
        if release and not (course.path("feedback", student, assignment) / "submission_secret.txt").is_file():
            report["not_released"].append((student, assignment))
        elif release:
            result = api.release_feedback(assignment, student)
            if not result["success"]:
                raise CourseError(f"nbgrader release_feedback {assignment} {student} failed:\n{result['error'][-2000:]}")
            report["released"].append((student, assignment))
    with course.gradebook() as gradebook:
        for student, assignment in chosen:
            notebook = gradebook.find_submission_notebook(assignment, assignment, student)
            waiting = sum(g.max_score for g in notebook.grades if g.needs_manual_grade and g.manual_score is None)
            if waiting:
                report["not_graded_yet"][(student, assignment)] = waiting
    if zips:
        report["zips"] = write_zips(course, sorted({student for student, _ in chosen}))
    return report


def write_zips(course: Course, students) -> list[Path]:
    """``COURSE/exports/feedback/<student>.zip``: that student's feedback pages, ``<assignment>.html``."""
    folder = course.root / "exports" / "feedback"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for student in students:
        pages = sorted((course.root / "feedback" / student).glob("*/*.html"))
        if not pages:
            continue
        target = folder / f"{student}.zip"
        partial = target.with_suffix(".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for page in pages:
                archive.write(page, f"{page.parent.name}/{page.name}")
        os.replace(partial, target)
        written.append(target)
    return written


def write_template() -> Path:
    """Write ``feedback_template/xai_feedback`` from the installed nbgrader's template."""
    folder = TEMPLATE_FOLDER / TEMPLATE_NAME
    folder.mkdir(parents=True, exist_ok=True)
    source = nbgrader_feedback_template()
    (folder / "index.html.j2").write_text(derive_template(source.read_text()))
    (folder / "conf.json").write_text((source.parent / "conf.json").read_text())
    return folder
