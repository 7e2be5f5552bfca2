"""Hidden checks of Assignment 4 (beyond Grad-CAM: Layer-CAM, faithfulness, sanity checks). Grader-only.

Each ``check_*`` takes one student function (the parameter is named after it), builds its own
inputs (a seeded random-init CIFAR ResNet-18 with non-trivial BatchNorm layers, other layers,
explicit targets, batches of 1 to 3, 16x16 inputs where the resolution does not matter, tiny
hand-computable models) and compares with ``solutions``. It raises ``AssertionError`` saying
what is wrong, never the expected numbers, writes nothing, leaves the global random state alone
and runs in a few seconds on a CPU. The grader runs them outside the kernel (``autograder.engine.check_server``).

Checks, by student function:

* ``layer_cam``: :func:`check_layer_cam_values`, :func:`check_layer_cam_gradient_relu`
* ``fuse_layer_cams``: :func:`check_fuse_layer_cams`
* ``deletion_curve``: :func:`check_deletion_curve_hand`, :func:`check_deletion_curve_target_class`,
  :func:`check_deletion_curve_resnet`
* ``insertion_curve``: :func:`check_insertion_curve_hand`, :func:`check_insertion_curve_resnet`
* ``area_under_curve``: :func:`check_area_under_curve`
* ``spearman_rank_correlation``: :func:`check_spearman_rank_correlation`,
  :func:`check_spearman_rank_correlation_ties`
* ``cascading_randomization``: :func:`check_cascading_randomization_values`,
  :func:`check_cascading_randomization_cumulative`, :func:`check_cascading_randomization_leaves_model`

In a notebook a student function calls the student's *other* functions (``insertion_curve``
calls ``deletion_curve``; ``cascading_randomization`` calls ``spearman_rank_correlation``), so a
mistake can fail the checks of a function built on it. Known mistakes and the checks they fail
(``tests/mutants/a04_beyond.py``, asserted by ``tests/test_checks_a04.py``):

- Layer-CAM without the ReLU on the gradient: ``check_layer_cam_values``,
  ``check_layer_cam_gradient_relu``.
- A deletion curve that records the class predicted for the perturbed image instead of the given
  target: ``check_deletion_curve_target_class``, ``check_deletion_curve_resnet`` and, through
  ``insertion_curve``, ``check_insertion_curve_resnet``.
- Cascading randomisation on the model itself instead of a deep copy:
  ``check_cascading_randomization_leaves_model``.

The Layer-CAM checks must not punish an Assignment 2 mistake a second time: ``layer_cam`` and
``fuse_layer_cams`` call the notebook's ``activations_and_gradients`` and ``scale_cams`` (the
student's pasted Assignment 2 helpers, or the library-backed fallbacks), so during those checks
the reference helpers are put in the student function's globals (``checks.globals_replaced``)
and the notebook's own are restored afterwards, also when the check fails.
"""

from __future__ import annotations

import copy
import functools

import torch
from torch import nn

import solutions.faithfulness
import solutions.layercam
import solutions.sanity
from autograder.engine.checks.common import assert_close, assert_finite_close, pristine_references
from student_src.probe_models import alexnet_shaped
from solutions import gradcam
from solutions.gradcam import grad_cam as reference_grad_cam
from student_src import checks
from student_src.evaluation import blurred_baseline
from student_src.models import build_cifar_resnet18

#: 10x the float32 noise between correct implementations in one process (measured, one image at a time:
#: Layer-CAM at most 3.9e-7; deletion curves 4.1e-5 on an AVX2-only AMD EPYC, 2.1e-7 on an AVX-512 one;
#: autograder/authoring/assignments/README.md). The curves are softmax probabilities of a random-init network with
#: large logits, which amplifies the logits' round-off.
CAM_TOLERANCE = 1e-5
CURVE_TOLERANCE = 5e-4

#: The references, on the objects as they were handed to the kernel (``common.on_pristine``). The
#: Assignment 2 helpers and ``reference_grad_cam`` stay plain: the student's code calls them.
faithfulness = pristine_references(solutions.faithfulness)
layercam = pristine_references(solutions.layercam)
sanity = pristine_references(solutions.sanity)


