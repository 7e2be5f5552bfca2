"""Hidden checks of Assignment 3 (guided backpropagation, Guided Grad-CAM). Grader-only.

Each ``check_*`` takes student functions (the parameters are named after them), builds its own
inputs (a seeded random-init CIFAR ResNet-18, a tiny network whose one in-place ``nn.ReLU``
module runs twice, hand-made tensors with negative inputs and negative incoming gradients)
and compares with ``solutions.guided``. It raises ``AssertionError`` saying what is wrong,
never the expected numbers. Every check runs in well under a second on a CPU (16x16 inputs
mostly: the ResNet takes any size), silently, and leaves the caller's random state alone.

Checks, by student function:

* ``input_gradient``: :func:`check_input_gradient` (values, targets, no side effects)
* ``vanilla_saliency``: :func:`check_vanilla_saliency`
* ``gradient_to_image``: :func:`check_gradient_to_image`
* ``GuidedReLUFunction``: :func:`check_guided_relu_rule`
* ``guided_backprop``: :func:`check_guided_backprop_values`,
  :func:`check_guided_backprop_restores_model` (same module objects and ``inplace`` flags, no
  hook, plain ReLUs again, after success and after a forward pass that raises),
  :func:`check_guided_backprop_no_side_effects` (the caller's x, ``.grad``, accumulation)
* ``guided_grad_cam`` (with the student's ``guided_backprop``): :func:`check_guided_grad_cam`,
  :func:`check_guided_grad_cam_upsamples`. Both give ``guided_grad_cam`` its Grad-CAM through
  ``cam_fn`` (the reference ``grad_cam``, or fixed maps) and compare with the student's own
  ``guided_backprop``, so that neither an Assignment 2 mistake nor a ``guided_backprop``
  mistake costs these points a second time: they check the combination only.
"""

from __future__ import annotations

import copy
import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from solutions import guided as guided_solutions
from autograder.engine.checks.common import (assert_close, call_student as _call, forward_and_gradient, is_autograd_function,
                                             on_pristine, plain_input_gradient, pristine_references)
from student_src.probe_models import FailsAfterReLU, SharedReLUNet, alexnet_shaped
from student_src import checks
from student_src.models import build_cifar_resnet18

#: Input gradients and guided backprop: measured noise at most 4.2e-7 (one image at a time); 1e-4
#: because the images below share it (autograder/authoring/assignments/README.md).
GRADIENT_TOLERANCE = 1e-4
IMAGE_TOLERANCE = 1e-4  # also accepts torch's default unbiased std (about 3e-5 here, 32x30 images)

#: The reference, on the objects as they were handed to the kernel (``common.on_pristine``).
reference = pristine_references(guided_solutions)


