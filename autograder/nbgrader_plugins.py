"""nbgrader preprocessors of the course (configured in ``autograder/course/nbgrader_config.py``).

- :class:`InjectGuard` puts a cell before the student's first cell that arms
  ``autograder.integrity`` (records the functions the checks rely on) before any student code runs.
- :class:`RemoveGuard` takes that cell out again after execution (it never shows in feedback).
- :class:`StripGraderTracebacks` removes, from the error output of every cell, the traceback
  frames that run inside instructor-only code (``autograder/``, ``solutions/``): the feedback shows
  the failing check's message and the student's own frames, never the hidden check's code.
"""

from __future__ import annotations

import re

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

GUARD_MARK = "xai_kit_guard"
GUARD_SOURCE = "import autograder.integrity as _xai_integrity\n_xai_integrity.arm()\ndel _xai_integrity"
INSTRUCTOR_PATHS = re.compile(r"[/\\](autograder|solutions)[/\\][\w/\\.-]*\.py")
# A test cell's own frame quotes its source, hidden lines included.
HIDDEN_CODE = re.compile(r"HIDDEN TESTS|hidden\.run|autograder")


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _plain(text: str) -> str:
    """Traceback text without its terminal colour codes."""
    return ANSI.sub("", text)


class InjectGuard(NbGraderPreprocessor):
    def preprocess(self, nb, resources):
        guard = nbformat.v4.new_code_cell(GUARD_SOURCE)
        guard.metadata[GUARD_MARK] = True
        guard["id"] = GUARD_MARK
        nb.cells.insert(0, guard)
        return nb, resources


class RemoveGuard(NbGraderPreprocessor):
    def preprocess(self, nb, resources):
        nb.cells = [cell for cell in nb.cells if not cell.get("metadata", {}).get(GUARD_MARK)]
        return nb, resources


class StripGraderTracebacks(NbGraderPreprocessor):
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                frames = output.get("traceback", [])
                kept = [frame for frame in frames
                        if not INSTRUCTOR_PATHS.search(frame) and not HIDDEN_CODE.search(_plain(frame))]
                if len(kept) != len(frames):
                    kept.insert(max(len(kept) - 1, 0), "(frames inside the grader's hidden checks are not shown)")
                output["traceback"] = kept
        return cell, resources
