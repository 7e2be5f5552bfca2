"""Hidden checks of Assignment 2 (Grad-CAM). Grader-only.

Each ``check_*`` takes one student function (the parameter is named after it), builds its own
inputs (a seeded random-init CIFAR ResNet-18 at layers the notebook does not use, explicit and
runner-up targets, batches of 1 and 5, a tiny fixed-weight CNN) and compares with
``solutions.gradcam``. It raises ``AssertionError`` saying what is wrong, never the expected
numbers. Every check runs in well under a few seconds on a CPU.

Checks, by student function:

* ``activations_and_gradients``: :func:`check_activations_and_gradients_values`,
  :func:`check_activations_and_gradients_targets`, :func:`check_activations_and_gradients_cleanup`
* ``gradcam_channel_weights``: :func:`check_gradcam_channel_weights`
* ``scale_cams``: :func:`check_scale_cams_values`, :func:`check_scale_cams_edge_cases`
* ``grad_cam``: :func:`check_grad_cam_other_layers`, :func:`check_grad_cam_targets_and_batches`,
  :func:`check_grad_cam_tiny_cnn`, :func:`check_grad_cam_side_effects`
"""

from __future__ import annotations

import copy
import functools

import torch
from torch import nn

from solutions import gradcam
from autograder.engine.checks.common import assert_close, call_student as _call, on_pristine, pristine_references
from student_src.probe_models import FailsOnPurpose, TinyCNN, alexnet_shaped
from student_src import checks
from student_src.models import build_cifar_resnet18

#: 10x the float32 noise of activations, gradients and Grad-CAM maps between correct implementations in
#: one process (measured at most 2.4e-6, one image at a time or oneDNN off, on an AVX2-only AMD EPYC;
#: 9.5e-7 on an AVX-512 one; autograder/authoring/assignments/README.md).
CAM_TOLERANCE = 5e-5

#: The reference, on the objects as they were handed to the kernel (``common.on_pristine``).
reference = pristine_references(gradcam)


@functools.lru_cache(maxsize=1)
def _seeded_resnet() -> nn.Module:
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random state alone
        torch.manual_seed(1234)
        return build_cifar_resnet18().eval()


def _resnet() -> nn.Module:
    """A fresh copy of the seeded random-init CIFAR ResNet-18, eval mode, CPU."""
    return copy.deepcopy(_seeded_resnet())


def _inputs(batch: int, seed: int, size: int = 32, channels: int = 3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, size, size, generator=generator)


@on_pristine
def _runner_up(model: nn.Module, x: torch.Tensor) -> list:
    """The second most likely class of each image, as a list of ints."""
    with torch.no_grad():
        return model(x).topk(2, dim=1).indices[:, 1].tolist()


def tiny_cnn_inputs() -> torch.Tensor:
    """Two 4x4 images (2, 1, 4, 4), constant on 2x2 blocks with block means ``m``."""
    block_means = torch.tensor([[[2.0, -1.0], [0.5, -3.0]],
                                [[-1.0, 4.0], [1.0, 0.5]]])
    return block_means.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)[:, None]


def _small_cnn(train_mode: bool) -> nn.Module:
    """Conv, ReLU, pool, linear: no BatchNorm, so a forward in train mode changes nothing."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    return model.train(train_mode)


def _compare_outputs(got, expected, what: str) -> None:
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        raise AssertionError(f"{what}: must return a tuple (activations, gradients, logits)")
    for name, value, reference_value in zip(("activations", "gradients", "logits"), got, expected):
        checks.assert_shape(value, tuple(reference_value.shape), f"{what}: {name}")
        if value.requires_grad:
            raise AssertionError(f"{what}: {name} must be detached from the graph (.detach())")
        assert_close(value, reference_value, CAM_TOLERANCE, f"{what}: {name}")


def check_activations_and_gradients_values(activations_and_gradients) -> None:
    """Other layers and batch sizes, the predicted class, also when called inside torch.no_grad()."""
    resnet, alexnet = _resnet(), alexnet_shaped()
    # layer3.0.bn1 is followed by ReLU(inplace=True), layer2.1.bn2 by `out += identity` and
    # features.10 of the AlexNet-shaped network by an in-place ReLU: A must be the layer's own
    # output (not overwritten later) and G the gradient with respect to that value.
    for model, layer, batch, seed in ((resnet, "layer2", 3, 1), (resnet, "layer3.0.conv1", 1, 2),
                                      (resnet, "layer3.0.bn1", 2, 9), (resnet, "layer2.1.bn2", 1, 10),
                                      (alexnet, "features.10", 2, 12)):
        x = _inputs(batch, seed)
        what = f"activations_and_gradients at {layer!r}, batch of {batch}"
        got = _call(activations_and_gradients, what, model, layer, x)
        _compare_outputs(got, reference.activations_and_gradients(model, layer, x), what)
    model = resnet
    x = _inputs(2, 3)
    what = "activations_and_gradients called inside torch.no_grad()"
    with torch.no_grad():
        got = _call(activations_and_gradients, what, model, "layer4", x)
    _compare_outputs(got, reference.activations_and_gradients(model, "layer4", x), what)


def check_activations_and_gradients_targets(activations_and_gradients) -> None:
    """Explicit targets: an int, the runner-up classes as a list and a tensor, a tuple for a batch of 1."""
    model = _resnet()
    x = _inputs(5, 4)
    runner_up = _runner_up(model, x)
    cases = [("an int", 7, x), ("a list (runner-up classes)", runner_up, x),
             ("a 1-D tensor", torch.tensor(runner_up), x), ("a tuple of one, batch of 1", tuple(runner_up[:1]), x[:1])]
    for description, targets, inputs in cases:
        what = f"activations_and_gradients with targets given as {description}"
        got = _call(activations_and_gradients, what, model, "layer3", inputs, targets)
        _compare_outputs(got, reference.activations_and_gradients(model, "layer3", inputs, targets), what)


def _shapes(value):
    """The shapes of a result (a tensor, or a tuple/list of them); None for anything else."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (tuple, list)) and all(isinstance(item, torch.Tensor) for item in value):
        return [tuple(item.shape) for item in value]
    return None