@functools.lru_cache(maxsize=None)
def _resnet_prototype(seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random state alone
        torch.manual_seed(seed)
        return build_cifar_resnet18().eval()


def _resnet(seed: int = 1234) -> nn.Module:
    """A fresh copy of a seeded random-init CIFAR ResNet-18 in eval mode (the student may break it)."""
    return copy.deepcopy(_resnet_prototype(seed))


def _inputs(batch: int, seed: int, size: int = 16) -> torch.Tensor:
    """Seeded normal noise (batch, 3, size, size). 16x16 keeps the checks fast; the ResNet takes any size."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size, size, generator=generator)


@on_pristine
def _resolve_targets(targets, model: nn.Module, x: torch.Tensor) -> list:
    """Targets as a list of B ints (``None``: the predicted classes)."""
    if targets is None:
        with torch.no_grad():
            return model(x).argmax(dim=1).tolist()
    return torch.as_tensor(targets).long().reshape(-1).expand(len(x)).tolist()


def _compare_cases(function, cases, shape_of, tolerance: float, validate=None) -> None:
    """``cases``: (what, model, x, targets, expected); the student's function runs on a fresh copy of x.

    ``shape_of(x)`` is the expected output shape; ``validate(got, what)`` may check more first.
    """
    for what, model, x, targets, expected in cases:
        got = _call(function, what, model, x.clone(), targets)
        checks.assert_shape(got, shape_of(x), what)
        if validate is not None:
            validate(got, what)
        assert_close(got, expected, tolerance, what)


# ---------------------------------------------------------------------------------------------
# input_gradient, vanilla_saliency


def _assert_no_side_effects(function, name: str) -> None:
    """The caller's x untouched (values, requires_grad, .grad), no parameter .grad, no accumulation."""
    model = SharedReLUNet().eval()
    x = _inputs(2, 21, size=4)
    x_before = x.clone()
    first = _call(function, name, model, x)
    checks.assert_shape(first, tuple(x.shape), name)
    first = first.detach().clone()  # a function that returns x.grad would see it change later
    if not torch.equal(x, x_before):
        raise AssertionError(f"{name}: the values of the caller's x were modified")
    if x.requires_grad or x.grad is not None:
        raise AssertionError(f"{name}: the caller's x was given requires_grad or a .grad: "
                             "work on a detached copy, x.detach().clone().requires_grad_(True)")
    leaf = x.clone().requires_grad_(True)
    second = _call(function, f"{name} on an x that requires grad", model, leaf)
    if leaf.grad is not None:
        raise AssertionError(f"{name}: when the caller's x requires grad, it must not receive a .grad")
    if any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()):
        raise AssertionError(f"{name}: the model's parameters were left with a .grad: "
                             "compute only the input gradient with torch.autograd.grad(score, x)")
    if checks.rel_error(second, first) > 1e-6:
        raise AssertionError(f"{name}: two calls on the same input gave different results "
                             "(do gradients accumulate between calls?)")


def _resnet_and_tiny_cases(reference_function, name: str, resnet_targets, tiny_targets) -> list:
    """Cases on the ResNet-18 (2 images) and on the tiny shared-ReLU net (3 images)."""
    resnet, tiny = _resnet(), SharedReLUNet().eval()
    x, tiny_x = _inputs(2, 11), _inputs(3, 12, size=4)
    cases = []
    for model, inputs, model_name, all_targets in ((resnet, x, "the ResNet-18", resnet_targets),
                                                   (tiny, tiny_x, "a small CNN", tiny_targets)):
        for description, targets in all_targets:
            cases.append((f"{name} on {model_name} with targets={description}", model, inputs, targets,
                          reference_function(model, inputs, targets)))
    return cases


def check_input_gradient(input_gradient) -> None:
    """Batched; the predicted class, a list, an int and a tensor of targets; no side effects."""
    cases = _resnet_and_tiny_cases(reference.input_gradient, "input_gradient",
                                   (("None", None), ("[3, 0]", [3, 0])),
                                   (("4", 4), ("a tensor", torch.tensor([1, 4, 2]))))
    _compare_cases(input_gradient, cases, lambda x: tuple(x.shape), GRADIENT_TOLERANCE)
    _assert_no_side_effects(input_gradient, "input_gradient")


def check_vanilla_saliency(vanilla_saliency) -> None:
    """|gradient| maximised over the colour channels, (B, H, W), batched, predicted and given targets."""
    cases = _resnet_and_tiny_cases(reference.vanilla_saliency, "vanilla_saliency",
                                   (("None", None),), (("[2, 0, 4]", [2, 0, 4]),))

    def non_negative(got, what):
        if got.numel() and got.min() < 0:
            raise AssertionError(f"{what}: a saliency map is a magnitude: it cannot be negative")

    _compare_cases(vanilla_saliency, cases, lambda x: (x.shape[0],) + tuple(x.shape[2:]), GRADIENT_TOLERANCE,
                   validate=non_negative)


# ---------------------------------------------------------------------------------------------
# gradient_to_image