@functools.lru_cache(maxsize=1)
def _seeded_resnet() -> nn.Module:
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random state alone
        torch.manual_seed(1234)
        model = build_cifar_resnet18().eval()
    generator = torch.Generator().manual_seed(4321)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                channels = module.num_features
                module.weight.copy_(0.5 + torch.rand(channels, generator=generator))
                module.bias.copy_(0.1 * torch.randn(channels, generator=generator))
                module.running_mean.copy_(0.1 * torch.randn(channels, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(channels, generator=generator))
    return model


def _resnet() -> nn.Module:
    """A fresh copy of the seeded CIFAR ResNet-18, eval mode, whose BatchNorm layers are not at their
    initial values (weight 1, bias 0, mean 0, variance 1), as in a trained model."""
    return copy.deepcopy(_seeded_resnet())


def _inputs(batch: int, seed: int, size: int = 32) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _linear_classifier(weights) -> nn.Module:
    """``logits = weights @ x.flatten()`` (no bias): probabilities computable by hand."""
    weights = torch.as_tensor(weights, dtype=torch.float32)
    with torch.random.fork_rng(devices=[]):  # the weights are set below; keep the caller's RNG
        model = nn.Sequential(nn.Flatten(), nn.Linear(weights.shape[1], weights.shape[0], bias=False))
    with torch.no_grad():
        model[1].weight.copy_(weights)
    return model.eval()


def _sum_classifier() -> nn.Module:
    """Two classes on 1-channel 2x2 images: logit 0 = sum of the pixels, logit 1 = 0."""
    return _linear_classifier([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])


def _hand_images():
    """Two 2x2 images with positive pixels, and saliencies with ties (stable order matters)."""
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[0.5, 1.5], [2.5, 0.25]]]])
    saliency = torch.tensor([[[0.5, 0.9], [0.5, 0.1]], [[0.2, 0.2], [0.7, 0.2]]])
    return x, saliency


def _reference_helpers(function):
    """Context: ``function`` (a notebook's) calls the reference Assignment 2 helpers, not the notebook's."""
    return checks.globals_replaced(function, activations_and_gradients=gradcam.activations_and_gradients,
                                   scale_cams=gradcam.scale_cams)


def _check_maps(got, expected, what: str) -> None:
    checks.assert_map_invariants(got, tuple(expected.shape), what)
    assert_close(got, expected, CAM_TOLERANCE, what)


def _check_curve(got, expected, what: str) -> None:
    assert_finite_close(got, expected, CURVE_TOLERANCE, what, "one column per step, step 0 included", "probabilities")


# ----------------------------------------------------------------------------- Layer-CAM


def check_layer_cam_values(layer_cam) -> None:
    """Other layers (16x16, 8x8, 4x4, a nested conv), explicit and predicted targets, batch sizes.

    Two layers are followed by an in-place operation: ``layer2.0.bn1`` (then ``ReLU(inplace=True)``)
    and the last convolution ``features.10`` of an AlexNet-shaped network (then an in-place ReLU).
    """
    resnet, alexnet = _resnet(), alexnet_shaped()
    cases = [
        (resnet, "layer2", _inputs(2, seed=41), [3, 7]),
        (resnet, "layer3", _inputs(3, seed=42), None),
        (resnet, "layer4", _inputs(1, seed=43), 5),
        (resnet, "layer3.0.conv1", _inputs(2, seed=44), torch.tensor([0, 9])),
        (resnet, "layer2.0.bn1", _inputs(2, seed=45), None),
        (alexnet, "features.10", _inputs(2, seed=46), [2, 5]),
    ]
    snapshots = {id(model): checks.ModelSnapshot(model) for model in (resnet, alexnet)}
    for model, layer, x, targets in cases:
        expected = layercam.layer_cam(model, layer, x, targets)
        with _reference_helpers(layer_cam):
            got = layer_cam(model, layer, x, targets)
        _check_maps(got, expected, f"layer_cam at {layer} (targets={targets})")
    for model in (resnet, alexnet):
        snapshots[id(model)].assert_unchanged(model, "layer_cam")


def check_layer_cam_gradient_relu(layer_cam) -> None:
    """A tiny model whose gradient is negative at some positions: only its positive part may count."""
    with torch.random.fork_rng(devices=[]):  # the weights are set below; keep the caller's RNG
        model = nn.Sequential(nn.Conv2d(2, 2, 1, bias=False), nn.Flatten(), nn.Linear(8, 2, bias=False)).eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2).view(2, 2, 1, 1))  # the target layer's output A is the input
        model[2].weight.copy_(torch.tensor([[1.0, -2.0, 0.5, 3.0, -1.0, 2.0, -0.5, 1.0],
                                            [-1.0, 1.0, 2.0, -3.0, 1.0, 1.0, -2.0, 0.5]]))
    x = torch.tensor([[[[1.0, 2.0], [0.5, 1.5]], [[2.0, 0.5], [1.0, 3.0]]]]).repeat(2, 1, 1, 1)
    targets = [0, 1]
    expected = layercam.layer_cam(model, "0", x, targets)
    with _reference_helpers(layer_cam):
        got = layer_cam(model, "0", x, targets)
    checks.assert_map_invariants(got, tuple(expected.shape), "layer_cam on a small model")
    if checks.rel_error(got, expected) > CAM_TOLERANCE:
        raise AssertionError(
            "layer_cam is wrong on a model whose gradient is negative at some positions: each position's "
            "activation is weighted by the positive part of its own gradient, ReLU(G), before summing channels")


