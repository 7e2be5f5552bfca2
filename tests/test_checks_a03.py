"""The hidden checks of Assignment 3: the reference passes all, each known mistake fails exactly its checks.

The student pieces are run as the notebook holds them: the solution cells' source (copied from
``solutions/guided.py`` by the build) executed in one namespace, with a mutant pasted over the
piece of its name, so that a wrong ``GuidedReLUFunction`` is the one ``guided_backprop`` uses.
"""

from __future__ import annotations

import inspect
import time
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.engine.checks import a03_guided as hidden
from autograder.authoring.source_format import function_source
from solutions import guided as reference
from tests.grading_harness import mutant_source
from tests.mutants import a03_guided as mutants

PIECES = ("input_gradient", "vanilla_saliency", "gradient_to_image", "GuidedReLUFunction",
          "guided_backprop", "guided_grad_cam")


def released_source() -> str:
    """The pieces as the release notebook shows them: nbgrader's ClearSolutions turns bodies into stubs."""
    import nbformat
    from nbgrader.preprocessors import ClearSolutions

    cell = nbformat.v4.new_code_cell(function_source(f"solutions.guided:{','.join(PIECES)}"))
    cell.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "pieces", "locked": False,
                                 "schema_version": 3, "task": False}
    kernelspec = {"name": "python3", "language": "python", "display_name": "Python 3"}
    notebook = nbformat.v4.new_notebook(cells=[cell], metadata={"kernelspec": kernelspec})
    notebook, _ = ClearSolutions().preprocess(notebook, {})
    return notebook.cells[0].source


def notebook_namespace(*replacements, source: str | None = None) -> dict:
    """The student pieces as the notebook defines them, with each replacement pasted over its namesake."""
    namespace = {"np": np, "torch": torch, "nn": nn, "F": F, "grad_cam": reference.grad_cam}
    if source is None:
        source = function_source(f"solutions.guided:{','.join(PIECES)}")
    exec(compile(source, "<solution cells>", "exec"), namespace)
    for replacement in replacements:
        _, source = mutant_source(replacement)
        exec(compile(source, f"<{replacement.__name__}>", "exec"), namespace)
    return namespace


def run_checks(namespace: dict) -> dict:
    """``{check name: exception or None}`` for every hidden check."""
    results = {}
    for check in hidden.CHECKS:
        arguments = [namespace[name] for name in inspect.signature(check).parameters]
        try:
            check(*arguments)
            results[check.__name__] = None
        except Exception as error:  # noqa: BLE001 (recorded and asserted on by the tests)
            results[check.__name__] = error
    return results


def test_every_student_piece_is_checked():
    checked = {name for check in hidden.CHECKS for name in inspect.signature(check).parameters}
    assert checked == set(PIECES)


def test_reference_passes_every_check_quickly_and_silently(capfd):
    state = torch.random.get_rng_state()
    namespace = notebook_namespace()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for check in hidden.CHECKS:
            arguments = [namespace[name] for name in inspect.signature(check).parameters]
            start = time.perf_counter()
            check(*arguments)
            assert time.perf_counter() - start < 5, f"{check.__name__} is too slow"
    assert [str(warning.message) for warning in caught] == []
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert torch.equal(torch.random.get_rng_state(), state), "a check changed the global random state"


def test_blank_release_fails_every_check():
    source = released_source()
    assert "### BEGIN SOLUTION" not in source and source.count("raise NotImplementedError()") == 7
    results = run_checks(notebook_namespace(source=source))
    assert all(isinstance(error, AssertionError) for error in results.values()), results


def test_every_check_catches_some_mutant():
    assert set().union(*mutants.FAILS.values()) == {check.__name__ for check in hidden.CHECKS}


@pytest.mark.parametrize("mutant", list(mutants.FAILS), ids=lambda mutant: mutant.__name__)
def test_known_mistake_fails_exactly_its_checks(mutant):
    state = torch.random.get_rng_state()
    results = run_checks(notebook_namespace(mutant))
    failed = {name for name, error in results.items() if error is not None}
    assert failed == mutants.FAILS[mutant], {name: str(error) for name, error in results.items() if error}
    for name in failed:
        message = str(results[name])
        assert isinstance(results[name], AssertionError), f"{name}: {results[name]!r}"
        assert message and "tensor(" not in message and len(message) < 400, message
    assert torch.equal(torch.random.get_rng_state(), state), "a check changed the global random state"


def test_rule_mutants_are_the_rules_they_name():
    """The deconvnet mutant is captum's Deconvolution; the plain-backprop mutant is the plain gradient."""
    from captum.attr import Deconvolution

    model, x, targets = hidden._resnet(), hidden._inputs(2, 5), torch.tensor([3, 8])
    deconvnet = notebook_namespace(mutants.GuidedReLUFunction__deconvnet)["guided_backprop"]
    plain = notebook_namespace(mutants.GuidedReLUFunction__plain_backprop)["guided_backprop"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        captum_deconvolution = Deconvolution(model).attribute(x.clone(), target=targets)
    assert torch.allclose(deconvnet(model, x, targets), captum_deconvolution, rtol=0, atol=1e-9)
    assert torch.allclose(plain(model, x, targets), reference.input_gradient(model, x, targets), rtol=0, atol=1e-9)