def check_gradient_to_image(gradient_to_image) -> None:
    """Per-image standardisation, batch and single image, numpy (B, H, W, 3) in [0, 1], zeros -> grey."""
    generator = torch.Generator().manual_seed(41)
    scales, offsets = torch.tensor([1e-3, 1.0, 50.0]), torch.tensor([0.0, 0.3, -20.0])
    gradients = torch.randn(3, 3, 32, 30, generator=generator) * scales.view(3, 1, 1, 1) + offsets.view(3, 1, 1, 1)
    before = gradients.clone()
    got = _call(gradient_to_image, "gradient_to_image", gradients)
    if not isinstance(got, np.ndarray):
        raise AssertionError(f"gradient_to_image must return a numpy array, got {type(got).__name__}")
    if not np.issubdtype(got.dtype, np.floating):
        raise AssertionError(f"gradient_to_image must return floats in [0, 1], got dtype {got.dtype}")
    if got.shape != (3, 32, 30, 3):
        raise AssertionError("gradient_to_image of a (B, 3, H, W) batch must have shape (B, H, W, 3), "
                             f"got {got.shape} for a {tuple(gradients.shape)} batch")
    if not np.isfinite(got).all() or got.min() < 0 or got.max() > 1:
        raise AssertionError("gradient_to_image must return finite values in [0, 1]")
    if not torch.equal(gradients, before):
        raise AssertionError("gradient_to_image modified the gradients it was given")
    assert_close(torch.from_numpy(got), reference.gradient_to_image(gradients), IMAGE_TOLERANCE,
                        "gradient_to_image on a batch whose images have very different scales")

    single = _call(gradient_to_image, "gradient_to_image on one (3, H, W) gradient", gradients[1])
    if not isinstance(single, np.ndarray) or single.shape != (32, 30, 3):
        raise AssertionError("gradient_to_image of one (3, H, W) gradient must return an (H, W, 3) array")
    assert_close(torch.from_numpy(single), torch.from_numpy(got[1]), IMAGE_TOLERANCE,
                        "gradient_to_image of one image vs the same image inside a batch "
                        "(each image is standardised with its own mean and std)")

    zeros = _call(gradient_to_image, "gradient_to_image on zeros", torch.zeros(2, 3, 4, 4))
    if not np.isfinite(np.asarray(zeros)).all() or not np.allclose(zeros, 0.5, atol=1e-6):
        raise AssertionError("an all-zero gradient must become uniform grey (0.5), without NaN")


# ---------------------------------------------------------------------------------------------
# GuidedReLUFunction


def _rule_cases():
    """Hand-made (x, incoming gradient) pairs: every sign combination, zeros, and a random 4-D one."""
    x = torch.tensor([[-2.0, -0.5, 0.0, 0.5, 1.5, 3.0, 0.0],
                      [1.0, -1.0, 2.0, -3.0, 0.0, 4.0, 0.25]])
    grad = torch.tensor([[1.0, -1.0, 2.0, 3.0, -2.0, 0.5, -1.0],
                         [-1.0, 2.0, 0.0, -0.5, -1.0, 1.0, -4.0]])
    generator = torch.Generator().manual_seed(51)
    yield "a (2, 7) tensor", x, grad
    random_x, random_grad = torch.randn(2, 2, 3, 4, 4, generator=generator)
    yield "a (2, 3, 4, 4) tensor", random_x, random_grad


def check_guided_relu_rule(GuidedReLUFunction) -> None:  # noqa: N803 (the student's class name)
    """Forward is ReLU; backward keeps a gradient only where input > 0 AND incoming gradient > 0."""
    if not is_autograd_function(GuidedReLUFunction):
        raise AssertionError("GuidedReLUFunction must be a subclass of torch.autograd.Function")
    for description, x, grad in _rule_cases():
        # Copies go to the kernel: x and grad, which the expected values come from, stay as they are here.
        output, got, incoming, leaf = _call(forward_and_gradient, f"GuidedReLUFunction (forward, then backward) on "
                                            f"{description}", GuidedReLUFunction.apply, x.clone(), grad.clone())
        checks.assert_shape(output, tuple(x.shape), f"GuidedReLUFunction forward on {description}")
        if not torch.equal(leaf, x):
            raise AssertionError("GuidedReLUFunction.forward modified its input in place")
        assert_close(output, x.clamp(min=0), 1e-7, f"GuidedReLUFunction forward (must be ReLU) on {description}")
        if not torch.equal(incoming, grad):
            raise AssertionError("GuidedReLUFunction.backward modified grad_output in place: return a new "
                                 "tensor (autograd may pass the same gradient to several branches)")
        checks.assert_shape(got, tuple(x.shape), f"GuidedReLUFunction backward on {description}")
        if (got[x <= 0] != 0).any():
            raise AssertionError("GuidedReLUFunction.backward: where the forward input is <= 0 the gradient "
                                 "must be 0 (guided backprop keeps the ReLU's own gate)")
        if (got[grad < 0] != 0).any():
            raise AssertionError("GuidedReLUFunction.backward: a negative incoming gradient must become 0 "
                                 "(only positive gradients pass a guided ReLU)")
        passes = (x > 0) & (grad > 0)
        assert_close(got[passes], grad[passes], 1e-7, "GuidedReLUFunction.backward where the input "
                            "and the incoming gradient are positive (the gradient must pass unchanged)")


