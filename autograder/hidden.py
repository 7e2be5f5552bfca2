"""How a notebook's hidden tests call the hidden checks. Grader-only.

Inside a test cell, between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``::

    from autograder import hidden
    hidden.run("a02_gradcam", "check_grad_cam_layers", grad_cam)

:func:`run` imports ``autograder.checks.<module>``, checks that nothing the checks rely on was
replaced (see ``integrity``), calls the check, and turns any failure into one
``AssertionError`` whose message says what is wrong, without the traceback through the hidden
check's code (the feedback must not show it).
"""

from __future__ import annotations

import importlib
import os

from autograder import integrity


class HiddenCheckFailed(AssertionError):
    """A hidden check failed; the message says what is wrong, never the expected values."""


def _tampering_message(replaced: list[str]) -> str:
    shown = ", ".join(replaced[:3]) + (" ..." if len(replaced) > 3 else "")
    return (f"the grading environment was modified by the notebook ({shown} replaced): "
            "hidden checks cannot be trusted and score 0")


def _code_names(code) -> set:
    """Global and attribute names in a code object and the functions nested in it."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if hasattr(constant, "co_names"):
            names |= _code_names(constant)
    return names


def names_used(obj) -> set:
    """Names a student's function (or class, through its methods) refers to."""
    if isinstance(obj, type):  # its own methods only (an autograd Function links other classes)
        codes = [getattr(getattr(member, "__func__", member), "__code__", None) for member in vars(obj).values()]
        return set().union(set(), *(_code_names(code) for code in codes if code is not None))
    code = getattr(obj, "__code__", None)
    return _code_names(code) if code is not None else set()


def _shortcut(args, forbidden) -> str | None:
    """A message when a student function calls what the assignment asks them to implement."""
    for argument in args:
        if callable(argument):
            used = names_used(argument) & set(forbidden)
            if used:
                name = getattr(argument, "__name__", "your function")
                return (f"{name} calls {', '.join(sorted(used))}: this assignment asks you to implement it "
                        "yourself, not to call the library's version")
    return None


def run(module: str, check: str, *args, **kwargs) -> None:
    """Run ``autograder.checks.<module>.<check>(*args, **kwargs)`` as described above.

    A check module may list ``FORBIDDEN_NAMES``: library entry points that do the student's job
    (``pytorch_grad_cam``, ``library_grad_cam``, ...). A student function that refers to one of
    them fails every hidden check it is given to.
    """
    checks_module = importlib.import_module(f"autograder.checks.{module}")
    function = getattr(checks_module, check)
    shortcut = _shortcut(args, getattr(checks_module, "FORBIDDEN_NAMES", ()))
    if shortcut:
        raise HiddenCheckFailed(shortcut)
    if os.environ.get("NBGRADER_EXECUTION") == "autograde" and not integrity.armed():
        # Fail closed: without the guard cell's snapshot, tampering could not be seen.
        raise HiddenCheckFailed("the grading guard is not armed (the notebook's first cell did not run): "
                                "hidden checks cannot be trusted and score 0")
    replaced = integrity.verify()
    if replaced:
        raise HiddenCheckFailed(_tampering_message(replaced))
    failure = None
    try:
        function(*args, **kwargs)
    except AssertionError as error:
        failure = f"hidden check failed: {error}"
    except Exception as error:  # noqa: BLE001 (a student function that raises fails the check)
        failure = f"hidden check failed: your code raised {type(error).__name__}: {error}"
    replaced = integrity.verify()
    if replaced:
        raise HiddenCheckFailed(_tampering_message(replaced))
    if failure is not None:
        raise HiddenCheckFailed(failure[:1000]) from None
