"""Detect a notebook that tampers with the grading machinery. Grader-only.

At autograde time a guard cell runs *before* any student code (``nbgrader_plugins.InjectGuard``)
and calls :func:`arm`, which records the identity of every function the checks rely on: the
comparison functions of torch and numpy (``allclose``, ``equal``, ``isclose``, ``testing``), the
``torch.Tensor`` methods, Python's builtins, ``student_src.checks``, the reference solutions and
the hidden checks themselves. :func:`verify` lists what was replaced since; ``hidden.run`` calls
it before and after every hidden check, so ``np.allclose = lambda *a, **k: True`` (or replacing
``solutions.gradcam.grad_cam`` with the student's own function) makes the checks fail with
"the grading environment was modified" instead of passing.

:func:`arm` also takes this notebook's signing key (see ``hidden`` and :func:`pass_signature`).
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

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


def pass_signature(key: bytes, message_id: str, name: str) -> str:
    """HMAC-SHA256 of ``message_id:name`` under ``key``: what a passing check prints during autograde.

    ``message_id`` is the Jupyter id of the execute request of the running cell: the grader reads
    it from the kernel's reply, so a signature is only valid in the cell that made it.
    """
    return hmac.new(key, f"{message_id}:{name}".encode(), hashlib.sha256).hexdigest()


def _current_message_id() -> str:
    try:
        from IPython import get_ipython

        return get_ipython().kernel.get_parent("shell")["header"]["msg_id"]
    except Exception:  # noqa: BLE001 (not in a kernel: nothing to sign for)
        return ""


def _make_signer():
    key: list = []

    def set_key(value: bytes) -> None:
        key[:] = [value]

    def sign_pass(name: str) -> str | None:
        """The pass signature of check ``name`` in the running cell; None when no key was given."""
        return pass_signature(key[0], _current_message_id(), name) if key else None

    return set_key, sign_pass


_set_key, sign_pass = _make_signer()


def arm(key_file: str | None = None) -> int:
    """Record the current functions; return how many are watched.

    ``key_file``: a file holding this notebook's signing key (hex), written by the grader and
    deleted here as soon as it is read, before any student code runs.
    """
    if key_file is not None:
        path = Path(key_file)
        try:
            _set_key(bytes.fromhex(path.read_text().strip()))
        finally:
            path.unlink(missing_ok=True)
    # Imported now, before any student code: hidden.run is built around the functions as they are.
    importlib.import_module("autograder.hidden")
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
