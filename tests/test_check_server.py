"""The hidden checks run on the trusted side (autograder/engine/check_server.py) and call the student's
functions through the kernel's client (student_src/grading_client.py).

- Every check gives the same verdict through the server as in-process: the reference passes all
  of them, and every known-wrong mutant fails, through the server, each check its table in
  ``tests/mutants/`` says it fails in-process (``tests/test_checks_a0N.py``; side effects
  included: hooks left, modes, parameters, modules replaced, tensors changed in place, grad
  mode, callbacks). That it passes the others, and so loses exactly its points, the grading
  modules check through nbgrader and this server.
- The server accepts only real checks, reads a kernel's messages as plain data only (a pickle
  that would run code is refused, not run), bounds message sizes, refuses library shortcuts,
  and keeps its verdicts to itself: a kernel cannot write one.
- ScoreTestCells scores from those verdicts, not from what the notebook printed.
"""

from __future__ import annotations

import inspect
import io
import os
import pickle
import socket
import struct

import nbformat
import pytest
import torch

from autograder.engine import check_server, nbgrader_plugins
from autograder.engine.checks import a01_hooks, a02_gradcam, a03_guided, a04_beyond, a05_imagenet
from student_src import grading_client
from tests.mutants import a01_hooks as mutants01, a02_gradcam as mutants02, a03_guided as mutants03
from tests.mutants import a04_beyond as mutants04, a05_imagenet as mutants05
from tests.test_alternatives import reference_function

CHECK_MODULES = (a01_hooks, a02_gradcam, a03_guided, a04_beyond, a05_imagenet)
MUTANT_MODULES = {a01_hooks: mutants01, a02_gradcam: mutants02, a03_guided: mutants03, a04_beyond: mutants04,
                  a05_imagenet: mutants05}


@pytest.fixture(scope="module")
def server():
    running = check_server.ensure_running()
    yield running
    running.end_notebook()


def _remote_verdict(server, check, arguments: dict) -> tuple[bool, str]:
    """Run ``check`` through the server with ``arguments`` (kernel side in this process)."""
    module = check.__module__.rsplit(".", 1)[-1]
    server.begin_notebook()
    server.cell_started(7)
    try:
        grading_client.run(module, check.__name__, *[arguments[name] for name in inspect.signature(check).parameters])
    except grading_client.HiddenCheckFailed as error:
        passed, message = False, str(error)
    else:
        passed, message = True, ""
    assert server.passed_in(7) == ({f"{module}.{check.__name__}"} if passed else set())
    return passed, message


def _local_verdict(check, arguments: dict) -> bool:
    """The check run in this process: False when it fails, or when the student's function raises
    (through the server that is a failed check too: the cell stops with the student's error)."""
    try:
        check(**arguments)
    except Exception:  # noqa: BLE001 - an AssertionError or the mutant's own crash
        return False
    return True


def _checks():
    for module in CHECK_MODULES:
        for check in module.CHECKS:
            yield pytest.param(check, id=f"{module.__name__.rsplit('.', 1)[-1]}.{check.__name__}")


@pytest.mark.parametrize("check", list(_checks()))
def test_the_reference_passes_every_check_through_the_server(server, check):
    arguments = {name: reference_function(name) for name in inspect.signature(check).parameters}
    passed, message = _remote_verdict(server, check, arguments)
    assert passed, message


def _mutants():
    """(student function name, mutant, check, expected verdict): from the mutant tables where they
    exist (``MUTANTS``: which checks each mutant fails), else ``None`` (computed in-process)."""
    for module, mutants in MUTANT_MODULES.items():
        table = getattr(mutants, "MUTANTS", None)
        if table is not None and all(isinstance(fails, frozenset) for fails in table.values()):  # {function: fails}
            entries = [(function.__name__.split("__")[0], function, fails) for function, fails in table.items()]
        elif table is not None:  # {name: Mutant(replaces, function, fails)}
            entries = [(mutant.replaces, mutant.function, mutant.fails) for mutant in table.values()]
        else:
            entries = [(name.split("__")[0], function, None) for name, function in vars(mutants).items()
                       if "__" in name and callable(function) and not name.startswith("_")]
        for student_name, function, fails in entries:
            for check in module.CHECKS:
                if student_name in inspect.signature(check).parameters:
                    expected = None if fails is None else check.__name__ not in fails
                    if expected:
                        continue  # passing checks it should: the class run grades each mutant to the point
                    yield pytest.param(student_name, function, check, expected,
                                       id=f"{getattr(function, '__name__', None) or function.func.__name__}-{check.__name__}-{len(fails or ())}")


@pytest.mark.parametrize(("student_name", "mutant", "check", "expected"), list(_mutants()))
def test_a_mutant_gets_the_same_verdict_through_the_server(server, student_name, mutant, check, expected):
    arguments = {name: mutant if name == student_name else reference_function(name)
                 for name in inspect.signature(check).parameters}
    remote, message = _remote_verdict(server, check, arguments)
    assert remote == (_local_verdict(check, arguments) if expected is None else expected), message


