"""A course folder works wherever it is, with nothing but the kit's installed environment.

``python -m autograder course init`` makes the course in a temporary folder outside the checkout;
then, from inside it, with the environment of :mod:`tests.kit_environment` (the kit's venv first
on ``PATH``, no ``PYTHONPATH`` or any other ``PYTHON*`` variable, the working folder the course
folder), nbgrader's own commands run on one solved notebook of Assignment 1: ``autograde`` (full
marks: the kit's preprocessors ran the hidden checks, which plain nbgrader scores 0),
``generate_feedback`` (the kit's template: its page policy, "not graded yet"), ``export`` (the
score in nbgrader's CSV) and formgrader's REST API, none of them logging a config error. A
Python that has nbgrader but not the kit gets a message naming the environment to activate, and
grades nothing.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from autograder.authoring.source_format import REPO_ROOT
from autograder.engine.safe_output import has_kit_csp
from tests import grading_harness as harness
from tests.conftest import standin_assets_in
from tests.formgrader_server import formgrader_on
from tests.kit_environment import installed_kit_env

ASSIGNMENT, STUDENT, COURSE_ID = "01_hooks", "jdoe", "xai-anywhere"
#: The autograded cells of Assignment 1 and their points; its written answers hold 7 more.
AUTOGRADED = {"test_record_activations_values": 3, "test_record_activations_cleanup": 3, "test_top_channels": 2}
MANUAL_POINTS = 7
CONFIG_ERROR = "Exception while loading config file"
#: Where a Python run in the course folder imports the kit from, and what its sys.path holds.
PROBE = ("import json, sys, autograder, solutions, student_src\n"
         "print(json.dumps({'files': [m.__file__ for m in (autograder, solutions, student_src)], 'path': sys.path}))")


def _run(command: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``command`` in ``cwd`` with the installed kit's environment; its stdout and stderr together."""
    return subprocess.run(command, cwd=cwd, env=installed_kit_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


def _assert_ran_with_the_kits_config(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-4000:]
    assert CONFIG_ERROR not in result.stdout, result.stdout[-4000:]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """The course folder (``course init`` run from its parent folder), one solved notebook
    handed in where nbgrader's ``collect`` puts it; the stand-in assets for the module."""
    root = tmp_path_factory.mktemp("anywhere")
    assert not root.resolve().is_relative_to(REPO_ROOT.resolve())
    with standin_assets_in(root / "assets"):
        made = _run([sys.executable, "-m", "autograder", "course", "init", str(root / "course"),
                     "--course-id", COURSE_ID, "--assignment", ASSIGNMENT], cwd=root)
        _assert_ran_with_the_kits_config(made)
        folder = root / "course"
        harness.hand_in(folder / "submitted" / STUDENT / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
                        harness.mutated_submission(ASSIGNMENT))
        yield folder


@pytest.fixture(scope="module")
def autograded(course):
    """``nbgrader autograde`` run from inside the course folder (its output)."""
    result = _run(["nbgrader", "autograde", ASSIGNMENT], cwd=course)
    _assert_ran_with_the_kits_config(result)
    return result


def test_the_kit_is_found_through_its_install_not_the_checkout(course):
    """In the course folder the kit's packages come from this checkout, found by the editable
    install's finder: no entry of sys.path holds them (no PYTHONPATH, the working folder is the
    course's)."""
    result = _run([sys.executable, "-c", PROBE], cwd=course)
    assert result.returncode == 0, result.stdout
    seen = json.loads(result.stdout)
    assert [Path(file).resolve() for file in seen["files"]] == [
        REPO_ROOT.resolve() / package / "__init__.py" for package in ("autograder", "solutions", "student_src")]
    for entry in seen["path"]:
        folder = Path(entry or course)
        assert not (folder / "autograder").exists() and not (folder / "solutions").exists(), entry


def test_nbgrader_autograde_in_the_folder_gives_full_marks(course, autograded):
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gradebook:
        notebook = gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, STUDENT)
        scores = {grade.name: grade.auto_score for grade in notebook.grades if grade.name in AUTOGRADED}
    assert scores == AUTOGRADED


def test_nbgrader_generate_feedback_in_the_folder_uses_the_kits_template(course, autograded):
    _assert_ran_with_the_kits_config(_run(["nbgrader", "generate_feedback", ASSIGNMENT], cwd=course))
    page = (course / "feedback" / STUDENT / ASSIGNMENT / f"{ASSIGNMENT}.html").read_bytes()
    assert has_kit_csp(page)
    page = page.decode()
    total = sum(AUTOGRADED.values())
    assert f"Score: {total:.1f} / {total + MANUAL_POINTS:.1f}; {MANUAL_POINTS:.1f} points not graded yet" in page


def test_nbgrader_export_in_the_folder_has_the_score(course, autograded, tmp_path):
    exported = tmp_path / "grades.csv"
    _assert_ran_with_the_kits_config(_run(["nbgrader", "export", f"--CsvExportPlugin.to={exported}"], cwd=course))
    [row] = list(csv.DictReader(exported.open()))
    assert (row["assignment"], row["student_id"]) == (ASSIGNMENT, STUDENT)
    assert (float(row["score"]), float(row["max_score"])) == (sum(AUTOGRADED.values()),
                                                              sum(AUTOGRADED.values()) + MANUAL_POINTS)


def test_formgrader_on_the_folder_serves_the_grades(course, autograded, tmp_path):
    with formgrader_on(course, tmp_path) as formgrader:
        [submission] = formgrader.session.get(f"{formgrader.base}/formgrader/api/submissions/{ASSIGNMENT}").json()
    assert (submission["student"], submission["autograded"]) == (STUDENT, True)
    assert (submission["code_score"], submission["max_code_score"]) == (sum(AUTOGRADED.values()),) * 2
    assert CONFIG_ERROR not in formgrader.log.read_text()


def test_without_the_kit_the_config_says_what_to_activate_and_nothing_is_graded(course, tmp_path):
    """A Python with nbgrader and every other library of the kit's venv, but not the kit (a venv
    of its own that reads the kit venv's site-packages, where the editable install's finder is
    then not installed): ``nbgrader autograde`` stops at the configuration with the message."""
    copy = Path(shutil.copytree(course, tmp_path / "course", symlinks=True))
    shutil.rmtree(copy / "autograded", ignore_errors=True)
    bare = tmp_path / "no-kit"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    (bare / "lib" / version / "site-packages" / "kit_venv_libraries.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")
    result = _run([str(bare / "bin" / "python"), "-m", "nbgrader", "autograde", ASSIGNMENT], cwd=copy)
    assert result.returncode != 0 and CONFIG_ERROR not in result.stdout, result.stdout[-4000:]
    assert "this course needs the CNN explainability course kit (Python package `autograder`)" in result.stdout
    assert f"cannot import. Run nbgrader from the kit's virtual environment: `source {REPO_ROOT}/.venv/bin/activate`" \
        in result.stdout
    assert not (copy / "autograded").exists()
