"""The hidden checks of Assignment 2: the reference passes all of them, each known-wrong mutant
fails exactly the checks listed for it in tests/mutants/a02_gradcam.py and passes the others."""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch

from autograder.engine.checks import a02_gradcam
from solutions import gradcam
from tests.mutants.a02_gradcam import MUTANTS

STUDENT_FUNCTIONS = ("activations_and_gradients", "gradcam_channel_weights", "scale_cams", "grad_cam")


def student_function_of(check) -> str:
    """The student function a check takes: its one parameter is named after it."""
    (parameter,) = inspect.signature(check).parameters
    return parameter


CHECKS_BY_FUNCTION = {name: [c for c in a02_gradcam.CHECKS if student_function_of(c) == name]
                      for name in STUDENT_FUNCTIONS}


def test_checks_are_listed_and_take_one_student_function():
    defined = {name for name, value in vars(a02_gradcam).items() if name.startswith("check_") and callable(value)}
    assert defined == {check.__name__ for check in a02_gradcam.CHECKS}
    assert all(student_function_of(check) in STUDENT_FUNCTIONS for check in a02_gradcam.CHECKS)
    assert all(CHECKS_BY_FUNCTION.values())


@pytest.mark.parametrize("check", a02_gradcam.CHECKS, ids=lambda check: check.__name__)
def test_reference_passes_quietly(check, capfd):
    """No exception, no warning, nothing on stdout or stderr (nbgrader fails a cell that writes to stderr)."""
    state = torch.random.get_rng_state()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check(getattr(gradcam, student_function_of(check)))
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
    assert torch.equal(torch.random.get_rng_state(), state), "a check changed the global random state"


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_fails_exactly_its_checks(name):
    mutant = MUTANTS[name]
    checks_of_function = CHECKS_BY_FUNCTION[mutant.replaces]
    assert mutant.fails <= {check.__name__ for check in checks_of_function}, "unknown check names"
    failed = set()
    for check in checks_of_function:
        try:
            check(mutant.function)
        except AssertionError as error:
            message = str(error)
            assert message and "tensor(" not in message and len(message) < 400, message
            failed.add(check.__name__)
    assert failed == mutant.fails


def test_every_check_catches_some_mutant():
    caught = set().union(*(mutant.fails for mutant in MUTANTS.values()))
    assert caught == {check.__name__ for check in a02_gradcam.CHECKS}
