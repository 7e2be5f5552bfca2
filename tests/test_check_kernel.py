"""The check kernel (autograder/engine/check_kernel.py) starts only when hidden lines are due.

A notebook whose visible tests all fail (a blank one) never needs the hidden checks, so it must
not pay for a second kernel and its set-up cell; a notebook that reaches hidden lines must have,
in that kernel, every set-up, tools and solution cell before them, run in the notebook's order.
Ordinary ``python3`` kernels here (no sandbox): what is tested is the order of the cells.
"""

from __future__ import annotations

import pytest

from autograder.engine.check_kernel import CheckKernel


@pytest.fixture()
def checker(tmp_path):
    kernel = CheckKernel("python3", str(tmp_path), timeout=60)
    yield kernel
    kernel.shutdown()


def _text(outputs) -> str:
    return "".join(output.get("text", "") for output in outputs if output.get("output_type") == "stream")


def test_function_cells_alone_start_no_kernel(checker):
    checker.run_function_cell("import os\nsetup_done = True")
    checker.run_function_cell("def f(x):\n    raise NotImplementedError()")
    assert checker.km is None and not checker.healthy


def test_the_first_hidden_lines_start_the_kernel_with_the_cells_before_them_in_order(checker):
    checker.run_function_cell("order = ['setup']")
    checker.run_function_cell("order.append('tools')")
    checker.run_function_cell("def f(x):\n    return x + 1\norder.append('solution')")
    assert checker.km is None
    assert _text(checker.run_hidden("print(order, f(1))")) == "['setup', 'tools', 'solution'] 2\n"
    # Now up: a later cell runs at once, once (not replayed again).
    checker.run_function_cell("order.append('later')")
    assert _text(checker.run_hidden("print(order)")) == "['setup', 'tools', 'solution', 'later']\n"


def test_a_kernel_that_died_is_started_again_with_every_cell_replayed_once(checker):
    checker.run_function_cell("order = ['setup']")
    checker.run_hidden("pass")
    checker.km.shutdown_kernel(now=True)  # as if the student's code had killed it
    checker.run_function_cell("order.append('solution')")
    assert _text(checker.run_hidden("print(order)")) == "['setup', 'solution']\n"
