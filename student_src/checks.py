"""Self-checks the notebooks' visible test cells call, and that students can call themselves.

Comparisons use a relative error that stays meaningful near zero (as in EECS 498):

    rel_error(x, y) = max |x - y| / (max |x| + max |y|)      (0 when both are all zeros)

A check raises ``AssertionError`` with a message that says what is wrong; it never prints to
stderr (nbgrader scores a test cell that writes to stderr as failed).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn


def rel_error(x, y) -> float:
    """max|x - y| / (max|x| + max|y|), as a Python float; 0.0 when both are all zeros."""
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().double().cpu()
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).detach().double().cpu()
    if x.shape != y.shape:
        raise AssertionError(f"shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    scale = x.abs().max().item() + y.abs().max().item() if x.numel() else 0.0
    return 0.0 if scale == 0 else (x - y).abs().max().item() / scale


def assert_close(got, expected, tol: float, what: str) -> float:
    """Raise ``AssertionError`` unless ``rel_error(got, expected) <= tol``; return the error."""
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{what}: expected a torch.Tensor, got {type(got).__name__}")
    error = rel_error(got, expected)
    if not error <= tol:  # also catches NaN
        raise AssertionError(f"{what}: relative error {error:.2e} is above the tolerance {tol:.0e}")
    return error


def assert_shape(tensor, shape: tuple, what: str) -> None:
    """Raise unless ``tensor`` is a tensor of exactly ``shape``."""
    if not isinstance(tensor, torch.Tensor):
        raise AssertionError(f"{what}: expected a torch.Tensor, got {type(tensor).__name__}")
    if tuple(tensor.shape) != tuple(shape):
        raise AssertionError(f"{what}: expected shape {tuple(shape)}, got {tuple(tensor.shape)}")


def assert_map_invariants(maps, shape: tuple, what: str) -> None:
    """Heatmaps: a float tensor of ``shape``, finite, every value in [0, 1]."""
    assert_shape(maps, shape, what)
    if not maps.is_floating_point():
        raise AssertionError(f"{what}: expected a floating-point tensor, got {maps.dtype}")
    if not torch.isfinite(maps).all():
        raise AssertionError(f"{what}: contains NaN or infinite values")
    if maps.numel() and (maps.min() < 0 or maps.max() > 1):
        raise AssertionError(f"{what}: values must lie in [0, 1], got [{maps.min():.3g}, {maps.max():.3g}]")


def count_hooks(model: nn.Module) -> int:
    """Number of forward, forward-pre and backward hooks registered on ``model``'s modules."""
    from student_src.grading_client import HOOK_DICTS

    return sum(len(getattr(module, name, None) or {}) for module in model.modules() for name in HOOK_DICTS)


class ModelSnapshot:
    """What a well-behaved explanation function leaves untouched: modules, modes, weights, grads.

    ``snapshot = ModelSnapshot(model)`` before, ``snapshot.assert_unchanged(model, what)`` after.
    """

    def __init__(self, model: nn.Module):
        self.modules = {name: module for name, module in model.named_modules()}
        self.training = {name: module.training for name, module in model.named_modules()}
        self.inplace = {name: getattr(module, "inplace", None) for name, module in model.named_modules()}
        self.parameters = {name: p.detach().clone() for name, p in model.named_parameters()}
        self.hooks = count_hooks(model)

    def assert_unchanged(self, model: nn.Module, what: str) -> None:
        now = dict(model.named_modules())
        if set(now) != set(self.modules) or any(now[n] is not m for n, m in self.modules.items()):
            raise AssertionError(f"{what}: the model's modules were replaced or not restored")
        if {n: m.training for n, m in now.items()} != self.training:
            raise AssertionError(f"{what}: the model's train/eval mode was changed")
        if {n: getattr(m, "inplace", None) for n, m in now.items()} != self.inplace:
            raise AssertionError(f"{what}: a module's inplace flag was changed")
        if count_hooks(model) != self.hooks:
            raise AssertionError(f"{what}: {count_hooks(model) - self.hooks} hook(s) left registered on the model")
        for name, parameter in model.named_parameters():
            if not torch.equal(parameter.detach(), self.parameters[name]):
                raise AssertionError(f"{what}: parameter {name} was modified")
            if parameter.grad is not None and parameter.grad.abs().sum() > 0:
                raise AssertionError(f"{what}: parameter {name} has a .grad left behind")


@contextmanager
def quiet_warnings():
    """Silence Python warnings inside the block (a warning in a test cell fails it in nbgrader)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextmanager
def globals_replaced(function, **names):
    """Inside the block, ``function`` sees ``names`` as its globals; they are restored afterwards.

    A function defined in a notebook looks up the helpers it calls (``scale_cams``, say) in the
    notebook's namespace when it runs. The tests use this to check your Assignment 4 function
    with *known-good* Assignment 2 helpers, so that a mistake in helpers you pasted is not
    counted a second time::

        with checks.globals_replaced(layer_cam, scale_cams=library_cams.library_scale_cams):
            maps = layer_cam(model, "layer3", x)

    Every function of the same namespace sees the replacements during the block. Names that did
    not exist before are removed again; a function without ``__globals__`` is called as it is.
    """
    if hasattr(function, "globals_replaced"):  # a function the grader calls in another process
        with function.globals_replaced(**names):
            yield
        return
    namespace = getattr(function, "__globals__", None)
    if namespace is None or not names:
        yield
        return
    absent = object()
    saved = {name: namespace.get(name, absent) for name in names}
    namespace.update(names)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is absent:
                namespace.pop(name, None)
            else:
                namespace[name] = value


def hello() -> None:
    """First cell of every notebook: prove the environment works and say what is missing."""
    from student_src import assets, models

    print(f"Python {sys.version.split()[0]}, torch {torch.__version__}, device: {models.default_device()}")
    mode = "STAND-IN (untrained, synthetic images)" if assets.standin_requested() else "real"
    print(f"Assets: {mode}, in {assets.asset_root()}")
    checkpoint = models.checkpoint_path()
    from student_src.data import BATCH_FOLDER

    dataset = assets.asset_root() / BATCH_FOLDER / "test_batch"
    for what, path in (("model checkpoint", checkpoint), ("CIFAR-10 test split", dataset)):
        state = "ok" if path.is_file() else f"MISSING: run {assets.FETCH_COMMAND}"
        print(f"  {what}: {state}")