# --- what the server refuses ------------------------------------------------------------------


def _raw_exchange(server, payload: bytes) -> dict:
    """Send one raw frame to the server; return its verdict (read as the kernel would)."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(server.address)
    with connection:
        connection.sendall(struct.pack(">Q", len(payload)) + payload)
        return grading_client.receive_frame(connection, from_trusted_side=True)


def _frame(message) -> bytes:
    buffer = io.BytesIO()
    torch.save(message, buffer)
    return buffer.getvalue()


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch /tmp/xai-kit-pickle-ran",))


def test_a_kernel_message_that_would_run_code_when_unpickled_is_refused(server, tmp_path):
    marker = "/tmp/xai-kit-pickle-ran"
    if os.path.exists(marker):
        os.unlink(marker)
    for payload in (pickle.dumps(_RunsCode()), _frame({"op": "run", "module": _RunsCode()})):
        verdict = _raw_exchange(server, payload)
        assert verdict["passed"] is False
    assert not os.path.exists(marker)


@pytest.mark.parametrize(("module", "check"), [
    ("a01_hooks", "reference"), ("a01_hooks", "_resnet"), ("common", "call_student"), ("../solutions", "hooks"),
    ("a01_hooks", "check_nothing"), ("a01_hooks", "torch"),
])
def test_only_real_checks_run(server, module, check):
    server.begin_notebook()
    server.cell_started(1)
    verdict = _raw_exchange(server, _frame({"op": "run", "module": module, "check": check, "functions": [],
                                            "token": os.environ[check_server.TOKEN_ENV]}))
    assert verdict["passed"] is False
    assert server.passed_in(1) == set()


def test_an_oversized_message_is_refused_without_reading_it(server):
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(server.address)
    with connection:
        connection.sendall(struct.pack(">Q", grading_client.MAX_FRAME_BYTES + 1))
        verdict = grading_client.receive_frame(connection, from_trusted_side=True)
    assert verdict["passed"] is False


def test_a_forged_verdict_from_the_kernel_counts_for_nothing(server):
    server.begin_notebook()
    server.cell_started(2)
    verdict = _raw_exchange(server, _frame({"op": "verdict", "passed": True, "message": "",
                                            "token": os.environ[check_server.TOKEN_ENV]}))
    assert verdict["passed"] is False
    assert server.passed_in(2) == set()


def test_a_student_exception_reaches_the_check_by_name(server):
    def top_channels(model, layer_name, x, k=5):
        raise ValueError("student bug")

    passed, message = _remote_verdict(server, a01_hooks.check_top_channels, {"top_channels": top_channels})
    assert not passed and "ValueError: student bug" in message


# --- scoring from verdicts --------------------------------------------------------------------


def _test_cell(source: str, outputs) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "points": 2, "grade_id": "t"}
    cell.outputs = outputs
    return cell


def _score(cell, verdicts) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(cells=[cell])
    nbgrader_plugins.ScoreTestCells().preprocess(notebook, {nbgrader_plugins.VERDICTS: verdicts})
    return notebook.cells[0]


SOURCE = 'print("ok")\n### BEGIN HIDDEN TESTS\nhidden.run("a01_hooks", "check_top_channels", top_channels)\n'


def test_a_printed_score_or_pass_line_counts_for_nothing():
    result = nbformat.v4.new_output("execute_result", data={"text/plain": "2.0"}, execution_count=1)
    cell = _score(_test_cell(SOURCE, [result, nbformat.v4.new_output("stream", name="stdout", text="passed\n")]), {})
    assert [output.output_type for output in cell.outputs] == ["display_data", "stream", "error"]
    from nbgrader.utils import determine_grade

    assert determine_grade(cell)[0] == 0


def test_a_cell_whose_checks_passed_on_the_trusted_side_keeps_its_points():
    from nbgrader.utils import determine_grade

    cell = _score(_test_cell(SOURCE, []), {0: {"a01_hooks.check_top_channels": True}})
    assert determine_grade(cell) == (2.0, 2.0)
    failed = _score(_test_cell(SOURCE, []), {0: {"a01_hooks.check_top_channels": False}})
    assert determine_grade(failed)[0] == 0


def test_feedback_outputs_are_cut_to_a_bounded_size():
    cell = nbformat.v4.new_code_cell("print('x' * 10**7)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * 10**6),
                    nbformat.v4.new_output("display_data", data={"text/plain": "y" * 10**6, "image/png": "i" * 10**7}),
                    nbformat.v4.new_output("error", ename="E", evalue="z" * 10**6, traceback=["t" * 10**6])]
    limiter = nbgrader_plugins.LimitOutputCharacters()
    limiter.preprocess_cell(cell, {}, 0)
    assert len(str(cell.outputs)) < 5 * (limiter.max_characters + 200)
    assert "characters cut by the grader" in cell.outputs[0].text
    assert "image/png" not in cell.outputs[1].data
