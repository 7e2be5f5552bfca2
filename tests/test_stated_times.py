"""Every run time a notebook states comes from the students' benchmark (``stated_times``)."""

import re

import nbformat
import pytest

from autograder.authoring import build, stated_times
from autograder.authoring.build import RELEASE_DIR, SOLUTION_DIR

#: A run time written by hand: "3 minutes", "about 30 s", "a few seconds", "about a minute".
HAND_WRITTEN_TIME = re.compile(r"\b(\d+(\.\d+)?\s*(s|sec|seconds?|min|minutes?)|a few (seconds|minutes)|"
                               r"(about|under|in) a (minute|second))\b", re.IGNORECASE)
#: Study-time estimates ("**Time:** about 2 hours: 45 minutes for the two functions, ...") are
#: not run times; they are the lines that speak of hours of work.
STUDY_TIME = re.compile(r"\*\*Time:\*\* about \d+ hours|minutes\s+for (the|Part)|\d+ for (exploring|the figures)")


def _lines_with_hand_written_times(text: str) -> list[str]:
    found = []
    for line in stated_times.PLACEHOLDER.sub("", text).splitlines():
        if HAND_WRITTEN_TIME.search(line) and not STUDY_TIME.search(line) and "print(" not in line:
            found.append(line.strip())
    return found


@pytest.mark.parametrize("assignment", build.assignment_ids())
def test_no_source_states_a_run_time_by_hand(assignment):
    text = (build.ASSIGNMENTS_DIR / f"{assignment}.py").read_text()
    assert not _lines_with_hand_written_times(text)
    assert stated_times.PLACEHOLDER.search(text), f"{assignment} states no run time of its own"


@pytest.mark.parametrize("assignment", build.assignment_ids())
def test_every_stated_time_was_measured(assignment):
    record = stated_times.measured()
    text = (build.ASSIGNMENTS_DIR / f"{assignment}.py").read_text()
    for match in stated_times.PLACEHOLDER.finditer(text):
        entry = record["notebooks"][assignment]
        assert match.group(1) is None or match.group(1) in entry["cells"], match.group(0)
    for folder in (RELEASE_DIR, SOLUTION_DIR):
        built = nbformat.read(str(folder / f"{assignment}.ipynb"), as_version=4)
        sources = "\n".join(cell.source for cell in built.cells)
        assert stated_times.NOT_MEASURED not in sources
        assert "{{runtime" not in sources
        assert stated_times.phrase(record["notebooks"][assignment]["seconds"]) in sources


def test_the_phrases_and_the_fill():
    record = {"notebooks": {"01_hooks": {"seconds": 137.0, "cells": {"fig_a": 41.0, "fig_b": 3.2}}}}
    assert stated_times.phrase(3.2) == "about 3 s" and stated_times.phrase(41.0) == "about 40 s"
    assert stated_times.phrase(137.0) == "about 2.5 minutes" and stated_times.phrase(95.0) == "about 1.5 minutes"
    text = "all {{runtime}}; the figure {{runtime fig_a}}; {{runtime fig_missing}}"
    assert stated_times.fill(text, "01_hooks", record) == \
        f"all about 2.5 minutes; the figure about 40 s; {stated_times.NOT_MEASURED}"
    assert stated_times.fill("{{runtime}}", "02_gradcam", record) == stated_times.NOT_MEASURED


def test_the_hand_written_time_finder_finds_them():
    assert _lines_with_hand_written_times("# takes about 3 minutes on a CPU\n# about 30 s\n# a few seconds")\
        == ["# takes about 3 minutes on a CPU", "# about 30 s", "# a few seconds"]
    assert _lines_with_hand_written_times("# **Time:** about 2 hours: 45 minutes for the two functions") == []
    assert _lines_with_hand_written_times("# takes at most {{runtime}} on a 2-core CPU") == []
