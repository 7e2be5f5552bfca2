"""Helpers shared by the hidden checks."""

from __future__ import annotations


def call_student(function, what: str, *args, **kwargs):
    """Call the student's code; turn an exception into an AssertionError that says where."""
    try:
        return function(*args, **kwargs)
    except AssertionError:
        raise
    except Exception as error:  # noqa: BLE001 (any failure of the student's code fails the check)
        raise AssertionError(f"{what} raised {type(error).__name__}: {error}") from error
