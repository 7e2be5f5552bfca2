"""Assignment 5's hidden checks against the reference and known-wrong implementations, in-process.

The student functions run as a notebook defines them (their source copied from ``solutions/``),
in one namespace, so ``region_shapley`` calls the *student's* ``coalition_scores``. Also: the
tolerance of the sampling check, measured against the mistakes it must catch.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from autograder.engine.checks import a05_imagenet as hidden
from autograder.authoring.source_format import function_source
from solutions import shapley
from student_src.evaluation import grid_regions
from student_src.probe_models import InteractionCNN
from tests.grading_harness import mutant_source
from tests.mutants.a05_imagenet import MUTANTS, region_shapley__credits_previous_region
from tests.quiet import runs_quietly

STUDENT_FUNCTIONS = {"solutions.layers": ["last_conv_layer"],
                     "solutions.shapley": ["coalition_scores", "region_shapley"]}
CHECKS = {check.__name__: check for check in hidden.CHECKS}


def notebook_namespace(*swapped) -> dict:
    namespace = {"torch": torch, "nn": nn}
    for module, names in STUDENT_FUNCTIONS.items():
        exec(compile(function_source(f"{module}:{','.join(names)}"), module, "exec"), namespace)
    for mutant in swapped:
        name, source = mutant_source(mutant)
        exec(compile(source, mutant.__name__, "exec"), namespace)
    return namespace


def failing_checks(namespace: dict) -> set:
    failed = set()
    for name, check in CHECKS.items():
        (parameter,) = inspect.signature(check).parameters
        try:
            check(namespace[parameter])
        except AssertionError:
            failed.add(name)
    return failed


def test_reference_passes_every_check_quietly(capfd):
    with runs_quietly(capfd):
        assert failing_checks(notebook_namespace()) == set()
    assert {name for name, value in vars(hidden).items() if name.startswith("check_")} == set(CHECKS)


@pytest.mark.parametrize("mutant", list(MUTANTS), ids=lambda mutant: mutant.__name__)
def test_mutant_fails_exactly_its_checks(mutant):
    assert failing_checks(notebook_namespace(mutant)) == MUTANTS[mutant]


def test_exact_enumeration_agrees_with_captum():
    """The grader's exact values are captum's ShapleyValues (every order enumerated), to float64 noise."""
    from captum.attr import ShapleyValues

    model = InteractionCNN(61).eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    regions = grid_regions(8, 8, 2)
    exact, sigma = shapley.exact_region_shapley(model, x, [0, 3], regions, 0.25)
    library = ShapleyValues(model).attribute(x, baselines=0.25, target=[0, 3], feature_mask=regions[None, None])
    per_region = library[:, 0, [0, 0, 4, 4], [0, 4, 0, 4]]  # one pixel of each region
    assert (per_region.double() - exact).abs().max() < 1e-6  # measured 3e-8 (float32 forward passes)
    assert (sigma > 0).all()


def test_sampling_tolerance_is_far_from_the_mistake_it_must_catch():
    """On the sampling check's first model: the reference with 20 different seeds stays within 5
    standard errors (it is at most about 3, as a normal law says for 160 values), the mistake of
    crediting the previous region is many standard errors off."""
    model = InteractionCNN(61).eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    regions = grid_regions(8, 8, 2)
    exact, sigma = shapley.exact_region_shapley(model, x, [0, 3], regions)
    standard_error = sigma / 48 ** 0.5
    z = torch.stack([(shapley.region_shapley(model, x, [0, 3], regions, 48, seed=seed).double() - exact).abs()
                     / standard_error for seed in range(20)])
    assert z.max() < 4.5
    namespace = notebook_namespace(region_shapley__credits_previous_region)
    wrong = namespace["region_shapley"](model, x, [0, 3], regions, 48, seed=0).double()
    assert ((wrong - exact).abs() / standard_error).max() > 20


def test_the_shapley_tolerance_is_ten_times_the_batching_noise():
    """The largest float32 noise a correct implementation makes: another batch size (README Tolerances)."""
    from student_src import checks
    from student_src.probe_models import alexnet_shaped

    model = alexnet_shaped()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(52))
    regions = grid_regions(32, 32, 4)
    whole = shapley.region_shapley(model, x, [1, 8], regions, 2, batch_size=34)
    noise = max(checks.rel_error(whole, shapley.region_shapley(model, x, [1, 8], regions, 2, batch_size=size))
                for size in (1, 5))
    assert 0 < noise and 10 * noise <= hidden.SHAPLEY_TOLERANCE
