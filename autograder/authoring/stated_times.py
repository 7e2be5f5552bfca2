"""Run times a notebook states for itself, filled in when it is built, from the students' benchmark.

A notebook source never writes a run time by hand. It writes ``{{runtime}}`` (the whole
notebook, top to bottom) or ``{{runtime CELL_ID}}`` (one of its cells), and the build replaces
each placeholder with what ``benchmarks/bench_student_notebooks.py --record`` last measured,
kept in :data:`TIMES_FILE`: "about 40 s", "about 2.5 minutes". The benchmark records CPU
seconds (user + system, all threads), which do not grow when other programs share the machine:
on a quiet 2-core CPU a cell takes at most about that long, so sentences say "at most". A
placeholder the file has no measurement for becomes :data:`NOT_MEASURED` (a new notebook is
built once, benchmarked, then built again); ``tests/test_stated_times.py`` checks that no
released notebook holds one and that no time is stated any other way.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

#: What the students' benchmark measured (``--record`` writes it): per notebook its total and cell times.
TIMES_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "student_notebook_times.json"
#: ``{{runtime}}`` or ``{{runtime CELL_ID}}``.
PLACEHOLDER = re.compile(r"\{\{runtime(?: ([\w-]+))?\}\}")


#: What a placeholder becomes when the benchmark's file has no measurement for it.
NOT_MEASURED = "(not measured yet: run benchmarks/bench_student_notebooks.py --record)"


def measured(path: Path = TIMES_FILE) -> dict:
    """The benchmark's record: ``{"machine": ..., "notebooks": {name: {"seconds", "cells": {id: s}}}}``."""
    return json.loads(Path(path).read_text())


def phrase(seconds: float) -> str:
    """A measured time as a sentence states it: "about 8 s", "about 40 s", "about 2.5 minutes"."""
    if seconds < 10:
        return f"about {max(1, round(seconds))} s"
    if seconds < 90:
        return f"about {5 * round(seconds / 5):.0f} s"
    return f"about {round(seconds / 30) / 2:g} minutes"


def fill(text: str, notebook: str, record: dict | None = None) -> str:
    """``text`` with every placeholder replaced by the time measured for ``notebook`` (or its cell)."""
    if record is None:
        record = measured() if PLACEHOLDER.search(text) and TIMES_FILE.is_file() else {"notebooks": {}}

    def replace(match: re.Match) -> str:
        entry = record["notebooks"].get(notebook)
        cell = match.group(1)
        if entry is None or (cell is not None and cell not in entry["cells"]):
            return NOT_MEASURED
        return phrase(entry["seconds"] if cell is None else entry["cells"][cell])

    return PLACEHOLDER.sub(replace, text)
