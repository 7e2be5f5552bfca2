"""The tamper guard: monkeypatching what the checks rely on is detected, honest code is not."""

import numpy as np
import pytest
import torch

import solutions.gradcam
import solutions.hooks
from autograder import hidden, integrity
from student_src import checks
from tests.grading_harness import notebook_namespace

NOTEBOOK = notebook_namespace(solutions.hooks)


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
        hidden.run("a01_hooks", "check_top_channels", NOTEBOOK["top_channels"])


def test_untouched_environment_runs_the_check(armed):
    assert integrity.verify() == []
    hidden.run("a01_hooks", "check_top_channels", NOTEBOOK["top_channels"])


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
        hidden.run("a01_hooks", "check_top_channels", NOTEBOOK["top_channels"])
    monkeypatch.setenv("NBGRADER_EXECUTION", "validate")  # nbgrader validate: no guard cell, checks run
    hidden.run("a01_hooks", "check_top_channels", NOTEBOOK["top_channels"])


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
    honest = notebook_namespace(solutions.gradcam)["grad_cam"]
    hidden.run("a02_gradcam", "check_grad_cam_other_layers", honest)  # honest code passes


def test_grading_environment_drops_invalid_thread_settings(monkeypatch):
    from autograder import build

    monkeypatch.setenv("OMP_NUM_THREADS", "")
    monkeypatch.setenv("MKL_NUM_THREADS", "4")
    env = build.grading_env()
    assert "OMP_NUM_THREADS" not in env and env["MKL_NUM_THREADS"] == "4"
    assert build.grading_env(threads=1)["OMP_NUM_THREADS"] == "1"


# --- the instructor's code cannot be handed in or called -------------------------------------

def test_handing_in_the_reference_is_refused():
    with pytest.raises(hidden.HiddenCheckFailed, match="top_channels is the instructor's reference"):
        hidden.run("a01_hooks", "check_top_channels", solutions.hooks.top_channels)


def _wrappers_of_the_reference():
    """Notebook functions that reach the reference in the ways a notebook can name it."""
    import functools

    import solutions.hooks as reference_module
    from solutions.hooks import top_channels as reference_alias

    def by_module(model, layer_name, x, k=5):
        return reference_module.top_channels(model, layer_name, x, k)

    def by_alias(model, layer_name, x, k=5):
        return reference_alias(model, layer_name, x, k)

    def helper(*args):
        return reference_alias(*args)

    def through_a_helper(model, layer_name, x, k=5):
        return helper(model, layer_name, x, k)

    def by_default(model, layer_name, x, k=5, implementation=reference_alias):
        return implementation(model, layer_name, x, k)

    return {"module": by_module, "alias": by_alias, "helper": through_a_helper, "default": by_default,
            "closure": (lambda f: lambda model, layer_name, x, k=5: f(model, layer_name, x, k))(reference_alias),
            "partial": functools.partial(reference_alias)}


@pytest.mark.parametrize("how", ["module", "alias", "helper", "default", "closure", "partial"])
def test_notebook_code_that_calls_the_reference_is_refused(how):
    wrapper = _wrappers_of_the_reference()[how]
    with pytest.raises(hidden.HiddenCheckFailed, match="instructor's"):
        hidden.run("a01_hooks", "check_top_channels", wrapper)


def test_a_name_that_is_only_an_attribute_is_not_mistaken_for_the_reference():
    """In a notebook, ``hidden`` (the grader module) is a global once a test cell ran; a student
    attribute of that name is not a use of it."""
    namespace = {"hidden": hidden, "reference_copy": NOTEBOOK["top_channels"]}
    exec(compile("class Box:\n    hidden = 1\n\n"
                 "def top_channels(model, layer_name, x, k=5):\n"
                 "    assert Box.hidden == 1\n"
                 "    return reference_copy(model, layer_name, x, k)\n",
                 "/tmp/ipykernel_tests/cell.py", "exec"), namespace)  # noqa: S102
    assert hidden._reference_use([namespace["top_channels"]]) is None
    hidden.run("a01_hooks", "check_top_channels", namespace["top_channels"])