def _assert_no_side_effects(function, name: str, reference_function) -> None:
    """Shared by the cleanup checks: hooks, mode, weights, .grad, the input, a failing forward.

    Cleaning up counts only for a function that does its job: the first call must return a
    result shaped like the reference's (a function that does nothing leaves no hook either).
    Its values are the other checks' business, so one wrong formula costs their points only."""
    model = _resnet()
    snapshot = checks.ModelSnapshot(model)
    x = _inputs(2, 6)
    x_before = x.clone()
    got = _call(function, name, model, "layer3", x)
    expected = _shapes(reference_function(_resnet(), "layer3", x_before.clone()))
    if _shapes(got) != expected:
        raise AssertionError(f"{name} must return its result (shapes {expected}), not {type(got).__name__}: "
                             "cleaning up counts only for a function that works")
    snapshot.assert_unchanged(model, name)
    if not torch.equal(x, x_before) or x.grad is not None or x.requires_grad:
        raise AssertionError(f"{name}: the input tensor x was modified")

    for train_mode in (True, False):
        small = _small_cnn(train_mode)
        small_snapshot = checks.ModelSnapshot(small)
        _call(function, f"{name} on a small CNN", small, "2", _inputs(3, 7, size=8))
        small_snapshot.assert_unchanged(small, f"{name} on a model in {'train' if train_mode else 'eval'} mode")

    with torch.random.fork_rng(devices=[]):
        failing = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), FailsOnPurpose())
    try:
        function(failing, "0", _inputs(1, 8, size=8))
    except Exception:  # noqa: BLE001 (any exception is fine; the hook must still be removed)
        pass
    if checks.count_hooks(failing) != 0:
        raise AssertionError(f"{name}: the hook must be removed in `finally`: "
                             "it stayed registered after the forward pass raised")


def check_activations_and_gradients_cleanup(activations_and_gradients) -> None:
    """No hook left (also after a failing forward), mode, weights and input unchanged, no .grad."""
    _assert_no_side_effects(activations_and_gradients, "activations_and_gradients", reference.activations_and_gradients)


def check_gradcam_channel_weights(gradcam_channel_weights) -> None:
    """Average (not sum, not max) over the spatial positions, per image and channel."""
    generator = torch.Generator().manual_seed(11)
    cases = [torch.randn(3, 6, 5, 7, generator=generator),
             torch.randn(1, 4, 1, 1, generator=generator),
             torch.rand(2, 5, 8, 8, generator=generator) - 0.3]
    for gradients in cases:
        what = f"gradcam_channel_weights of gradients of shape {tuple(gradients.shape)}"
        weights = _call(gradcam_channel_weights, what, gradients.clone())
        expected = reference.gradcam_channel_weights(gradients)
        checks.assert_shape(weights, tuple(expected.shape), what)
        assert_close(weights, expected, 1e-6, what)  # a mean of float32 values: measured <= 1.2e-7


def _check_scale_cams_cases(scale_cams, cases) -> None:
    for description, cams, size in cases:
        what = f"scale_cams on {description}"
        got = _call(scale_cams, what, cams.clone(), size)
        checks.assert_map_invariants(got, (len(cams), *size), what)
        assert_close(got, reference.scale_cams(cams, size), CAM_TOLERANCE, what)


def check_scale_cams_values(scale_cams) -> None:
    """ReLU, per-image min-max, bilinear upsampling, ReLU and min-max again, on ordinary maps."""
    generator = torch.Generator().manual_seed(21)
    mixed = 3 * torch.randn(3, 4, 4, generator=generator)
    positive = torch.rand(2, 8, 8, generator=generator) + torch.tensor([1.0, 5.0]).view(2, 1, 1)
    scales = torch.tensor([0.5, 2.0, 40.0, 1.0]).view(4, 1, 1)
    no_zero = 1.0 + torch.rand(1, 4, 4, generator=generator)
    batch = torch.cat([mixed, no_zero]) * scales  # per-image scales, one map with no zero
    rectangular = torch.randn(2, 3, 5, generator=generator)
    _check_scale_cams_cases(scale_cams, [
        ("maps with positive and negative values", mixed, (32, 32)),
        ("maps whose values are all positive", positive, (16, 16)),
        ("a batch of maps of very different scales", batch, (32, 32)),
        ("rectangular maps and a rectangular size", rectangular, (12, 20)),
    ])


