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

Student content is inert there and in formgrader (both render with nbconvert's HTMLExporter under
the kit's configuration). nbgrader's templates render markdown cells without nbconvert's
``clean_html`` filter even when ``HTMLExporter.sanitize_html`` is on, so the kit's templates are
derived from them (:func:`derive_template`, :func:`derive_formgrade_templates`): every
``markdown2html`` goes through ``clean_html`` (the kit's, ``autograder.engine.safe_output``), the
feedback page's head starts with the Content-Security-Policy that forbids scripts and loads no
MathJax (formulas show as TeX), and formgrader's page escapes the student's id and names.

Then either ``--release`` (nbgrader's ``release_feedback`` into the exchange, where students fetch
it with ``nbgrader fetch_feedback``) or ``--zip`` (one zip per student in
``COURSE/exports/feedback/<student>.zip``, to upload to the LMS).
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

from nbgrader.api import Gradebook
from nbgrader.preprocessors import NbGraderPreprocessor

from autograder.course.folder import Course, CourseError
from autograder.engine.safe_output import CSP_META, has_kit_csp, not_sanitized_note

TEMPLATE_FOLDER = Path(__file__).with_name("feedback_template")
TEMPLATE_NAME = "xai_feedback"
FORMGRADE_TEMPLATE_NAME = "xai_formgrade"
MARKDOWN = "markdown2html | strip_files_prefix }}"
CLEAN_MARKDOWN = "markdown2html | strip_files_prefix | clean_html }}"
NOT_GRADED = "not graded yet"
#: How the feedback template writes a cell's score (nbgrader's writes ``score | float``: 0.0 for None).
SCORE = ("{% if cell.metadata.nbgrader.score is none %}" + NOT_GRADED +
         "{% else %}{{ cell.metadata.nbgrader.score | float | round(2) }}{% endif %}")
TOTAL = ("{{ resources.nbgrader.score | float | round(2) }} / {{ resources.nbgrader.max_score | float | round(2) }}"
         "{% if resources.nbgrader.xai_not_graded %}; {{ resources.nbgrader.xai_not_graded | float | round(2) }} "
         "points " + NOT_GRADED + "{% endif %}")


def nbgrader_templates() -> Path:
    """The folder of nbgrader's own nbconvert templates (``feedback/``, ``formgrade/``)."""
    import nbgrader

    return Path(nbgrader.__file__).parent / "server_extensions" / "formgrader" / "templates"


def nbgrader_feedback_template() -> Path:
    """nbgrader's own feedback template (``index.html.j2``) of the installed nbgrader."""
    return nbgrader_templates() / "feedback" / "index.html.j2"


def _replace(template: str, old: str, new: str, count: int, which: str) -> str:
    """``template`` with the ``count`` occurrences of ``old`` replaced; RuntimeError if nbgrader's
    template ``which`` does not have exactly that many (it changed: derive the kit's again)."""
    if template.count(old) != count:
        raise RuntimeError(f"nbgrader's {which} template changed ({old!r}): update autograder/course/feedback.py")
    return template.replace(old, new)


def derive_template(nbgrader_template: str) -> str:
    """The kit's feedback template from nbgrader's: each score through :data:`SCORE`, the total
    through :data:`TOTAL`; markdown (cells, comments) through ``clean_html``; the
    Content-Security-Policy first in the head; no MathJax (a script). Raises when nbgrader's
    template no longer has what is replaced."""
    cell_score = "{{ cell.metadata.nbgrader.score | float | round(2) }}"
    total = "{{ resources.nbgrader.score | float | round(2) }} / {{ resources.nbgrader.max_score | float | round(2) }}"
    if nbgrader_template.count(cell_score) < 2:
        raise RuntimeError("nbgrader's feedback template changed: update autograder/course/feedback.py")
    header = ("{#- The kit's feedback template: nbgrader's feedback/index.html.j2 with a manual score not given "
              "yet written as \"" + NOT_GRADED + "\", student content sanitized and no script allowed "
              "(made by autograder.course.feedback.derive_template). -#}\n")
    template = _replace(nbgrader_template.replace(cell_score, SCORE), total, TOTAL, 1, "feedback")
    template = _replace(template, MARKDOWN, CLEAN_MARKDOWN, 3, "feedback")
    template = _replace(template, '<meta charset="utf-8" />', '<meta charset="utf-8" />\n' + CSP_META, 1, "feedback")
    template = _replace(template, "{{ mathjax() }}", "{#- no MathJax: the page runs no script -#}", 1, "feedback")
    return header + template


def derive_formgrade_templates(index: str, macros: str) -> dict:
    """The kit's formgrader template from nbgrader's ``formgrade/index.html.j2`` and
    ``formgrade_macros.html.j2``: ``{file name: text}``. Markdown cells go through ``clean_html``,
    every ``resources`` value (student id and names, assignment and notebook names) is escaped.

    Formgrader's page needs its own scripts (jQuery, Backbone, inline handlers) to save grades,
    so it gets no script-forbidding policy: the sanitizer is its boundary."""
    note = ("{#- The kit's formgrader template: nbgrader's formgrade/{name} with student content sanitized "
            "(made by autograder.course.feedback.derive_formgrade_templates). -#}\n")
    index = _replace(index, MARKDOWN, CLEAN_MARKDOWN, 2, "formgrade")
    escaped = {}
    for name, text in (("index.html.j2", index), ("formgrade_macros.html.j2", macros)):
        text = re.sub(r"\{\{ (resources\.\w+) \}\}", r"{{ \1 | escape_html }}", text)
        escaped[name] = note.replace("{name}", name) + text
    if not escaped["formgrade_macros.html.j2"].count("{{ resources.student | escape_html }}") == 1:
        raise RuntimeError("nbgrader's formgrade template changed (the student's id): update autograder/course/feedback.py")
    return escaped


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

    config = course.config()
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


def kit_templates() -> dict:
    """``{path under feedback_template/: text}`` of the kit's templates, derived from the installed
    nbgrader's (``xai_feedback``, ``xai_formgrade``); each folder keeps nbgrader's ``conf.json``."""
    feedback, formgrade = nbgrader_templates() / "feedback", nbgrader_templates() / "formgrade"
    texts = {f"{TEMPLATE_NAME}/index.html.j2": derive_template((feedback / "index.html.j2").read_text()),
             f"{TEMPLATE_NAME}/conf.json": (feedback / "conf.json").read_text(),
             f"{FORMGRADE_TEMPLATE_NAME}/conf.json": (formgrade / "conf.json").read_text()}
    derived = derive_formgrade_templates((formgrade / "index.html.j2").read_text(),
                                         (formgrade / "formgrade_macros.html.j2").read_text())
    texts.update({f"{FORMGRADE_TEMPLATE_NAME}/{name}": text for name, text in derived.items()})
    return texts


def write_template() -> Path:
    """Write the kit's templates (:func:`kit_templates`) into ``feedback_template/``."""
    for name, text in kit_templates().items():
        (TEMPLATE_FOLDER / name).parent.mkdir(parents=True, exist_ok=True)
        (TEMPLATE_FOLDER / name).write_text(text)
    return TEMPLATE_FOLDER