def check_fuse_layer_cams(fuse_layer_cams) -> None:
    """Three layers, two distant layers, one layer (equals Layer-CAM); targets given or predicted."""
    cases = [
        (["layer2", "layer3", "layer4"], _inputs(2, seed=51), [1, 8]),
        (["layer1", "layer4"], _inputs(1, seed=52), None),
        (["layer3"], _inputs(2, seed=53), 4),
    ]
    model = _resnet()
    snapshot = checks.ModelSnapshot(model)
    for layers, x, targets in cases:
        expected = layercam.fuse_layer_cams(model, layers, x, targets)
        with _reference_helpers(fuse_layer_cams):
            got = fuse_layer_cams(model, layers, x, targets)
        what = f"fuse_layer_cams over {layers} (targets={targets})"
        checks.assert_map_invariants(got, tuple(expected.shape), what)
        if checks.rel_error(got, expected) > CAM_TOLERANCE:
            hint = (" (with one layer it must equal layer_cam)" if len(layers) == 1 else
                    ": scale each layer's map at its own resolution, upsample, average over layers, scale again")
            raise AssertionError(f"{what} differs from the expected fusion{hint}")
    snapshot.assert_unchanged(model, "fuse_layer_cams")


# ----------------------------------------------------------------------------- deletion / insertion


def check_deletion_curve_hand(deletion_curve) -> None:
    """A linear model computable by hand: order by saliency (stable on ties), chunks, baselines."""
    model = _sum_classifier()
    x, saliency = _hand_images()
    for steps, baseline in ((4, 0.0), (3, 0.0), (2, 1.0)):  # 3 does not divide the 4 pixels
        expected = faithfulness.deletion_curve(model, x, saliency, [0, 0], steps=steps, baseline=baseline)
        got = deletion_curve(model, x, saliency, [0, 0], steps=steps, baseline=baseline)
        _check_curve(got, expected, f"deletion_curve on a 2x2 image (steps={steps}, baseline={baseline})")


def check_deletion_curve_target_class(deletion_curve) -> None:
    """The probability of the *given* class is recorded, also when the model predicts another one."""
    model = _sum_classifier()  # predicts class 0 for these images at every step
    x, saliency = _hand_images()
    for targets in ([1, 1], torch.tensor([1, 0]), 1):
        expected = faithfulness.deletion_curve(model, x, saliency, targets, steps=4)
        got = deletion_curve(model, x, saliency, targets, steps=4)
        checks.assert_shape(got, tuple(expected.shape), "deletion_curve")
        if checks.rel_error(got, expected) > CURVE_TOLERANCE:
            raise AssertionError(
                f"deletion_curve with targets={targets}: record softmax(model(x_k))[b, target[b]] for the given "
                "target class at every step, not the class the perturbed image is predicted as")


def check_deletion_curve_resnet(deletion_curve) -> None:
    """The ResNet, a batch with different targets, tied saliencies, a per-image tensor baseline."""
    model = _resnet()
    snapshot = checks.ModelSnapshot(model)
    x = _inputs(3, seed=61, size=16)  # 16x16 inputs are valid for the ResNet and 4x cheaper
    saliency = torch.randint(0, 6, (3, 16, 16), generator=torch.Generator().manual_seed(62)).float() / 5
    targets = torch.tensor([2, 5, 9])
    for steps, baseline in ((6, 0.0), (4, x.flip(-1))):
        expected = faithfulness.deletion_curve(model, x, saliency, targets, steps=steps, baseline=baseline)
        got = deletion_curve(model, x, saliency, targets, steps=steps, baseline=baseline)
        kind = "a tensor" if isinstance(baseline, torch.Tensor) else baseline
        _check_curve(got, expected, f"deletion_curve on the ResNet (batch of 3, steps={steps}, baseline {kind})")
    snapshot.assert_unchanged(model, "deletion_curve")