def check_scale_cams_edge_cases(scale_cams) -> None:
    """Constant maps become zeros (no NaN); all-negative maps; tiny maps where the 1e-7 matters."""
    generator = torch.Generator().manual_seed(22)
    constant = torch.tensor([0.0, 5.0, -2.0]).view(3, 1, 1).expand(3, 4, 4).contiguous()
    negative = -torch.rand(2, 4, 4, generator=generator) - 0.1
    tiny = 1e-6 * torch.randn(2, 4, 4, generator=generator)
    single_pixel = torch.tensor([3.0, -1.0]).view(2, 1, 1)
    _check_scale_cams_cases(scale_cams, [
        ("constant maps (all zero, positive, negative)", constant, (8, 8)),
        ("maps with only negative values", negative, (8, 8)),
        ("maps with tiny values (about 1e-6: normalise at the layer's resolution first, "
         "and add 1e-7 to the denominator)", tiny, (32, 32)),
        ("1x1 maps", single_pixel, (32, 32)),
    ])


def _check_grad_cam_cases(grad_cam, model: nn.Module, cases) -> None:
    for description, layer, x, targets in cases:
        what = f"grad_cam at {layer!r} ({description})"
        got = _call(grad_cam, what, model, layer, x, targets)
        checks.assert_map_invariants(got, (len(x), *x.shape[-2:]), what)
        assert_close(got, reference.grad_cam(model, layer, x, targets), CAM_TOLERANCE, what)


def check_grad_cam_other_layers(grad_cam) -> None:
    """Other layers: a stage, a block, a convolution and a BatchNorm in a block, an AlexNet's last conv."""
    _check_grad_cam_cases(grad_cam, _resnet(), [
        ("predicted class, batch of 2", "layer2", _inputs(2, 31), None),
        ("predicted class, batch of 1", "layer3.0.conv1", _inputs(1, 32), None),
        ("predicted class, batch of 3", "layer3.1", _inputs(3, 33), None),
        ("a BatchNorm followed by an in-place ReLU, batch of 2", "layer2.0.bn1", _inputs(2, 34), None),
    ])
    _check_grad_cam_cases(grad_cam, alexnet_shaped(), [
        ("AlexNet-shaped network, last convolution (an in-place ReLU follows), batch of 2",
         "features.10", _inputs(2, 35), None),
    ])


def check_grad_cam_targets_and_batches(grad_cam) -> None:
    """At layer4: explicit targets (int, runner-up list and tensor), batches of 5 and 1."""
    model = _resnet()
    x = _inputs(5, 41)
    runner_up = _runner_up(model, x)
    _check_grad_cam_cases(grad_cam, model, [
        ("runner-up classes as a list, batch of 5", "layer4", x, runner_up),
        ("runner-up classes as a tensor, batch of 5", "layer4", x, torch.tensor(runner_up)),
        ("one int target for the batch of 5", "layer4", x, 3),
        ("runner-up class, batch of 1", "layer4", x[2:3], runner_up[2:3]),
        ("predicted class, batch of 1", "layer4", x[4:5], None),
    ])


def check_grad_cam_tiny_cnn(grad_cam) -> None:
    """A tiny fixed-weight CNN whose Grad-CAM is computed by hand (tests/test_solutions_gradcam.py)."""
    model = TinyCNN().eval()
    x = tiny_cnn_inputs()
    _check_grad_cam_cases(grad_cam, model, [
        ("tiny CNN, predicted class", "relu", x, None),
        ("tiny CNN, class 0 for both images", "relu", x, 0),
        ("tiny CNN, classes [1, 0]", "relu", x, [1, 0]),
    ])


def check_grad_cam_side_effects(grad_cam) -> None:
    """No hook left (also after a failing forward), mode, weights and input unchanged, no .grad."""
    _assert_no_side_effects(grad_cam, "grad_cam", reference.grad_cam)


#: Every check, in the order the notebook runs them.
CHECKS = (
    check_activations_and_gradients_values,
    check_activations_and_gradients_targets,
    check_activations_and_gradients_cleanup,
    check_gradcam_channel_weights,
    check_scale_cams_values,
    check_scale_cams_edge_cases,
    check_grad_cam_other_layers,
    check_grad_cam_targets_and_batches,
    check_grad_cam_tiny_cnn,
    check_grad_cam_side_effects,
)

#: Libraries that would do the student's job: not importable where the graded functions run
#: (``autograder.engine.check_kernel``), whatever name the student's code gives them.
HIDDEN_LIBRARIES = ("pytorch_grad_cam",)
