"""Assignment 4's hidden checks against the reference and known-wrong implementations.

The student functions are run as they are in a notebook: their source (copied whole from
``solutions/*.py`` by the build) is executed in one namespace that holds only the names a
student may use, so one student function calls the *other student functions*, and a mistake
spreads the way it would in a submission. A mutant replaces the function of its name there.
"""

from __future__ import annotations

import ast
import builtins
import copy
import inspect
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.engine.checks import a04_beyond as hidden
from autograder.authoring.source_format import function_source
from solutions import gradcam
from tests.grading_harness import mutant_source
from tests.mutants.a04_beyond import MUTANTS
from tests.quiet import runs_quietly

#: Student functions of Assignment 4, by solutions module.
STUDENT_FUNCTIONS = {
    "solutions.layercam": ["layer_cam", "fuse_layer_cams"],
    "solutions.faithfulness": ["deletion_curve", "insertion_curve", "area_under_curve"],
    "solutions.sanity": ["spearman_rank_correlation", "cascading_randomization"],
}
#: What the notebook's set-up provides; the Assignment 2 helpers are the reference ones at grading.
PROVIDED = {"torch": torch, "F": F, "nn": nn, "np": np, "copy": copy,
            "activations_and_gradients": gradcam.activations_and_gradients, "scale_cams": gradcam.scale_cams}
#: The global names each student function uses (its docstring's promise, kept honest here).
NAMES_USED = {
    "layer_cam": {"activations_and_gradients", "scale_cams", "F", "nn", "torch"},
    "fuse_layer_cams": {"activations_and_gradients", "scale_cams", "F", "nn", "torch"},
    "deletion_curve": {"torch", "F", "nn"},
    "insertion_curve": {"torch", "nn", "deletion_curve"},
    "area_under_curve": {"torch"},
    "spearman_rank_correlation": {"torch"},
    "cascading_randomization": {"torch", "nn", "copy", "spearman_rank_correlation"},
}
CHECKS = {check.__name__: check for check in hidden.CHECKS}


def notebook_namespace(*swapped) -> dict:
    """The student functions as a notebook defines them, with each mutant in ``swapped`` swapped in."""
    namespace = dict(PROVIDED)
    for module, names in STUDENT_FUNCTIONS.items():
        exec(compile(function_source(f"{module}:{','.join(names)}"), module, "exec"), namespace)
    for mutant in swapped:
        name, source = mutant_source(mutant)
        exec(compile(source, mutant.__name__, "exec"), namespace)
    return namespace


def student_function_of(check) -> str:
    """A check's only parameter is named after the student function it takes."""
    (parameter,) = inspect.signature(check).parameters
    return parameter


def global_names(function) -> set:
    """Global names a function's code (nested functions included) refers to, builtins excluded."""
    names, stack = set(), [function.__code__]
    while stack:
        code = stack.pop()
        names.update(code.co_names)
        stack.extend(const for const in code.co_consts if isinstance(const, types.CodeType))
    return {name for name in names if name in function.__globals__ and not hasattr(builtins, name)}


def depends_on(namespace: dict, function_name: str, target: str, seen=None) -> bool:
    """Whether ``function_name`` is ``target`` or calls it, directly or through other student functions."""
    if function_name == target:
        return True
    seen = seen or set()
    seen.add(function_name)
    return any(depends_on(namespace, used, target, seen)
               for used in global_names(namespace[function_name]) & set(NAMES_USED) - seen)


def failing_checks(namespace: dict, only=None) -> set:
    failed = set()
    for name, check in CHECKS.items():
        if only is not None and name not in only:
            continue
        try:
            check(namespace[student_function_of(check)])
        except AssertionError:
            failed.add(name)
    return failed


def test_every_check_is_listed_and_takes_one_student_function():
    defined = {name for name, value in vars(hidden).items() if name.startswith("check_") and callable(value)}
    assert defined == set(CHECKS)
    assert {student_function_of(check) for check in CHECKS.values()} == set(NAMES_USED)


def test_student_functions_use_only_the_names_they_declare():
    """Names in the code *and* the signature (annotations are evaluated when a notebook runs the def)."""
    namespace = notebook_namespace()
    for module, names in STUDENT_FUNCTIONS.items():
        for name in names:
            (definition,) = ast.parse(function_source(f"{module}:{name}")).body
            used = {node.id for node in ast.walk(definition) if isinstance(node, ast.Name)} & set(namespace)
            assert used - set(dir(builtins)) == NAMES_USED[name], name
            assert global_names(namespace[name]) <= NAMES_USED[name] <= set(PROVIDED) | set(NAMES_USED), name


def test_reference_passes_every_check_quietly(capfd):
    """No failure, no warning, nothing on stdout or stderr, the global random state untouched."""
    with runs_quietly(capfd):
        assert failing_checks(notebook_namespace()) == set()


@pytest.mark.parametrize("mutant", list(MUTANTS), ids=lambda mutant: mutant.__name__)
def test_mutant_fails_exactly_its_checks(mutant):
    namespace = notebook_namespace(mutant)
    student_name = mutant.__name__.split("__")[0]
    # A check can only change if its function is the mutated one or calls it; the others pass
    # with the reference (test above), so only the affected checks are run again.
    affected = {name for name, check in CHECKS.items()
                if depends_on(namespace, student_function_of(check), student_name)}
    assert MUTANTS[mutant] <= affected
    assert failing_checks(namespace, only=affected) == MUTANTS[mutant]

