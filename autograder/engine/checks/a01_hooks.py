"""Hidden checks of Assignment 1 (forward hooks). Grader-only."""

from __future__ import annotations

import copy
import functools

import torch
from torch import nn

from autograder.engine.checks.common import assert_close, call_student as _call, pristine_references
from solutions import hooks
from student_src.probe_models import FailsOnPurpose, alexnet_shaped
from student_src import checks
from student_src.models import build_cifar_resnet18

#: 10x the float32 noise of recorded activations between correct implementations (measured: at most
#: 3.0e-7 one image at a time, 0 batch reversed or 1 thread; autograder/authoring/assignments/README.md).
VALUE_TOLERANCE = 1e-5

#: The reference, on the objects as they were handed to the kernel (``common.on_pristine``).
reference = pristine_references(hooks)


@functools.lru_cache(maxsize=1)
def _seeded_resnet() -> nn.Module:
    """Built once per grading worker (a build costs about three deep copies): never handed out."""
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random state alone
        torch.manual_seed(1234)
        return build_cifar_resnet18()


def _resnet(train_mode: bool = False) -> nn.Module:
    """A fresh copy of the seeded random-init CIFAR ResNet-18, in train or eval mode."""
    return copy.deepcopy(_seeded_resnet()).train(train_mode)


def _inputs(batch: int, seed: int = 7, size: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size, size, generator=generator)


def _small_cnn() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(99)
        model = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
            nn.Sequential(nn.Conv2d(6, 5, 3, stride=2), nn.Tanh()),
            nn.Flatten(), nn.Linear(5 * 4 * 4, 3),
        )
    return model


def check_record_activations_values(record_activations) -> None:
    """Other layers (nested names, a BatchNorm, a block), other batch sizes, another model.

    Some layers are followed by an in-place operation that would overwrite an output kept
    without a copy: ``layer1.0.bn1`` (then ``ReLU(inplace=True)``), ``layer3.1.bn2`` (then
    ``out += identity``) and ``features.10`` of an AlexNet-shaped network (then an in-place ReLU).
    """
    cases = [
        (_resnet(), ["layer4", "layer1.0.conv1", "layer3.1.bn2", "layer2.0"], _inputs(2)),
        (_resnet(), ["fc", "layer1.0.bn1"], _inputs(1, seed=3)),
        (alexnet_shaped(), ["features.10", "features.3", "classifier.1"], _inputs(2, seed=4)),
    ]
    small = _small_cnn()
    cases.append((small, ["2.0", "1", "2"], _inputs(4, seed=5, size=9)))
    for model, names, x in cases:
        expected = reference.record_activations(model, names, x)
        got = _call(record_activations, f"record_activations(model, {names}, x)", model, names, x)
        if not isinstance(got, dict):
            raise AssertionError("record_activations must return a dict")
        if list(got) != list(names):
            raise AssertionError("the keys must be exactly the requested layer names, in the requested order")
        for name in names:
            checks.assert_shape(got[name], tuple(expected[name].shape), f"output of layer {name!r}")
            if got[name].requires_grad or got[name].grad_fn is not None:
                raise AssertionError(f"the output of layer {name!r} is not detached from the graph")
            assert_close(got[name], expected[name], VALUE_TOLERANCE, f"output of layer {name!r}")


def check_record_activations_cleanup(record_activations) -> None:
    """No hook left after success or after a failing forward; mode and weights unchanged."""
    model = _resnet(train_mode=True)
    snapshot = checks.ModelSnapshot(model)
    expected = reference.record_activations(_resnet(), ["layer1", "layer3.0.conv2"], _inputs(2))
    got = _call(record_activations, "record_activations on a model in train mode", model, ["layer1", "layer3.0.conv2"],
                _inputs(2))
    # Cleaning up counts only for a function that records (one that does nothing leaves no hook
    # either); the values are check_record_activations_values' business.
    if not isinstance(got, dict) or list(got) != list(expected) or any(
            not isinstance(got[name], torch.Tensor) or got[name].shape != value.shape for name, value in expected.items()):
        raise AssertionError("record_activations must return {layer name: its output}: cleaning up counts only "
                             "for a function that records")
    # BatchNorm running statistics change in train mode by design; compare everything else.
    if checks.count_hooks(model) != snapshot.hooks:
        raise AssertionError("a hook was left registered after a successful call")
    if not all(module.training for module in model.modules()):
        raise AssertionError("record_activations changed the model's train/eval mode")

    with torch.random.fork_rng(devices=[]):
        failing = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Sequential(nn.ReLU(), FailsOnPurpose()))
    try:
        record_activations(failing, ["0", "1.0"], _inputs(1, size=4))
    except Exception:  # noqa: BLE001 (any exception is fine; the hooks must still be removed)
        pass
    if checks.count_hooks(failing) != 0:
        raise AssertionError("hooks must be removed in `finally`: they stayed after the forward pass raised")

    eval_model = _resnet()
    eval_snapshot = checks.ModelSnapshot(eval_model)
    record_activations(eval_model, ["layer2"], _inputs(1))
    eval_snapshot.assert_unchanged(eval_model, "record_activations")


def check_top_channels(top_channels) -> None:
    """Other layers and k, per image, sorted, mean (not max or sum) activation."""
    model = _resnet()
    for layer, k, x in (("layer2.1", 7, _inputs(3, seed=11)), ("layer1.0.conv1", 1, _inputs(2, seed=12))):
        expected_values, expected_indices = reference.top_channels(model, layer, x, k)
        values, indices = _call(top_channels, f"top_channels at {layer}, k={k}", model, layer, x, k)
        checks.assert_shape(values, tuple(expected_values.shape), "top_channels values")
        checks.assert_shape(indices, tuple(expected_indices.shape), "top_channels indices")
        assert_close(values, expected_values, VALUE_TOLERANCE, f"top_channels values at {layer}")
        if not torch.equal(torch.as_tensor(indices).long(), expected_indices):
            raise AssertionError(f"top_channels picked other channels than the largest mean activations at {layer}")


#: Every check, in the order the notebook runs them.
CHECKS = (check_record_activations_values, check_record_activations_cleanup, check_top_channels)