def test_a_check_cannot_be_started_from_inside_another():
    honest = NOTEBOOK["top_channels"]

    def top_channels(model, layer_name, x, k=5):
        from autograder import hidden as grader

        grader.run("a01_hooks", "check_top_channels", honest)  # would sign a pass for other code
        return honest(model, layer_name, x, k)

    with pytest.raises(hidden.HiddenCheckFailed, match="cannot be started from inside another"):
        hidden.run("a01_hooks", "check_top_channels", top_channels)


# --- pass signatures: what a replaced hidden.run cannot produce -------------------------------

def test_a_passing_check_prints_its_signature_only_with_a_key(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(integrity, "_current_message_id", lambda: "request-7")
    hidden.run("a01_hooks", "check_top_channels", NOTEBOOK["top_channels"])
    assert hidden.PASS_MARK not in capsys.readouterr().out  # no key: a student's own run, validate
    key_file = tmp_path / "key"
    key_file.write_text("ab" * 32)
    try:
        integrity.arm(key_file=str(key_file))
        assert not key_file.exists()  # read once, then gone
        hidden.run("a01_hooks", "check_top_channels", NOTEBOOK["top_channels"])
        line = capsys.readouterr().out.strip()
        expected = integrity.pass_signature(bytes.fromhex("ab" * 32), "request-7", "a01_hooks.check_top_channels")
        assert line == f"{hidden.PASS_MARK} a01_hooks.check_top_channels {expected}"
        with pytest.raises(hidden.HiddenCheckFailed):
            hidden.run("a01_hooks", "check_top_channels", lambda *a, **k: None)
        assert hidden.PASS_MARK not in capsys.readouterr().out  # a failed check signs nothing
    finally:
        integrity._set_key(b"")
        integrity._snapshot.clear()


def _test_cell(source, outputs):
    import nbformat

    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "t", "points": 1}
    cell.outputs = outputs
    return cell


@pytest.mark.parametrize("case", ["valid", "no-signature", "other-cell", "wrong-key", "one-of-two"])
def test_the_audit_fails_test_cells_without_valid_signatures(case):
    import nbformat

    from autograder import nbgrader_plugins as plugins

    key, other_key = b"k" * 32, b"x" * 32
    source = ('assert 1\n### BEGIN HIDDEN TESTS\nfrom autograder import hidden\nhidden.run("a01_hooks", "check_a", f)\n'
              + ('hidden.run("a01_hooks", "check_b", f)\n' if case == "one-of-two" else "") + "### END HIDDEN TESTS")
    request = {"valid": "req-2", "no-signature": "req-2", "other-cell": "req-1", "wrong-key": "req-2",
               "one-of-two": "req-2"}[case]
    signature = plugins.pass_signature(other_key if case == "wrong-key" else key, request, "a01_hooks.check_a")
    text = "student output\n" + ("" if case == "no-signature" else f"{hidden.PASS_MARK} a01_hooks.check_a {signature}\n")
    cell = _test_cell(source, [nbformat.v4.new_output("stream", name="stdout", text=text)])
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("guard"), cell])
    resources = {plugins.KEY: key, plugins.REQUEST_IDS: {0: "req-1", 1: "req-2"}}
    notebook, _ = plugins.AuditTestCells().preprocess(notebook, resources)
    outputs = notebook.cells[1].outputs
    assert outputs[0].text == "student output\n"  # signature lines never reach the feedback
    errors = [output for output in outputs if output.output_type == "error"]
    assert (errors == []) == (case == "valid")
    if errors:
        assert errors[0].ename == "HiddenCheckFailed"


def test_checks_named_reads_every_hidden_run_call():
    from autograder.nbgrader_plugins import checks_named

    source = 'x = 1\nfrom autograder import hidden\nhidden.run("m", "a", f)\nhidden.run("m", "b", f, g, k=1)\nrun("m", "c")'
    assert checks_named(source) == {"m.a", "m.b"}
