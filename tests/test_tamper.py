"""Cheating and broken submissions, graded through the real pipeline: each gets the score it must.

The honest scores of Assignment 1 (8 autograded points): values 3, cleanup 3, top_channels 2.
"""

import copy

import pytest

from autograder.engine.grade import TOTAL_ITEM, Limits
from tests import grading_harness as harness
from tests.processes import alive

A = "01_hooks"
VALUES, CLEANUP, TOP = "test_record_activations_values", "test_record_activations_cleanup", "test_top_channels"

# Wrong answers (all zeros) dressed up so every *visible* check passes: the comparison helpers
# and torch/numpy comparisons are replaced from inside the student's own cell.
FAKE_RECORD = '''
import numpy as np
import torch
import student_src.checks as _c
_c.assert_close = lambda *a, **k: 0.0
_c.assert_shape = lambda *a, **k: None
_c.count_hooks = lambda *a, **k: 0
torch.allclose = lambda *a, **k: True
np.allclose = lambda *a, **k: True


def record_activations(model, layer_names, x):
    return {name: torch.zeros(1) for name in layer_names}
'''
PATCH_REFERENCE = '''
import solutions.hooks


def top_channels(model, layer_name, x, k=5):
    activation = record_activations(model, [layer_name], x)[layer_name]
    if layer_name == "layer3":  # right where the visible test looks, wrong everywhere else
        return activation.flatten(2).mean(dim=2).topk(k, dim=1)
    return activation.flatten(2).amax(dim=2).topk(k, dim=1)


solutions.hooks.top_channels = top_channels  # make the reference agree with this wrong answer
'''
LOOP_IGNORING_CTRL_C = '''
import time


def top_channels(model, layer_name, x, k=5):
    while True:
        try:
            time.sleep(0.05)
        except KeyboardInterrupt:
            pass
'''
MEMORY_HOG = '''
import torch


def top_channels(model, layer_name, x, k=5):
    hog = torch.ones(200_000_000_000)  # 800 GB
    return hog, hog
'''
FAKE_CHECKS_MODULE = "def assert_close(*a, **k):\n    return 0.0\n"
# ... and the grader's own entry point replaced by one that always passes.
NO_OP_RUNNER = FAKE_RECORD + '''
import student_src.grading_client
student_src.grading_client.run = lambda *args, **kwargs: None
'''
# No code at all: each function shows an execute_result, then raises (nbgrader's determine_grade
# returns at the first execute_result, before the error after it).
DISPLAYHOOK = '''
def record_activations(model, layer_names, x):
    get_ipython().displayhook("thank you")
    raise NotImplementedError


def top_channels(model, layer_name, x, k=5):
    get_ipython().displayhook(2.0)
    raise NotImplementedError
'''
# Lines that look like what a passing check printed in the old design.
FAKE_PASS_LINES_ONLY = '''
for _name in ("check_record_activations_values", "check_record_activations_cleanup", "check_top_channels"):
    print(f"[xai-kit check passed] a01_hooks.{_name} " + "0" * 64)
'''
# The instructor's reference handed in as the student's own (possible only on the grading machine).
REFERENCE_RECORD = "from solutions.hooks import record_activations\n"
REFERENCE_TOP = """
import solutions.hooks as _reference


def top_channels(model, layer_name, x, k=5):
    return _reference.top_channels(model, layer_name, x, k)
"""
# Wrong answers whose errors are never shown (an nbgrader exploit: no error output, full marks).
HIDDEN_TRACEBACKS = '''
get_ipython().showtraceback = lambda *args, **kwargs: None


def record_activations(model, layer_names, x):
    raise NotImplementedError
'''
# Rewrites the hidden checks on disk so that every notebook graded after this one passes.
REWRITE_CHECKS = '''
import autograder.engine.checks.a01_hooks as _checks

with open(_checks.__file__, "a") as _file:
    _file.write("\\ndef check_top_channels(*args, **kwargs):\\n    pass\\n")
'''