def check_insertion_curve_hand(insertion_curve) -> None:
    """The linear model: pixels of x copied into the baseline image in saliency order."""
    model = _sum_classifier()
    x, saliency = _hand_images()
    for steps, baseline in ((4, 0.0), (3, 0.5)):
        expected = faithfulness.insertion_curve(model, x, saliency, [0, 0], steps=steps, baseline=baseline)
        got = insertion_curve(model, x, saliency, [0, 0], steps=steps, baseline=baseline)
        _check_curve(got, expected, f"insertion_curve on a 2x2 image (steps={steps}, baseline={baseline})")


def check_insertion_curve_resnet(insertion_curve) -> None:
    """The ResNet from a blurred start image, different targets per image."""
    model = _resnet()
    x = _inputs(2, seed=71, size=16)
    saliency = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(72))
    targets = torch.tensor([6, 1])
    expected = faithfulness.insertion_curve(model, x, saliency, targets, steps=8, baseline=blurred_baseline(x))
    got = insertion_curve(model, x, saliency, targets, steps=8, baseline=blurred_baseline(x))
    _check_curve(got, expected, "insertion_curve on the ResNet (blurred baseline)")


def check_area_under_curve(area_under_curve) -> None:
    """Trapezoids over x in [0, 1]: constant, linear and random curves of several lengths."""
    constant = torch.full((2, 5), 0.3)
    if checks.rel_error(area_under_curve(constant), torch.full((2,), 0.3)) > 1e-6:
        raise AssertionError("a constant curve p must have area p: the x-axis runs from 0 to 1")
    ramp = torch.linspace(0, 1, 9)[None]
    if checks.rel_error(area_under_curve(ramp), torch.tensor([0.5])) > 1e-6:
        raise AssertionError("a curve rising linearly from 0 to 1 must have area 1/2 (trapezoidal rule)")
    for shape, seed in (((3, 17), 81), ((4, 2), 82)):
        curve = torch.rand(shape, generator=torch.Generator().manual_seed(seed))
        got = area_under_curve(curve)
        checks.assert_shape(got, (shape[0],), f"area_under_curve of curves {shape}")
        assert_close(got, faithfulness.area_under_curve(curve), 1e-6, f"area_under_curve of curves {shape}")


# ----------------------------------------------------------------------------- sanity checks


def check_spearman_rank_correlation(spearman_rank_correlation) -> None:
    """Distinct values: maps (B, H, W) and vectors (B, N); identical and reversed orderings."""
    generator = torch.Generator().manual_seed(91)
    a, b = torch.rand(4, 8, 8, generator=generator), torch.rand(4, 8, 8, generator=generator)
    b[1] = a[1] * 3 + 1  # same ordering, other scale
    got = spearman_rank_correlation(a, b)
    checks.assert_shape(got, (4,), "spearman_rank_correlation of maps (4, 8, 8)")
    assert_close(got, sanity.spearman_rank_correlation(a, b), 1e-5, "spearman_rank_correlation of maps")
    vectors = torch.rand(3, 50, generator=generator)
    reversed_ = -vectors ** 3
    assert_close(spearman_rank_correlation(vectors, reversed_), -torch.ones(3), 1e-5,
                        "spearman_rank_correlation of reversed orderings (must be -1)")


def check_spearman_rank_correlation_ties(spearman_rank_correlation) -> None:
    """Tied values (ReLU'd maps are full of zeros) get average ranks; constant maps give 0 or 1."""
    generator = torch.Generator().manual_seed(92)
    a = torch.relu(torch.randn(3, 6, 6, generator=generator))
    b = torch.randint(0, 4, (3, 6, 6), generator=generator).float()
    got = spearman_rank_correlation(a, b)
    checks.assert_shape(got, (3,), "spearman_rank_correlation")
    if checks.rel_error(got, sanity.spearman_rank_correlation(a, b)) > 1e-5:
        raise AssertionError("spearman_rank_correlation is wrong on maps with tied values: tied values must "
                             "get the average of the ranks they span (as scipy.stats.spearmanr)")
    constant = spearman_rank_correlation(torch.zeros(2, 4, 4), torch.rand(2, 4, 4, generator=generator))
    if not (torch.isfinite(constant).all() and constant.abs().max() <= 1e-6):
        raise AssertionError("a constant map against a non-constant one must give correlation 0 (not NaN)")
    both = spearman_rank_correlation(torch.zeros(2, 4, 4), torch.full((2, 4, 4), 0.5))
    if not (torch.isfinite(both).all() and (both - 1).abs().max() <= 1e-6):
        raise AssertionError("two constant maps must give correlation 1 (the explanation did not change), not NaN")


def _grad_cam_layer3(model, x, targets):
    return reference_grad_cam(model, "layer3", x, targets)


