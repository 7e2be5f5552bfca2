"""Correct answers never lose points: every alternative in tests/alternatives/ passes every hidden
check of the function it stands in for, quietly (no warning, nothing on stderr).

The grading tests (tests/test_grading_a0N.py) also paste them into notebooks and grade them
through nbgrader, where the visible checks run too: full marks there as well.
"""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch

from autograder.engine.checks import a01_hooks, a02_gradcam, a03_guided, a04_beyond, a05_imagenet
from solutions import faithfulness, gradcam, guided, hooks, layercam, layers, sanity, shapley
from tests.alternatives import a01_hooks as alt01, a02_gradcam as alt02, a03_guided as alt03, a04_beyond as alt04
from tests.alternatives import a05_imagenet as alt05

CHECK_MODULES = {"01": a01_hooks, "02": a02_gradcam, "03": a03_guided, "04": a04_beyond, "05": a05_imagenet}
ALTERNATIVE_MODULES = {"01": alt01, "02": alt02, "03": alt03, "04": alt04, "05": alt05}
REFERENCE_MODULES = (hooks, gradcam, guided, layercam, faithfulness, sanity, layers, shapley)


def reference_function(name: str):
    for module in REFERENCE_MODULES:
        if hasattr(module, name):
            return getattr(module, name)
    raise KeyError(name)


def cases():
    for assignment, module in ALTERNATIVE_MODULES.items():
        for student_name, alternatives in module.ALTERNATIVES.items():
            for alternative in alternatives:
                for check in CHECK_MODULES[assignment].CHECKS:
                    if student_name in inspect.signature(check).parameters:
                        yield pytest.param(student_name, alternative, check,
                                           id=f"{alternative.__name__}-{check.__name__}")


def test_every_student_function_has_two_alternatives():
    for assignment, module in CHECK_MODULES.items():
        graded = {name for check in module.CHECKS for name in inspect.signature(check).parameters}
        alternatives = ALTERNATIVE_MODULES[assignment].ALTERNATIVES
        assert set(alternatives) == graded, assignment
        assert all(len(alternatives[name]) >= 2 for name in graded), assignment


@pytest.mark.parametrize(("student_name", "alternative", "check"), list(cases()))
def test_alternative_passes_the_hidden_check_quietly(student_name, alternative, check, capfd):
    arguments = {name: alternative if name == student_name else reference_function(name)
                 for name in inspect.signature(check).parameters}
    state = torch.random.get_rng_state()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check(**arguments)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
    assert torch.equal(torch.random.get_rng_state(), state)
