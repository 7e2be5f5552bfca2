"""Helpers shared by the hidden checks."""

from __future__ import annotations

import functools
import types


def assert_finite_close(got, expected, tolerance: float, what: str, layout: str, values: str, **options) -> None:
    """``got`` has ``expected``'s shape (``layout`` says what its axes are), is finite floating
    point (``values`` names what it holds), and is within ``tolerance`` of it (rel_error;
    ``options`` as :func:`assert_close`'s)."""
    import torch

    from student_src import checks

    checks.assert_shape(got, tuple(expected.shape), f"{what} ({layout})")
    if not got.is_floating_point() or not torch.isfinite(got).all():
        raise AssertionError(f"{what}: expected finite floating-point {values}")
    assert_close(got, expected, tolerance, what, **options)


def assert_close(got, expected, tolerance: float, what: str, **options) -> float:
    """``student_src.checks.assert_close`` as a hidden check uses it: the message says how the
    values differ (``student_src.diagnose``) but never shows an expected value."""
    from student_src import checks

    return checks.assert_close(got, expected, tolerance, what, reveal_expected=False, **options)


def call_student(function, what: str, *args, **kwargs):
    """Call the student's code as the visible checks' ``checks.call`` does, on the grader's side:
    a known crash becomes the sentence that names the mistake (a late-bound hook name, a 0-d
    target, ...), any other exception an AssertionError that says which call raised it, and a
    tensor argument changed in place or a result of ``None`` is named."""
    from student_src import checks

    inputs = checks.input_snapshots(function, args, kwargs)
    try:
        result = function(*args, **kwargs)
    except AssertionError:
        raise
    except Exception as error:  # noqa: BLE001 (any failure of the student's code fails the check)
        explanation = checks.explain_crash(error, (*args, *kwargs.values())) or error
        raise AssertionError(f"{what} raised {type(error).__name__}: {explanation}") from error
    changed = checks.changed_inputs(inputs, what)
    if changed:
        raise AssertionError(changed)
    if result is None:
        raise AssertionError(f"{what} returned None: it must `return` its result, not print it")
    return result


def is_autograd_function(obj) -> bool:
    """Whether ``obj`` is a subclass of ``torch.autograd.Function`` (also when it lives in the
    notebook's kernel and the check holds a ``check_server.RemoteFunction`` for it)."""
    import torch

    if hasattr(obj, "is_autograd_function"):
        return bool(obj.is_autograd_function)
    return isinstance(obj, type) and issubclass(obj, torch.autograd.Function)


def forward_and_gradient(function, x, incoming):
    """``(output, d output / d x for incoming, incoming after, x after)`` of ``function`` on a copy
    of ``x``: computed where ``function`` lives (autograd graphs cannot cross processes)."""
    from student_src.grading_client import OPERATIONS

    if hasattr(function, "forward_and_gradient"):
        return function.forward_and_gradient(x, incoming)
    return OPERATIONS["forward_and_gradient"](function, x, incoming)


def plain_input_gradient(student_function, model, x):
    """``d sum_b logits[b, predicted_b] / d x`` of ``model`` where ``student_function`` ran: in the
    notebook's kernel when it lives there, so that hooks or patched modules it left show."""
    from student_src.grading_client import OPERATIONS

    if hasattr(student_function, "plain_input_gradient"):
        return student_function.plain_input_gradient(model, x)
    return OPERATIONS["plain_input_gradient"](model, x)


def on_pristine(function):
    """``function`` (a reference, or a helper that computes an expected value) run on the
    objects as the grader handed them to the kernel, never on the mirrored ones.

    Under the check server every model and tensor a check sent to the kernel shows, after the
    call, what the kernel did to it (weights zeroed, BatchNorm statistics, inputs changed in
    place): a side-effect check must read that, an expected value must not. The wrapper gives
    ``function`` a fresh pristine copy (``check_server.PristineCopies``) of each such argument,
    also inside lists, tuples and dicts; arguments the kernel never saw are passed as they are.
    In-process (no server, no kernel) it calls ``function`` as it is. Do not wrap a callback
    the student's code calls (a ``cam_fn``): what it returns goes to the student, who may hand
    it any model.
    """
    @functools.wraps(function)
    def on_pristine_copies(*args, **kwargs):
        from autograder.engine.check_server import current_pristine_copies

        copies = current_pristine_copies()
        if copies is not None:
            args, kwargs = copies.substitute(args), copies.substitute(kwargs)
        return function(*args, **kwargs)

    return on_pristine_copies


def pristine_references(module: types.ModuleType) -> types.SimpleNamespace:
    """Every public function of ``module`` (a ``solutions`` module) wrapped in :func:`on_pristine`:
    how a check calls its reference (``reference = pristine_references(solutions.gradcam)``)."""
    return types.SimpleNamespace(**{name: on_pristine(value) for name, value in vars(module).items()
                                    if callable(value) and not name.startswith("_") and not isinstance(value, type)})
