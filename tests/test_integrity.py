"""The tamper guard: monkeypatching what the checks rely on is detected, honest code is not."""

import numpy as np
import pytest
import torch

import solutions.hooks
from autograder import hidden, integrity
from student_src import checks


@pytest.fixture()
def armed():
    assert integrity.arm() > 1000
    yield
    integrity._snapshot.clear()


@pytest.mark.parametrize("owner, name, fake", [
    (np, "allclose", lambda *a, **k: True),
    (torch, "allclose", lambda *a, **k: True),
    (torch.Tensor, "__eq__", lambda *a, **k: True),
    (checks, "assert_close", lambda *a, **k: 0.0),
    (solutions.hooks, "record_activations", lambda *a, **k: {}),
])
def test_replacing_a_watched_function_fails_the_hidden_checks(armed, monkeypatch, owner, name, fake):
    monkeypatch.setattr(owner, name, fake)
    with pytest.raises(hidden.HiddenCheckFailed, match=f"grading environment was modified.*{name}"):
        hidden.run("a01_hooks", "check_top_channels", solutions.hooks.top_channels)


def test_untouched_environment_runs_the_check(armed):
    assert integrity.verify() == []
    hidden.run("a01_hooks", "check_top_channels", solutions.hooks.top_channels)


def test_failures_carry_the_message_without_the_hidden_traceback(armed):
    def broken(model, layer_name, x, k=5):
        raise ValueError("student bug")

    with pytest.raises(hidden.HiddenCheckFailed, match="your code raised ValueError: student bug") as info:
        hidden.run("a01_hooks", "check_top_channels", broken)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_an_unarmed_guard_fails_closed_during_autograde(monkeypatch):
    integrity._snapshot.clear()
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    with pytest.raises(hidden.HiddenCheckFailed, match="not armed"):
        hidden.run("a01_hooks", "check_top_channels", solutions.hooks.top_channels)
    monkeypatch.setenv("NBGRADER_EXECUTION", "validate")  # nbgrader validate: no guard cell, checks run
    hidden.run("a01_hooks", "check_top_channels", solutions.hooks.top_channels)


def test_tracebacks_lose_grader_frames_and_hidden_lines():
    import nbformat

    from autograder.nbgrader_plugins import StripGraderTracebacks

    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("error", ename="HiddenCheckFailed", evalue="msg", traceback=[
        "\x1b[31m-----\x1b[39m",
        "Cell In[8], line 19\n  16 ### BEGIN HIDDEN TESTS\n---> 19 \x1b[32mhidden\x1b[39m.run('a01_hooks', 'check')",
        "File /repo/autograder/hidden.py:40, in run\n  raise HiddenCheckFailed(failure)",
        "File /repo/solutions/hooks.py:3, in f",
        "Cell In[3], line 2, in record_activations\n  student code",
        "HiddenCheckFailed: msg"])]
    cell, _ = StripGraderTracebacks().preprocess_cell(cell, {}, 0)
    text = "\n".join(cell.outputs[0].traceback)
    assert "student code" in text and "HiddenCheckFailed: msg" in text
    for secret in ("HIDDEN TESTS", "hidden", "autograder", "solutions"):
        assert secret not in text.replace("frames inside the grader's hidden checks are not shown", "")


def test_calling_the_library_instead_of_implementing_fails_the_hidden_checks():
    from solutions.gradcam import grad_cam as reference_grad_cam
    from student_src import library_cams

    def grad_cam(model, layer_name, x, targets=None):
        return library_cams.library_grad_cam(model, layer_name, x, targets)

    with pytest.raises(hidden.HiddenCheckFailed, match="grad_cam calls .*library_grad_cam"):
        hidden.run("a02_gradcam", "check_grad_cam_other_layers", grad_cam)

    class GuidedReLUFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            from captum.attr import GuidedBackprop  # noqa: F401 (the shortcut being detected)
            return x.clamp(min=0)

    assert "GuidedBackprop" in hidden.names_used(GuidedReLUFunction)
    hidden.run("a02_gradcam", "check_grad_cam_other_layers", reference_grad_cam)  # honest code passes


def test_grading_environment_drops_invalid_thread_settings(monkeypatch):
    from autograder import build

    monkeypatch.setenv("OMP_NUM_THREADS", "")
    monkeypatch.setenv("MKL_NUM_THREADS", "4")
    env = build.grading_env()
    assert "OMP_NUM_THREADS" not in env and env["MKL_NUM_THREADS"] == "4"
    assert build.grading_env(threads=1)["OMP_NUM_THREADS"] == "1"