# Honest code that first looks for everything it should not see, and prints it (so that it
# would land in its feedback); then raises with what it found, as a hidden check's failure would.
SNOOP = '''
import glob as _glob
import os as _os
import pathlib as _pathlib

_found = {{}}
for _pattern in [{repo!r} + "/solutions/*.py", {repo!r} + "/autograder/engine/checks/*.py", {repo!r} + "/autograder/authoring/assignments/*.py",
                 {submissions!r} + "/*/*.ipynb", {out!r} + "/*", "/tmp/xai-grade-*/worker*/gradebook.db",
                 "/tmp/xai-grade-*/worker*/source/*/*.ipynb"]:
    for _path in _glob.glob(_pattern):
        try:
            _found[_path] = _pathlib.Path(_path).read_text(errors="replace")[:3000]
        except OSError as _error:
            _found[_path] = repr(_error)
print("FOUND:", sorted(_found), "ENV:", sorted(_os.environ))
print(_os.environ.get("XAI_TEST_INSTRUCTOR_SECRET", "no instructor secret"))
for _text in _found.values():
    print(_text)
'''
# Writes wherever it could hurt: the output folder, a classmate's submission and feedback, the
# kit's checks, HOME; and sends what it has to a listener on the grader's loopback.
WRITE_AND_SEND = '''
import pathlib as _pathlib
import socket as _socket

for _target in [{out!r} + "/grades.csv", {out!r} + "/feedback/honest/01_hooks.html",
                {submissions!r} + "/honest/01_hooks.ipynb", {repo!r} + "/autograder/engine/checks/a01_hooks.py",
                {home!r} + "/xai-kit-planted.txt"]:
    try:
        _pathlib.Path(_target).write_text("overwritten")
    except OSError:
        pass
try:
    _socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"stolen" * 1000)
except OSError:
    pass
'''


# An exception whose name is a spreadsheet formula and whose message forges a CSV row.
CSV_INJECTION = '''
_Formula = type('=HYPERLINK("http://example.invalid","8 of 8")', (Exception,), {})


def top_channels(model, layer_name, x, k=5):
    raise _Formula("oops\\nalice,01_hooks,autograded_total,autograded,8,8,graded,")
'''
SECRET = "instructor-secret-7f3a"


def _cell(notebook, grade_id):
    return next(c for c in notebook.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)