def check_cascading_randomization_values(cascading_randomization) -> None:
    """Default and custom stage orders, given and predicted targets, another seed."""
    cases = [
        (_inputs(2, seed=101, size=16), torch.tensor([3, 8]), None, 0),
        (_inputs(2, seed=102, size=16), None, ["layer4.1", "fc", "layer3"], 5),
    ]
    for x, targets, order, seed in cases:
        model = _resnet()  # the reference leaves it untouched, so the student's call gets the same model
        expected = sanity.cascading_randomization(model, _grad_cam_layer3, x, targets, layer_order=order, seed=seed)
        got = cascading_randomization(model, _grad_cam_layer3, x, targets, layer_order=order, seed=seed)
        what = f"cascading_randomization (layer_order={order}, seed={seed})"
        if not isinstance(got, dict):
            raise AssertionError(f"{what}: must return a dict {{stage name: mean correlation}}")
        if list(got) != list(expected):
            raise AssertionError(f"{what}: the keys must be 'original' followed by the stage names in the order "
                                 f"they were randomised; got {list(got)}")
        values = torch.tensor([float(v) for v in got.values()])
        assert_close(values, torch.tensor(list(expected.values())), 1e-5, f"{what}: the correlations")


class _StageSpy:
    """An explain_fn that records which stages of the model it is given differ from the original."""

    def __init__(self, original: nn.Module, stages):
        self.original = {name: p.detach().clone() for name, p in original.named_parameters()}
        self.stages = list(stages)
        self.changed = []

    def __call__(self, model, x, targets):
        parameters = dict(model.named_parameters())
        self.changed.append([stage for stage in self.stages if any(
            not torch.equal(parameters[name].detach(), value)
            for name, value in self.original.items() if name.startswith(stage + "."))])
        return _grad_cam_layer3(model, x, targets)


def check_cascading_randomization_cumulative(cascading_randomization) -> None:
    """Stages are randomised top-down and cumulatively: stage k's model has stages 1..k random."""
    stages = ["fc", "layer4", "layer3", "layer2", "layer1", "bn1", "conv1"]
    model = _resnet()
    spy = _StageSpy(model, stages)
    cascading_randomization(model, spy, _inputs(1, seed=111, size=16), [2], layer_order=None, seed=3)
    randomized_calls = [changed for changed in spy.changed if changed]
    untouched_calls = len(spy.changed) - len(randomized_calls)
    expected = [stages[:k] for k in range(1, len(stages) + 1)]
    if untouched_calls < 1 or spy.changed[:untouched_calls] != [[]] * untouched_calls:
        raise AssertionError("the original maps must be computed on the unchanged model, "
                             "before any stage is randomised")
    if randomized_calls != expected:
        raise AssertionError(
            "each stage must add its layer to the ones already randomised, from the output back to the input "
            "(fc, layer4, ..., conv1 by default), and explain the model after every stage")


def check_cascading_randomization_leaves_model(cascading_randomization) -> None:
    """The model passed in comes out with the same weights, modules, mode and hooks (deep copy)."""
    model = _resnet()
    snapshot = checks.ModelSnapshot(model)
    got = cascading_randomization(model, _grad_cam_layer3, _inputs(2, seed=121, size=16), None, layer_order=["fc", "layer4"])
    # Leaving the model alone counts only for a function that randomises (one that does nothing
    # leaves it alone too); the values are the other checks' business.
    if not isinstance(got, dict) or list(got) != ["original", "fc", "layer4"]:
        raise AssertionError("cascading_randomization must return {stage: mean correlation} for 'original' and "
                             "each stage: leaving the model alone counts only for a function that randomises")
    snapshot.assert_unchanged(model, "cascading_randomization must randomise a copy.deepcopy of the model")


CHECKS = (
    check_layer_cam_values,
    check_layer_cam_gradient_relu,
    check_fuse_layer_cams,
    check_deletion_curve_hand,
    check_deletion_curve_target_class,
    check_deletion_curve_resnet,
    check_insertion_curve_hand,
    check_insertion_curve_resnet,
    check_area_under_curve,
    check_spearman_rank_correlation,
    check_spearman_rank_correlation_ties,
    check_cascading_randomization_values,
    check_cascading_randomization_cumulative,
    check_cascading_randomization_leaves_model,
)

#: Libraries that would do the student's job (pytorch-grad-cam's LayerCAM and perturbation metrics,
#: scipy's spearmanr and rankdata): not importable where the graded functions run
#: (``autograder.engine.check_kernel``). The checks hand layer_cam the Assignment 2 helpers it
#: builds on (``checks.globals_replaced``).
HIDDEN_LIBRARIES = ("pytorch_grad_cam", "scipy")
