"""How a notebook's hidden tests call the hidden checks. Grader-only.

Inside a test cell, between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``::

    from autograder import hidden
    hidden.run("a02_gradcam", "check_grad_cam_layers", grad_cam)

:func:`run` imports ``autograder.checks.<module>``, checks that nothing the checks rely on was
replaced (see ``integrity``), calls the check, and turns any failure into one
``AssertionError`` whose message says what is wrong, without the traceback through the hidden
check's code (the feedback must not show it).

What a notebook cannot do to it (each has a test in ``tests/test_integrity.py`` and the tamper
suite ``tests/test_tamper.py``):

- replace a function the checks use (``np.allclose = lambda *a, **k: True``): ``integrity``;
- hand in the instructor's reference (``from solutions.hooks import top_channels``), or call it
  from its own function: an argument that is, or refers to (by name, closure or default, also
  through the notebook's other functions), code from ``solutions/`` or ``autograder/`` is refused;
- replace ``hidden.run`` itself with a function that passes: during autograde a check that
  passes prints a *pass signature*, an HMAC of the check's name and the id of the running cell
  under a key the grader made for this notebook alone (``integrity.arm``). The grader, outside
  the kernel (``nbgrader_plugins.AuditTestCells``), gives a test cell its points only when every
  check named in its source printed a valid signature in that very cell;
- call a check from inside a check (to sign a pass for other code): refused.

These raise the bar from one line of monkeypatching to reverse-engineering the grader's
internals (the key sits in the kernel's memory, as everything a notebook runs with must). The
boundary for hostile code is the container the grader runs in (see the README).
"""

from __future__ import annotations

import dis
import functools
import importlib
import os
import sys
from pathlib import Path

from autograder import integrity

