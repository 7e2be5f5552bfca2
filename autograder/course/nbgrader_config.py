"""nbgrader configuration of the course (copied into every course directory the kit builds).

Why each setting:
- ExecuteWithTrustedChecks.cell_cpu_seconds: CPU seconds per cell (the kernel's process tree:
  the same at any load; autograder/engine/limited_execute.py); the heaviest autograded cell stays
  far below it. Execute.timeout: the wall-clock backstop, several times larger
  (autograder/engine/limits.py), for cells that wait without computing.
- interrupt_on_timeout / raise_on_iopub_timeout: a cell that loops forever is interrupted and
  scored 0 instead of failing the whole submission (which would keep an OLD score).
- OverwriteCells.add_missing_cells: a deleted test cell is put back (and run), not silently 0.
- GenerateFeedback: hidden tests are cleared from the feedback HTML.
- IgnorePattern: library warnings on stderr would zero a test cell; drop the known ones.
- LimitOutput, LimitOutputCharacters: a cell that prints without end cannot make the feedback page huge.
- autograde_preprocessors: execution with the hidden checks' trusted server, test cells scored
  from its verdicts, and the traceback cleaning of nbgrader_plugins.py.
- HTMLExporter: student content inert in the feedback pages and in formgrader (markdown, HTML,
  SVG, names sanitized; the feedback pages forbid scripts): autograder/course/feedback.py.
"""

import os

import nbgrader

import autograder.course
from autograder.engine.limits import CELL_WALL_FACTOR, Limits

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "cnn-explainability"
c.ExecuteWithTrustedChecks.cell_cpu_seconds = Limits.cell_seconds
c.Execute.timeout = Limits.cell_seconds * CELL_WALL_FACTOR
c.Execute.interrupt_on_timeout = True
c.Execute.raise_on_iopub_timeout = False
c.Execute.startup_timeout = 120
c.OverwriteCells.add_missing_cells = True
c.Autograde.create_student = True
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
# Bounded feedback: at most 1000 lines of stream output per cell and 100 traceback lines per
# error (nbgrader 0.9.6's LimitOutput has no limit on characters: LimitOutputCharacters, after the
# grades are saved, cuts any one output to 20 000 characters; the grader also caps each feedback
# page it copies to OUT at 5 MB, autograder/engine/safe_output.py).
c.LimitOutput.max_lines = 1000
c.LimitOutput.max_traceback = 100
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"(?:UserWarning|DeprecationWarning|FutureWarning).*\n"
# Hidden checks outside the kernel, scoring from their verdicts, traceback hygiene
# (autograder/engine/nbgrader_plugins.py).
c.Autograde.autograde_preprocessors = [
    "autograder.engine.nbgrader_plugins.ExecuteWithTrustedChecks",
    "autograder.engine.nbgrader_plugins.ScoreTestCells",
    "autograder.engine.nbgrader_plugins.StripGraderTracebacks",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "autograder.engine.nbgrader_plugins.LimitOutputCharacters",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
# Feedback after manual grading: a manual cell not graded yet says so instead of "0.0"
# (autograder/course/feedback.py: MarkNotGradedYet and the template feedback_template/xai_feedback,
# nbgrader's own with the scores written through a test for "no score yet").
c.GenerateFeedback.preprocessors.insert(1, "autograder.course.feedback.MarkNotGradedYet")
_nbgrader_templates = os.path.join(os.path.dirname(nbgrader.__file__), "server_extensions", "formgrader", "templates")
c.GenerateFeedback.HTMLExporter.template_name = "xai_feedback"
c.GenerateFeedback.HTMLExporter.extra_template_basedirs = [
    os.path.join(os.path.dirname(autograder.course.__file__), "feedback_template"), _nbgrader_templates]

# Student content is inert wherever nbconvert renders it for the course: the feedback pages (above)
# and formgrader, whose exporter is built from this configuration without a parent (so these are
# set on HTMLExporter itself, and the template named here replaces formgrader's own "formgrade").
# sanitize_html makes nbconvert's templates pass HTML and markdown outputs and inline SVG through
# the filter clean_html, here the kit's (bleach with an allow-list for rendered markdown); the kit's
# templates also pass markdown cells through it and escape names (autograder/course/feedback.py).
c.HTMLExporter.sanitize_html = True
c.HTMLExporter.filters = {"clean_html": "autograder.engine.safe_output.clean_html"}
c.HTMLExporter.template_name = "xai_formgrade"
c.HTMLExporter.extra_template_basedirs = c.GenerateFeedback.HTMLExporter.extra_template_basedirs