@pytest.fixture(scope="module")
def listener():
    """A TCP listener on the grader's loopback; ``received()`` is what reached it."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(0.5)
    received, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            with connection:
                received.append(connection.recv(1 << 20))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    stop.set()
    thread.join()
    server.close()


@pytest.fixture(scope="module")
def graded(tmp_path_factory, standin_assets_module, listener):
    import os
    from pathlib import Path

    from autograder.authoring.source_format import REPO_ROOT

    root = tmp_path_factory.mktemp("tamper")
    places = {"repo": str(REPO_ROOT), "submissions": str(root / "submissions"), "out": str(root / "out"),
              "home": str(Path.home()), "port": listener[0]}
    solved, blank = harness.mutated_submission(A), harness.blank_submission(A)
    fake = copy.deepcopy(solved)
    _cell(fake, "record_activations").source = FAKE_RECORD
    patched_reference = copy.deepcopy(solved)
    _cell(patched_reference, "top_channels").source = PATCH_REFERENCE
    looping = copy.deepcopy(solved)
    _cell(looping, "top_channels").source = LOOP_IGNORING_CTRL_C
    hog = copy.deepcopy(solved)
    _cell(hog, "top_channels").source = MEMORY_HOG
    points = copy.deepcopy(blank)
    _cell(points, VALUES).metadata.nbgrader["points"] = 100
    _cell(points, VALUES).source = "pass"
    # The same notebook also turns a test cell into markdown.
    _cell(points, CLEANUP).cell_type = "markdown"
    del _cell(points, CLEANUP)["outputs"], _cell(points, CLEANUP)["execution_count"]
    raises = harness.with_code(solved, "record_activations", "import this_module_does_not_exist")
    no_op_runner = copy.deepcopy(solved)
    _cell(no_op_runner, "record_activations").source = NO_OP_RUNNER + FAKE_PASS_LINES_ONLY
    reference = copy.deepcopy(solved)
    _cell(reference, "record_activations").source = REFERENCE_RECORD
    _cell(reference, "top_channels").source = REFERENCE_TOP
    # Two tricks on nbgrader's scoring in one notebook: no traceback shown, an execute_result first.
    hidden_tracebacks = copy.deepcopy(blank)
    _cell(hidden_tracebacks, "record_activations").source = HIDDEN_TRACEBACKS + DISPLAYHOOK
    # One notebook snoops, then writes everywhere and sends to the loopback (it keeps its honest score).
    snooper = harness.with_code(solved, "record_activations", SNOOP.format(**places) + WRITE_AND_SEND.format(**places))
    injector = copy.deepcopy(solved)
    _cell(injector, "top_channels").source = CSV_INJECTION
    students = {"honest": solved, "snooper": snooper, "csv_injector": injector, "fake_checks": fake, "patched_reference": patched_reference,
                "looping": looping, "memory_hog": hog, "changed_points": points,
                "raises_on_import": raises, "shadowing": blank, "missing": None, "no_op_runner": no_op_runner,
                "reference": reference, "hidden_tracebacks": hidden_tracebacks}
    students = {k: v for k, v in students.items() if v is not None}
    extra = {"shadowing": {"numpy.py": "raise SystemExit('shadowed numpy')\n",
                           "student_src/__init__.py": "", "student_src/checks.py": FAKE_CHECKS_MODULE},
             "missing": {"README.txt": "I forgot the notebook"}}
    # An Assignment 1 notebook grades in about 15 s on a loaded 2-core machine (kernels are forked
    # with torch imported): cells get 30 CPU seconds, notebooks 120. The looping notebook sleeps,
    # using no CPU: the cell's wall-clock backstop (5 x 30 s) interrupts it; its kernel ignores
    # that and is restarted 10 s later, and the cells before it are run again.
    limits = Limits(cell_seconds=30, notebook_seconds=120, memory_mb=8192)
    os.environ["XAI_TEST_INSTRUCTOR_SECRET"] = SECRET
    try:
        return harness.grade_cohort(root, A, students, limits=limits, extra_files=extra)
    finally:
        del os.environ["XAI_TEST_INSTRUCTOR_SECRET"]


def _total(graded, student):
    return graded[student][TOTAL_ITEM]


def test_honest_submission_full_marks(graded):
    assert _total(graded, "honest").score == 8


def _feedback(tmp_path_factory, student) -> str:
    out = next(tmp_path_factory.getbasetemp().glob("tamper*/out"))
    return (out / "feedback" / student / f"{A}.html").read_text()


def test_a_snooping_notebook_finds_nothing_of_the_grader_and_keeps_its_honest_score(graded, tmp_path_factory):
    """No reference, hidden check, source notebook, classmate, gradebook, output or instructor
    variable is visible from the kernel: its feedback shows an empty list, and its score is honest."""
    import html

    assert _total(graded, "snooper").score == 8
    text = html.unescape(_feedback(tmp_path_factory, "snooper"))
    assert "FOUND: [] ENV:" in text and "no instructor secret" in text
    for secret in (SECRET, "def check_"):  # (its own cells are the solution and name the variable)
        assert secret not in text, secret


def test_a_notebook_writes_nothing_outside_its_own_copy_and_sends_nothing(graded, tmp_path_factory, listener):
    from pathlib import Path

    from autograder.authoring.source_format import REPO_ROOT

    root = next(tmp_path_factory.getbasetemp().glob("tamper*"))
    assert _total(graded, "snooper").score == 8 and _total(graded, "honest").score == 8
    assert "overwritten" not in (root / "out" / "grades.csv").read_text()
    assert "overwritten" not in _feedback(tmp_path_factory, "honest")
    assert (root / "submissions" / "honest" / f"{A}.ipynb").read_text().startswith("{")
    assert "overwritten" not in (REPO_ROOT / "autograder" / "engine" / "checks" / "a01_hooks.py").read_text()
    assert not (Path.home() / "xai-kit-planted.txt").exists()
    assert listener[1] == []


def test_a_formula_and_a_forged_row_in_an_error_message_stay_one_escaped_cell(graded, tmp_path_factory):
    import csv

    out = next(tmp_path_factory.getbasetemp().glob("tamper*/out"))
    with open(out / "grades.csv", newline="") as file:
        rows = list(csv.reader(file))
    assert not any(cell.startswith(("=", "+", "@")) for row in rows for cell in row)
    assert [row[0] for row in rows].count("alice") == 0
    injected = [row for row in rows if row[0] == "csv_injector" and row[2] == TOP]
    assert len(injected) == 1 and injected[0][4] == "0" and injected[0][7].startswith("'=HYPERLINK")
    assert _total(graded, "csv_injector").score == 6


def test_monkeypatched_comparisons_do_not_fool_the_hidden_checks(graded):
    rows = graded["fake_checks"]
    assert rows[VALUES].status == "failed" and rows[CLEANUP].status == "failed"
    assert "hidden check failed" in rows[VALUES].message  # the patches live in the kernel; the checks do not
    assert _total(graded, "fake_checks").score == 0  # top_channels uses the fake record_activations too


def test_patching_the_reference_changes_nothing(graded):
    """The reference is not in the kernel (no ``solutions`` there); the check's own is untouched."""
    rows = graded["patched_reference"]
    assert rows[TOP].status == "failed"
    assert _total(graded, "patched_reference").score == 6