# ---------------------------------------------------------------------------------------------
# guided_backprop


def check_guided_backprop_values(guided_backprop) -> None:
    """A tiny net whose one in-place ReLU runs twice; the ResNet-18, batched, predicted and given targets."""
    tiny = SharedReLUNet().eval()
    tiny_x = _inputs(3, 61, size=4)
    resnet = _resnet()
    cases = [(f"guided_backprop on a small network whose ReLU module runs twice, targets={targets}",
              tiny, tiny_x, targets, reference.guided_backprop(tiny, tiny_x, targets))
             for targets in (None, [4, 0, 2])]
    for x, targets in ((_inputs(3, 62), None), (_inputs(2, 63, size=32), [2, 5])):
        what = f"guided_backprop on the ResNet-18, {len(x)} images of {x.shape[-1]}x{x.shape[-1]}, targets={targets}"
        cases.append((what, resnet, x, targets, reference.guided_backprop(resnet, x, targets)))
    alexnet, alexnet_x = alexnet_shaped(), _inputs(2, 64, size=32)  # in-place ReLUs in features and classifier
    cases.append(("guided_backprop on an AlexNet-shaped network (in-place ReLUs), targets=[1, 8]", alexnet,
                  alexnet_x, [1, 8], reference.guided_backprop(alexnet, alexnet_x, [1, 8])))
    _compare_cases(guided_backprop, cases, lambda x: tuple(x.shape), GRADIENT_TOLERANCE)


def _assert_plain_gradients_back(function, model: nn.Module, x: torch.Tensor, before: torch.Tensor, name: str) -> None:
    if checks.rel_error(plain_input_gradient(function, model, x), before) > 1e-6:
        raise AssertionError(f"after {name} returned, the model's ReLUs still behave as guided ReLUs: "
                             "restore them (remove hooks, put the original modules back) in `finally`")


def check_guided_backprop_restores_model(guided_backprop) -> None:
    """Same module objects, inplace flags, modes, no hooks, plain ReLUs again: after success and after an exception."""
    model = _resnet()
    x = _inputs(2, 71)
    snapshot = checks.ModelSnapshot(model)
    plain_before = reference.input_gradient(model, x)
    _call(guided_backprop, "guided_backprop", model, x.clone())
    model.zero_grad(set_to_none=True)  # parameter .grad is check_guided_backprop_no_side_effects' business
    snapshot.assert_unchanged(model, "guided_backprop")
    _assert_plain_gradients_back(guided_backprop, model, x, plain_before, "guided_backprop")

    failing = FailsAfterReLU().train()
    failing_snapshot = checks.ModelSnapshot(failing)
    try:
        guided_backprop(failing, _inputs(1, 72, size=2))
    except Exception:  # noqa: BLE001 (the exception must come through; the model must be restored)
        pass
    else:
        raise AssertionError("guided_backprop must let an exception of the forward pass propagate")
    failing.zero_grad(set_to_none=True)
    failing_snapshot.assert_unchanged(failing, "guided_backprop, after the model's forward pass raised")


def check_guided_backprop_no_side_effects(guided_backprop) -> None:
    """The caller's x untouched, no .grad on x or the parameters, two calls give the same result."""
    _assert_no_side_effects(guided_backprop, "guided_backprop")


# ---------------------------------------------------------------------------------------------
# guided_grad_cam


