"""Hidden checks of Assignment 5 (ImageNet classics, Shapley values of regions). Grader-only.

Each ``check_*`` takes one student function (the parameter is named after it), builds its own
small inputs (the AlexNet-shaped probe network, a CIFAR ResNet-18, models whose Shapley values
are known in closed form or by enumerating every coalition) and compares. It raises
``AssertionError`` saying what is wrong, never the expected numbers, writes nothing, leaves the
global random state alone and runs in a few seconds on a CPU. No ImageNet-sized network is
built here: the check server sends every model to the kernel, and VGG-16 alone is 528 MB.

Checks, by student function:

* ``last_conv_layer``: :func:`check_last_conv_layer`
* ``coalition_scores``: :func:`check_coalition_scores`
* ``region_shapley``: :func:`check_region_shapley_additive`, :func:`check_region_shapley_efficiency`,
  :func:`check_region_shapley_sampling`

Known mistakes and the checks they fail (``tests/mutants/a05_imagenet.py``, asserted by
``tests/test_checks_a05.py``):

- The last module before the classifier instead of the last convolution (AlexNet's ``avgpool``):
  ``check_last_conv_layer``.
- Softmax probabilities instead of the raw logit in ``coalition_scores``: ``check_coalition_scores``
  and, through ``region_shapley``, all three ``region_shapley`` checks.
- Crediting a step's marginal contribution to the region added one step earlier:
  ``check_region_shapley_additive``, ``check_region_shapley_sampling`` (the values still sum to
  ``f(x) - f(baseline)``, so the efficiency check passes).
- Summing the marginal contributions over the orders instead of averaging:
  all three ``region_shapley`` checks.
- Adding up the scores ``v(S + {i})`` without subtracting ``v(S)``: all three.

Sampling tolerance. Permutation sampling with ``n`` random orders estimates ``phi_i`` with
standard error ``sigma_i / sqrt(n)``, where ``sigma_i`` is the standard deviation of region
i's marginal contribution over uniformly random orders; the check computes ``phi_i`` and
``sigma_i`` exactly from all 2^R coalitions (``solutions.shapley.exact_region_shapley``) and
allows 5 standard errors. Whatever random orders a correct implementation draws, it fails one
value with probability below 6e-7 (two-sided normal tail at 5); a mistake above is off by many
standard errors (measured: ``tests/test_checks_a05.py``).
"""

from __future__ import annotations

import torch
from torch import nn

import solutions.layers
import solutions.shapley
from autograder.engine.checks.common import (assert_close, assert_finite_close, call_student as _call, on_pristine,
                                             pristine_references)
from student_src import checks
from student_src.evaluation import grid_regions
from student_src.models import build_cifar_resnet18
from student_src.probe_models import AdditiveModel, InteractionCNN, NestedConvBlocks, alexnet_shaped

#: 10x the float32 noise of Shapley values between correct implementations in one process (measured at
#: most 2.8e-6 on an AVX2-only AMD EPYC, 1.6e-6 on an AVX-512 one: AlexNet-shaped network, batches of 1 vs
#: 34 images; the values are differences of logits, so the logits' round-off counts against smaller
#: numbers; captum on an additive model 3.7e-7).
SHAPLEY_TOLERANCE = 5e-5
#: Standard errors a sampled Shapley value may be from the exact one (see the module docstring).
STANDARD_ERRORS = 5.0

#: The references, on the objects as they were handed to the kernel (``common.on_pristine``).
layers = pristine_references(solutions.layers)
shapley = pristine_references(solutions.shapley)


def _inputs(batch: int, seed: int, channels: int = 3, size: int = 32) -> torch.Tensor:
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- the last convolution


def check_last_conv_layer(last_conv_layer) -> None:
    """The AlexNet-shaped network (then an in-place ReLU and a max-pool), a model of nested blocks,
    a CIFAR ResNet-18; a model without convolutions must raise ``ValueError``."""
    with torch.random.fork_rng(devices=[]):
        resnet = build_cifar_resnet18().eval()
    cases = [("an AlexNet-shaped network", alexnet_shaped()), ("a model of nested blocks", NestedConvBlocks().eval()),
             ("a CIFAR ResNet-18", resnet)]
    for what, model in cases:
        got = last_conv_layer(model)
        if not isinstance(got, str):
            raise AssertionError(f"last_conv_layer must return the layer's name (a str), got {type(got).__name__}")
        if got != layers.last_conv_layer(model):
            raise AssertionError(f"last_conv_layer is wrong on {what}: {got!r} is not its last nn.Conv2d "
                                 "(a name from model.named_modules())")
    with torch.random.fork_rng(devices=[]):
        no_conv = nn.Sequential(nn.Flatten(), nn.Linear(12, 2)).eval()
    try:
        got = last_conv_layer(no_conv)
    except ValueError:
        return
    except Exception as error:  # noqa: BLE001 (the wrong kind of error is a wrong answer too)
        raise AssertionError(f"last_conv_layer on a model without a convolution raised {type(error).__name__}; "
                             "raise ValueError saying there is no nn.Conv2d") from error
    raise AssertionError(f"last_conv_layer on a model without a convolution returned {got!r}; raise ValueError")


