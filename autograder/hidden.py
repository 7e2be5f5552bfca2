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


def run(module: str, check: str, *args, **kwargs) -> None:
    """Run ``autograder.checks.<module>.<check>(*args, **kwargs)`` as described above."""
    function = getattr(importlib.import_module(f"autograder.checks.{module}"), check)
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