class _RecordingCam:
    """A ``cam_fn`` that records how it was called and returns ``maps_fn``'s maps."""

    def __init__(self, maps_fn):
        self.maps_fn = maps_fn
        self.calls = []

    def __call__(self, model, layer_name, x, targets=None):
        maps = self.maps_fn(model, layer_name, x, targets)
        self.calls.append((layer_name, targets, maps))
        return maps


def _check_combination(guided_grad_cam, guided_backprop, model, layer, x, targets, maps_fn, what) -> None:
    """guided_grad_cam with a recording cam_fn == the student's guided_backprop * upsampled maps.

    The expected product is made here, not from what the call left behind: the maps are
    ``maps_fn`` of the model as it was handed over (what ``cam_fn`` gives an honest call), and
    ``guided_backprop`` runs on a fresh copy of it (whatever ``guided_grad_cam`` did to its model)."""
    cam = _RecordingCam(maps_fn)
    got = _call(guided_grad_cam, what, model, layer, x.clone(), targets, cam_fn=cam)
    checks.assert_shape(got, tuple(x.shape), what)
    if not cam.calls:
        raise AssertionError(f"{what}: guided_grad_cam must get its Grad-CAM maps from cam_fn when one is given")
    layer_used, targets_used, _ = cam.calls[-1]
    if layer_used != layer:
        raise AssertionError(f"{what}: cam_fn must be called with the layer_name given to guided_grad_cam")
    if _resolve_targets(targets_used, model, x) != _resolve_targets(targets, model, x):
        raise AssertionError(f"{what}: cam_fn must explain the same targets as guided_backprop")
    guided = _call(guided_backprop, f"{what}: your guided_backprop", on_pristine(copy.deepcopy)(model), x.clone(), targets)
    maps = on_pristine(maps_fn)(model, layer, x, targets)
    upsampled = F.interpolate(torch.as_tensor(maps)[:, None].float(), size=tuple(x.shape[-2:]),
                              mode="bilinear", align_corners=False)
    assert_close(got, guided * upsampled, GRADIENT_TOLERANCE,
                        f"{what}: the product of guided_backprop and each image's Grad-CAM map "
                        "(the same map for the 3 channels)")


def check_guided_grad_cam(guided_grad_cam, guided_backprop) -> None:
    """Uses cam_fn (given the reference Grad-CAM) with the same layer and targets; multiplies per pixel."""
    model = _resnet()
    x = _inputs(3, 81)
    for layer, targets in (("layer3", [1, 4, 7]), ("layer4.1", None)):
        _check_combination(guided_grad_cam, guided_backprop, model, layer, x, targets, guided_solutions.grad_cam,
                           f"guided_grad_cam at {layer!r}, targets={targets}")
    _check_combination(guided_grad_cam, guided_backprop, alexnet_shaped(), "features.10", _inputs(2, 82, size=32),
                       [3, 6], guided_solutions.grad_cam,
                       "guided_grad_cam at the last convolution of an AlexNet-shaped network (in-place ReLUs)")


def check_guided_grad_cam_upsamples(guided_grad_cam, guided_backprop) -> None:
    """A cam_fn returning 4x4 maps for 16x16 images: bilinear upsampling (align_corners=False) first."""
    model = _resnet()
    x = _inputs(2, 91)
    low_resolution = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(92))
    _check_combination(guided_grad_cam, guided_backprop, model, "layer3", x, [0, 6],
                       lambda *args: low_resolution.clone(),
                       "guided_grad_cam with a cam_fn that returns 4x4 maps for 16x16 images")


#: Every check, in the order the notebook runs them.
CHECKS = (
    check_input_gradient,
    check_vanilla_saliency,
    check_gradient_to_image,
    check_guided_relu_rule,
    check_guided_backprop_values,
    check_guided_backprop_restores_model,
    check_guided_backprop_no_side_effects,
    check_guided_grad_cam,
    check_guided_grad_cam_upsamples,
)

#: Libraries that would do the student's job (captum's saliency and guided backprop,
#: pytorch-grad-cam's GuidedBackpropReLUModel and deprocess_image): not importable where the graded
#: functions run (``autograder.engine.check_kernel``). The checks give guided_grad_cam its Grad-CAM
#: through ``cam_fn``.
HIDDEN_LIBRARIES = ("captum", "pytorch_grad_cam")