# ----------------------------------------------------------------------------- Shapley values


def check_coalition_scores(coalition_scores) -> None:
    """The AlexNet-shaped network, one order of a 4x4 grid, a tensor baseline, batch_size smaller than
    the order: the scores equal the reference's; the model unchanged; bad regions and orders refused."""
    model = alexnet_shaped()
    snapshot = checks.ModelSnapshot(model)
    x, baseline = _inputs(2, seed=55), 0.3 * _inputs(2, seed=56)
    regions = grid_regions(32, 32, 4)
    order = torch.randperm(16, generator=torch.Generator().manual_seed(57))
    for target, batch_size in (([3, 6], 5), (9, 32)):
        expected = shapley.coalition_scores(model, x, target, regions, order, baseline)
        what = f"coalition_scores(alexnet, x, target={target}, 4x4 grid, order, tensor baseline, batch_size={batch_size})"
        got = _call(coalition_scores, what, model, x, target, regions, order, baseline, batch_size)
        checks.assert_shape(got, (2, 17), f"{what} (R + 1 scores per image)")
        assert_close(got, expected, SHAPLEY_TOLERANCE, f"{what}: column k = the target's logit with the "
                            "first k regions of the order showing the image, the baseline elsewhere")
    snapshot.assert_unchanged(model, "coalition_scores")
    missing_label = regions.clone()
    missing_label[missing_label == 3] = 2
    for what, bad_regions, bad_order in (("region labels that are not 0 .. R-1", missing_label, order[order != 3]),
                                         ("an order that is not a permutation of the regions", regions,
                                          torch.cat([order[:-1], order[:1]]))):
        try:
            coalition_scores(model, x[:1], 0, bad_regions, bad_order)
        except ValueError:
            continue
        except Exception as error:  # noqa: BLE001 (the wrong kind of error is a wrong answer too)
            raise AssertionError(f"coalition_scores with {what} raised {type(error).__name__}: raise ValueError") \
                from error
        raise AssertionError(f"coalition_scores with {what} must raise ValueError")



@on_pristine
def _additive_values(weights, x, baseline, target, regions, squash: bool) -> torch.Tensor:
    """phi[b, i] = sum over region i's pixels of w[t_b] * (g(x) - g(baseline)): exact for additive models."""
    g = torch.tanh if squash else (lambda t: t)
    batch = x.shape[0]
    targets = torch.as_tensor(target).long().reshape(-1).expand(batch)
    difference = (g(x) - g(torch.as_tensor(baseline).expand_as(x))).double()  # (B, C, H, W)
    contribution = difference.flatten(1) * weights.double()[targets]  # (B, C*H*W)
    labels = regions.long().expand(x.shape[1:]).flatten()
    n_regions = int(regions.max()) + 1
    return torch.stack([contribution[:, labels == i].sum(dim=1) for i in range(n_regions)], dim=1)


def _check_values(got, expected, what: str) -> None:
    assert_finite_close(got, expected, SHAPLEY_TOLERANCE, what, "one value per image and region", "values",
                        axes=("image", "region"))


def check_region_shapley_additive(region_shapley) -> None:
    """Additive models (linear, and tanh per pixel then linear): each region's Shapley value is its own
    contribution, for any number of orders. Grid and irregular regions, batches, targets, baselines."""
    generator = torch.Generator().manual_seed(51)
    irregular = torch.randint(0, 5, (6, 6), generator=generator)
    irregular.view(-1)[:5] = torch.arange(5)  # every label present
    cases = [  # (channels, size, regions, batch, target, baseline, n_permutations, squash)
        (1, 4, grid_regions(4, 4, 2), 2, [0, 1], 0.0, 3, False),
        (3, 6, irregular, 2, 2, torch.randn(2, 3, 6, 6, generator=generator), 2, True),
        (2, 8, grid_regions(8, 8, 4), 1, [1], 0.5, 1, True),
    ]
    for channels, size, regions, batch, target, baseline, n_permutations, squash in cases:
        weights = torch.randn(3, channels * size * size, generator=generator)
        model = AdditiveModel(weights, squash)
        x = torch.randn(batch, channels, size, size, generator=generator)
        expected = _additive_values(weights, x, baseline, target, regions, squash)
        got = _call(region_shapley, "region_shapley on an additive model", model, x, target, regions,
                    n_permutations=n_permutations, baseline=baseline, seed=7)
        what = (f"region_shapley on an additive model ({'tanh, then ' if squash else ''}linear; {int(regions.max()) + 1}"
                f" regions, target={target}, n_permutations={n_permutations}, "
                f"{'tensor' if isinstance(baseline, torch.Tensor) else baseline} baseline): each region's value must "
                "be its own contribution")
        _check_values(got, expected, what)