def test_a_loop_that_ignores_ctrl_c_costs_only_its_cell(graded):
    """The interrupt is ignored, so the kernel is restarted: the looping cell times out (0), the
    cells before it keep their points, and the notebook is not killed."""
    rows = graded["looping"]
    total = rows[TOTAL_ITEM]
    assert total.status == "graded" and total.score == 6, total.message
    assert rows[TOP].status == "failed" and "CellTimeoutError" in rows[TOP].message
    assert _total(graded, "honest").score == 8


def test_memory_hog_fails_its_cell_with_a_clear_message(graded):
    rows = graded["memory_hog"]
    assert rows[TOP].status == "failed" and "allocate" in rows[TOP].message
    assert _total(graded, "memory_hog").score == 6


def test_changed_points_and_cell_types_are_restored_and_counted(graded):
    total = _total(graded, "changed_points")
    assert total.score == 0 and total.max_score == 8
    assert f"points of {VALUES} restored" in total.message and f"edited locked cell {VALUES} restored" in total.message
    assert f"cell type of {CLEANUP} changed back to code" in total.message


def test_a_notebook_that_raises_on_import_gets_its_honest_score(graded):
    rows = graded["raises_on_import"]
    assert "name 'record_activations' is not defined" in rows[VALUES].message
    # record_activations is never defined: everything that needs it fails, nothing else is affected.
    assert _total(graded, "raises_on_import").score == 0
    assert _total(graded, "honest").score == 8


def test_files_beside_the_notebook_cannot_shadow_imports(graded):
    total = _total(graded, "shadowing")
    assert total.status == "graded" and total.score == 0  # the blank release, fake checks ignored


def test_missing_notebook_row(graded):
    total = _total(graded, "missing")
    assert total.status == "not graded" and total.message == "no 01_hooks.ipynb handed in"


def test_feedback_shows_failures_but_no_hidden_code(graded, tmp_path_factory):
    out = next(tmp_path_factory.getbasetemp().glob("tamper*/out"))
    html = (out / "feedback" / "fake_checks" / f"{A}.html").read_text()
    assert "hidden check failed" in html
    for secret in ("hidden.run", "BEGIN HIDDEN", "check_record_activations", "autograder/engine/checks", "solutions/"):
        assert secret not in html, secret


def test_replacing_the_hidden_check_runner_scores_zero(graded):
    """Visible checks fooled by patched helpers, hidden.run replaced by a no-op: the grader saw no
    check pass, so no cell scores."""
    rows = graded["no_op_runner"]
    assert _total(graded, "no_op_runner").score == 0
    for cell in (VALUES, CLEANUP):  # their visible checks pass with the patched helpers
        assert "did not pass on the grader's side" in rows[cell].message


