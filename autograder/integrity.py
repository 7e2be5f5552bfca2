"""Detect a notebook that tampers with the grading machinery. Grader-only.

At autograde time a guard cell runs *before* any student code (``nbgrader_plugins.InjectGuard``)
and calls :func:`arm`, which records the identity of every function the checks rely on: the
comparison functions of torch and numpy (``allclose``, ``equal``, ``isclose``, ``testing``), the
``torch.Tensor`` methods, Python's builtins, ``student_src.checks``, the reference solutions and
the hidden checks themselves. :func:`verify` lists what was replaced since; ``hidden.run`` calls
it before and after every hidden check, so ``np.allclose = lambda *a, **k: True`` (or replacing
``solutions.gradcam.grad_cam`` with the student's own function) makes the checks fail with
"the grading environment was modified" instead of passing.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import pkgutil
import sys

_snapshot: dict = {}
# Builtins the checks rely on (IPython itself swaps others, such as input and display, per cell).
WATCHED_BUILTINS = ("abs", "all", "any", "bool", "callable", "dict", "enumerate", "float", "getattr", "hasattr",
                    "int", "isinstance", "issubclass", "len", "list", "max", "min", "range", "repr", "round",
                    "set", "sorted", "str", "sum", "tuple", "type", "zip", "__import__")


def _watched_modules() -> list:
    import numpy
    import numpy.testing
    import torch
    import torch.nn.functional
    import torch.testing

    import autograder.checks
    import solutions
    import student_src.checks

    modules = [numpy, numpy.testing, torch, torch.Tensor, torch.nn.functional, torch.testing,
               student_src.checks, sys.modules[__name__]]
    for package in (solutions, autograder.checks):
        for info in pkgutil.iter_modules(package.__path__):
            try:
                modules.append(importlib.import_module(f"{package.__name__}.{info.name}"))
            except Exception:  # noqa: BLE001 (a broken module cannot be watched; its checks fail on their own)
                continue
    hidden = sys.modules.get("autograder.hidden") or importlib.import_module("autograder.hidden")
    return modules + [hidden]


def _identities() -> dict:
    from torch import Tensor as torch_tensor

    identities = {f"builtins.{name}": id(getattr(builtins, name, None)) for name in WATCHED_BUILTINS}
    for module in _watched_modules():
        owner = getattr(module, "__name__", repr(module))
        for name in dir(module):
            if name.startswith("__") and module is not torch_tensor:
                continue  # module dunders (__file__, __loader__, ...) are not functions the checks call
            try:
                value = inspect.getattr_static(module, name)  # raw: a classmethod is not re-bound per access
            except Exception:  # noqa: BLE001 (lazy attributes that fail to load are not watched)
                continue
            if callable(value) or isinstance(value, (classmethod, staticmethod)):
                identities[f"{owner}.{name}"] = id(value)
    return identities


def arm() -> int:
    """Record the current functions; return how many are watched."""
    _snapshot.clear()
    _snapshot.update(_identities())
    return len(_snapshot)


def armed() -> bool:
    return bool(_snapshot)


def verify() -> list[str]:
    """Names of watched functions replaced or removed since :func:`arm` (empty when untouched)."""
    if not _snapshot:
        return []
    now = _identities()
    return sorted(name for name, identity in _snapshot.items() if now.get(name) != identity)