@on_pristine
def _score_difference(model: nn.Module, x: torch.Tensor, baseline: torch.Tensor, targets) -> torch.Tensor:
    """``f(x) - f(baseline)`` of each image's target logit."""
    with torch.no_grad():
        return (model(x) - model(baseline))[torch.arange(len(x)), targets]


def check_region_shapley_efficiency(region_shapley) -> None:
    """The AlexNet-shaped network on a 4x4 grid: the values of each image sum to f(x) - f(baseline)
    for any orders; batch_size smaller than one order; the model unchanged."""
    model = alexnet_shaped()
    snapshot = checks.ModelSnapshot(model)
    x = _inputs(2, seed=52)
    baseline = 0.3 * _inputs(2, seed=53)
    regions = grid_regions(32, 32, 4)
    targets = [1, 8]
    got = _call(region_shapley, "region_shapley on an AlexNet-shaped network", model, x, targets, regions,
                n_permutations=2, baseline=baseline, seed=3, batch_size=5)
    checks.assert_shape(got, (2, 16), "region_shapley(alexnet, x, [1, 8], 4x4 grid) (one value per image and region)")
    total = _score_difference(model, x, baseline, targets)
    assert_close(got.sum(dim=1), total, SHAPLEY_TOLERANCE,
                        "the Shapley values of each image must sum to f(x) - f(baseline) of its target (efficiency)")
    snapshot.assert_unchanged(model, "region_shapley")


def check_region_shapley_sampling(region_shapley) -> None:
    """Models with interactions, 4 and 5 regions: within 5 standard errors of the exact values
    (all 2^R coalitions enumerated), whichever random orders the function draws."""
    generator = torch.Generator().manual_seed(54)
    irregular = torch.randint(0, 5, (8, 8), generator=generator)
    irregular.view(-1)[:5] = torch.arange(5)
    cases = [(InteractionCNN(61), grid_regions(8, 8, 2), [0, 3], 48, 0.0),
             (InteractionCNN(62), irregular, [2, 2], 32, 0.25)]
    for model, regions, targets, n_permutations, baseline in cases:
        model.eval()
        x = torch.randn(2, 3, 8, 8, generator=generator)
        exact, sigma = shapley.exact_region_shapley(model, x, targets, regions, baseline)
        got = _call(region_shapley, "region_shapley on a model with interactions", model, x, targets, regions,
                    n_permutations=n_permutations, baseline=baseline, seed=11)
        n_regions = int(regions.max()) + 1
        what = f"region_shapley on a model with interactions ({n_regions} regions, n_permutations={n_permutations})"
        checks.assert_shape(got, (2, n_regions), f"{what} (one value per image and region)")
        if not got.is_floating_point() or not torch.isfinite(got).all():
            raise AssertionError(f"{what}: expected finite floating-point values")
        allowed = STANDARD_ERRORS * sigma / n_permutations ** 0.5 + SHAPLEY_TOLERANCE * exact.abs().max()
        if ((got.double() - exact).abs() > allowed).any():
            raise AssertionError(f"{what}: some values are more than {STANDARD_ERRORS:g} standard errors from the "
                                 "exact Shapley values: average each region's marginal contribution "
                                 "v(S + {i}) - v(S) over the random orders")


CHECKS = (
    check_last_conv_layer,
    check_coalition_scores,
    check_region_shapley_additive,
    check_region_shapley_efficiency,
    check_region_shapley_sampling,
)

#: Libraries that would do the student's job (captum's and SHAP's Shapley estimators): not
#: importable where the graded functions run (``autograder.engine.check_kernel``). The exact
#: enumeration is the grader's (``solutions.shapley``), never in a kernel.
HIDDEN_LIBRARIES = ("captum", "shap")