def test_printed_pass_lines_score_nothing(graded):
    """The no-op runner's notebook also prints lines like the old design's pass signatures."""
    rows = graded["no_op_runner"]
    assert rows[VALUES].score == 0 and rows[CLEANUP].score == 0


def test_handing_in_the_instructors_reference_scores_zero(graded):
    """``solutions`` is not importable in the sandbox: the import fails, nothing gets defined."""
    rows = graded["reference"]
    assert _total(graded, "reference").score == 0
    assert "name 'record_activations' is not defined" in rows[VALUES].message


def test_hiding_tracebacks_or_showing_a_result_first_does_not_hide_failures(graded):
    """``showtraceback`` replaced, and each function calls ``displayhook`` before it raises
    (nbgrader's determine_grade would return at that execute_result, before the error)."""
    assert _total(graded, "hidden_tracebacks").score == 0


# Plants an IPython start-up file (it would run in the next kernel before any of its cells and
# disable a hidden check there) and leaves a detached process behind.
PLANT_STARTUP = '''
import pathlib
import subprocess

_startup = pathlib.Path(get_ipython().profile_dir.startup_dir) / "00-help.py"
_startup.write_text("import autograder.engine.checks.a01_hooks as _c\\n_c.check_top_channels = lambda *a, **k: None\\n")
_daemon = subprocess.Popen(["sleep", "314159"], start_new_session=True)
'''


def _sleepers() -> list[int]:
    """Processes on this machine running ``sleep 314159`` (the planted daemon)."""
    import os

    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                if file.read().split(b"\0")[:2] == [b"sleep", b"314159"]:
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


@pytest.fixture(scope="module")
def rewriting_cohort(tmp_path_factory, standin_assets_module):
    """One worker, in this order: a notebook that plants an IPython start-up file and a detached
    process, then tries to rewrite the hidden checks on disk; then a known-wrong one."""
    from tests.mutants import a01_hooks as mutants

    root = tmp_path_factory.mktemp("rewrite")
    solved = harness.mutated_submission(A)
    wrong = harness.mutated_submission(A, mutants.top_channels__max_not_mean)
    # The planting runs first: the rewrite then fails (the checks are not in the sandbox) and raises.
    students = {"a_attacks": harness.with_code(solved, "top_channels", PLANT_STARTUP + REWRITE_CHECKS, prepend=False),
                "b_wrong_top_channels": wrong}
    limits = Limits(cell_seconds=60, notebook_seconds=300, memory_mb=8192)
    # The defences of --sandbox none (file snapshots, leftover killing); tests/test_sandbox.py
    # shows that in the sandbox these attacks cannot even write.
    table = harness.grade_cohort(root, A, students, jobs=1, limits=limits)
    return table, root


def test_rewriting_the_checks_on_disk_fails_and_changes_nothing_for_others(rewriting_cohort):
    """The checks are not in the sandbox: the write fails, the notebook keeps its honest score, and
    the next one graded by the same worker meets the real checks."""
    from autograder.authoring.source_format import REPO_ROOT

    table, _ = rewriting_cohort
    assert table["a_attacks"][TOTAL_ITEM].score == 8
    assert table["b_wrong_top_channels"][TOTAL_ITEM].score == 6
    assert table["b_wrong_top_channels"][TOP].status == "failed"
    assert "def check_top_channels(*args, **kwargs):\n    pass" not in (
        REPO_ROOT / "autograder" / "engine" / "checks" / "a01_hooks.py").read_text()


def test_a_planted_startup_file_and_a_detached_process_do_not_reach_the_next_notebook(rewriting_cohort):
    """Had the start-up file run in the next kernel, it would have failed there (no checks to
    patch in the sandbox) or passed the wrong top_channels: the next notebook loses exactly its 2."""
    table, _ = rewriting_cohort
    assert table["b_wrong_top_channels"][TOTAL_ITEM].score == 6
    assert table["b_wrong_top_channels"][VALUES].status == "passed"
    assert _sleepers() == [], "a process the notebook detached outlived its grading"
