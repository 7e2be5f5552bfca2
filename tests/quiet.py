"""What nbgrader needs of code in a test cell, as a block for in-process tests: no warning (each
one raised as an error), nothing on stdout or stderr, the global random state untouched."""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import torch


@contextmanager
def runs_quietly(capfd):
    """Assert that the block warns nothing, prints nothing and leaves torch's global RNG as it was."""
    state = torch.random.get_rng_state()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
    assert torch.equal(torch.random.get_rng_state(), state), "a check changed the global random state"