GRADER_ROOT = Path(__file__).resolve().parent.parent
#: Instructor-only code: a notebook's function must not call into it.
GRADER_DIRS = tuple(str(GRADER_ROOT / name) + os.sep for name in ("autograder", "solutions"))
#: Code that is neither the grader's nor the notebook's: Python, installed packages, student_src.
LIBRARY_DIRS = tuple({str(Path(prefix).resolve()) + os.sep for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
                     | {str(Path(prefix)) + os.sep for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
                     | {str(GRADER_ROOT / "student_src") + os.sep})
#: What a passing check prints during autograde (the grader reads and removes these lines).
PASS_MARK = "[xai-kit check passed]"


class HiddenCheckFailed(AssertionError):
    """A hidden check failed; the message says what is wrong, never the expected values."""


def is_grader_code(filename: str) -> bool:
    return filename.startswith(GRADER_DIRS)


def is_notebook_code(filename: str) -> bool:
    """Code a student wrote (a notebook cell, or a file of theirs), as opposed to the grader's,
    Python's or an installed package's."""
    return not (filename.startswith(GRADER_DIRS) or filename.startswith(LIBRARY_DIRS)
                or filename.startswith("<frozen"))


def _tampering_message(replaced: list[str]) -> str:
    shown = ", ".join(replaced[:3]) + (" ..." if len(replaced) > 3 else "")
    return (f"the grading environment was modified by the notebook ({shown} replaced): "
            "hidden checks cannot be trusted and score 0")


def _nested_codes(code):
    """A code object, then the code of every function, class body and comprehension nested in it."""
    yield code
    for constant in code.co_consts:
        if hasattr(constant, "co_names"):
            yield from _nested_codes(constant)


def _code_names(code) -> set:
    """Global and attribute names in a code object and the functions nested in it."""
    return {name for nested in _nested_codes(code) for name in nested.co_names}


def _global_names(code) -> set:
    """Names a code object (and the functions nested in it) looks up as globals."""
    return {instruction.argval for nested in _nested_codes(code) for instruction in dis.get_instructions(nested)
            if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME")}


def _codes_of(obj) -> list:
    """The code objects behind a callable: a function's, a class's own methods', a partial's."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    obj = getattr(obj, "__func__", obj)  # bound and class methods
    if isinstance(obj, type):  # its own methods only (an autograd Function links other classes)
        members = [getattr(getattr(member, "__func__", member), "__code__", None) for member in vars(obj).values()]
        return [code for code in members if code is not None]
    code = getattr(obj, "__code__", None)
    return [code] if code is not None else []


def names_used(obj) -> set:
    """Names a student's function (or class, through its methods) refers to."""
    return set().union(set(), *(_code_names(code) for code in _codes_of(obj)))


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


def _grader_object(value) -> bool:
    """True for the instructor's own code: a module, function or class from ``autograder/`` or
    ``solutions/`` (also wrapped in a partial or bound as a method)."""
    if isinstance(value, type(sys)):
        return is_grader_code(getattr(value, "__file__", None) or "")
    if isinstance(value, type):  # by its methods and bases (a notebook's classes live in "__main__")
        for klass in value.__mro__:
            module = sys.modules.get(klass.__module__) if klass.__module__ != "__main__" else None
            if is_grader_code(getattr(module, "__file__", None) or "") or any(
                    is_grader_code(code.co_filename) for code in _codes_of(klass)):
                return True
        return False
    return any(is_grader_code(code.co_filename) for code in _codes_of(value))


def _values_used(function) -> list:
    """(name, value) of what a function refers to: its globals by name, closure cells, defaults."""
    used = []
    for code in _codes_of(function):
        namespace = getattr(getattr(function, "__func__", function), "__globals__", None) or {}
        used += [(name, namespace[name]) for name in _global_names(code) if name in namespace]
    closure = getattr(getattr(function, "__func__", function), "__closure__", None) or ()
    for cell in closure:
        try:
            used.append(("(closure)", cell.cell_contents))
        except ValueError:  # an empty cell
            continue
    defaults = getattr(function, "__defaults__", None) or ()
    used += [("(default)", value) for value in defaults]
    used += [(name, value) for name, value in (getattr(function, "__kwdefaults__", None) or {}).items()]
    return used


def _reference_use(args, depth: int = 4) -> str | None:
    """A message when an argument is the instructor's reference, or notebook code that reaches it.

    ``from solutions.hooks import top_channels`` (handing in the reference) and ``def
    top_channels(...): return reference(...)`` both fail: the names a function uses are looked
    up in its namespace, closures and defaults, following the notebook's own helper functions.
    """
    seen, pending = set(), [(getattr(arg, "__name__", "your function"), arg, 0) for arg in args if callable(arg)]
    while pending:
        owner, function, level = pending.pop()
        if id(function) in seen:
            continue
        seen.add(id(function))
        if _grader_object(function):
            return f"{owner} is the instructor's reference, not your code: it is not graded"
        if level >= depth:
            continue
        for name, value in _values_used(function):
            if _grader_object(value):
                return (f"{owner} uses the instructor's code ({name}): hand in your own implementation; "
                        "it is not graded")
            notebook_code = callable(value) and any(is_notebook_code(code.co_filename) for code in _codes_of(value))
            if notebook_code:
                pending.append((owner, value, level + 1))
    return None


def _make_run(verify=integrity.verify, armed=integrity.armed, sign=integrity.sign_pass):
    """Build :func:`run` around the integrity functions as they are now (the module is imported by
    the guard cell, before any student code): replacing ``integrity.verify`` later changes nothing."""
    running = []

    def run(module: str, check: str, *args, **kwargs) -> None:
        """Run ``autograder.checks.<module>.<check>(*args, **kwargs)`` as described above.

        A check module may list ``FORBIDDEN_NAMES``: library entry points that do the student's job
        (``pytorch_grad_cam``, ``library_grad_cam``, ...). A student function that refers to one of
        them fails every hidden check it is given to.
        """
        if running:
            raise HiddenCheckFailed("a hidden check cannot be started from inside another one")
        checks_module = importlib.import_module(f"autograder.checks.{module}")
        function = getattr(checks_module, check)
        refused = _reference_use(args) or _shortcut(args, getattr(checks_module, "FORBIDDEN_NAMES", ()))
        if refused:
            raise HiddenCheckFailed(refused)
        if os.environ.get("NBGRADER_EXECUTION") == "autograde" and not armed():
            # Fail closed: without the guard cell's snapshot, tampering could not be seen.
            raise HiddenCheckFailed("the grading guard is not armed (the notebook's first cell did not run): "
                                    "hidden checks cannot be trusted and score 0")
        replaced = verify()
        if replaced:
            raise HiddenCheckFailed(_tampering_message(replaced))
        failure = None
        running.append(check)
        try:
            function(*args, **kwargs)
        except AssertionError as error:
            failure = f"hidden check failed: {error}"
        except Exception as error:  # noqa: BLE001 (a student function that raises fails the check)
            failure = f"hidden check failed: your code raised {type(error).__name__}: {error}"
        finally:
            running.clear()
        replaced = verify()
        if replaced:
            raise HiddenCheckFailed(_tampering_message(replaced))
        if failure is not None:
            raise HiddenCheckFailed(failure[:1000]) from None
        signature = sign(f"{module}.{check}")
        if signature is not None:
            print(f"{PASS_MARK} {module}.{check} {signature}", flush=True)

    return run


run = _make_run()
