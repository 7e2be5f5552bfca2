"""The visible checks' own layer (student_src.checks.call and friends), in process: each known
mistake gets a message that names it, the model is put back, other errors pass through.

The same mistakes are graded through nbgrader in tests/test_grading_a01.py and
tests/test_grading_a02.py (``VISIBLE_MESSAGES``: the points lost and the message each cell shows).
"""

from __future__ import annotations

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.authoring import build
from solutions import gradcam, hooks
from student_src import checks, library_cams
from tests import grading_harness as harness
from tests.mutants import a01_hooks as mutants01
from tests.mutants import a02_gradcam as mutants02


@pytest.fixture()
def model(cifar_resnet):
    """The session's random-init CIFAR ResNet-18, remembered as a notebook's model is."""
    return checks.remember_model(cifar_resnet.eval())


@pytest.fixture()
def x(cifar_batch):
    return cifar_batch[0][:3]


def message_of(function, *args, **kwargs) -> str:
    with pytest.raises(AssertionError) as caught:
        checks.call(function, *args, **kwargs)
    return str(caught.value)


def test_a_detached_hook_output_is_named(model, x):
    message = message_of(mutants02.activations_and_gradients__detached_output, model, "layer4", x)
    assert message.startswith("activations_and_gradients__detached_output(...) raised RuntimeError: "
                              "torch.autograd.grad was given a tensor that is not part of the autograd graph")
    assert "(raised at: `(gradients,) = torch.autograd.grad(" in message  # the student's own line


def test_gradients_inside_no_grad_are_named(model, x):
    with torch.no_grad():
        message = message_of(mutants02.aag_without_enable_grad, model, "layer4", x)
    assert "the score has no autograd graph" in message and "torch.enable_grad()" in message


def test_train_mode_is_named_and_undone(model, x):
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    message = message_of(mutants02.activations_and_gradients__sets_train_mode, model, "layer4", x)
    assert "left the model in train mode (it was in eval mode)" in message
    assert "(The model was put back as it was.)" in message
    assert not model.training and not any(m.training for m in model.modules())
    assert all(torch.equal(b, buffers[name]) for name, b in model.named_buffers())


def test_eval_mode_on_a_model_in_train_mode_is_named():
    small = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).train()
    message = message_of(mutants01.record_activations__sets_eval_mode, small, ["0"], torch.ones(1, 3, 8, 8))
    assert "left the model in eval mode (it was in train mode)" in message and small.training


def test_changed_batchnorm_statistics_are_named(model, x):
    def runs_a_batchnorm_in_train_mode(model, x):
        model.bn1.train()
        model(x)
        model.bn1.eval()

    message = message_of(runs_a_batchnorm_in_train_mode, model, x)
    assert "changed the BatchNorm running statistics (bn1.running_mean)" in message


def test_a_notebook_model_is_put_back_before_the_call(model, x, capsys):
    model.train()
    with torch.no_grad():
        model(x)  # an earlier cell ran the model in train mode: BatchNorm statistics changed
    recorded = checks.call(hooks.record_activations, model, ["layer1"], x)
    assert not model.training and "it was put back before calling record_activations(...)" in capsys.readouterr().out
    with torch.no_grad():
        stem = model.relu(model.bn1(model.conv1(x)))
        checks.assert_close(recorded["layer1"], model.layer1(stem), 1e-5, "layer1 after the state was restored")


def test_dotted_layer_names_need_get_submodule(model, x):
    message = message_of(mutants01.record_activations__getattr_layer_names, model, ["layer4.1.conv2"], x)
    assert "'layer4.1.conv2' is a path of module names" in message and "model.get_submodule(name)" in message
    with pytest.raises(AssertionError, match="get_submodule"):
        checks.call(lambda model, name: model._modules[name], model, "layer4.1.conv2")


def test_topk_over_the_batch_is_named(model, x):
    message = message_of(mutants01.top_channels__topk_over_images, model, "layer3", x, k=4)
    assert "take the top channels along `dim=1` (dim=0 is the batch)" in message


def test_squeeze_on_a_batch_of_one_is_named(model, x):
    message = message_of(mutants01.top_channels__squeezes_the_batch, model, "layer3", x[:1], k=4)
    assert "IndexError: a tensor has fewer dimensions than your code indexes" in message
    assert "`.squeeze()` without an argument" in message
    squeezed = torch.zeros(32, 32)
    with pytest.raises(AssertionError, match=r"expected shape \(1, 32, 32\), got \(32, 32\): a dimension of size 1"):
        checks.assert_shape(squeezed, (1, 32, 32), "maps")


def test_interpolate_without_a_channel_dimension_is_named():
    message = message_of(mutants02.scale_cams__interpolate_without_channel_dim, torch.rand(2, 4, 4), (32, 32))
    assert "`F.interpolate` needs a (B, 1, h, w) tensor" in message


def test_a_fixed_size_keeps_the_checks_label():
    with pytest.raises(AssertionError) as caught:
        checks.assert_close(torch.zeros(1, 32, 32), torch.zeros(1, 2, 2), 1e-5, "tiny CNN, class 0")
    assert str(caught.value).startswith("tiny CNN, class 0: expected shape (1, 2, 2), got (1, 32, 32): "
                                        "that is CIFAR's image size")


def test_nan_from_a_division_by_zero_is_named():
    maps = mutants02.scale_cams__without_epsilon(torch.zeros(2, 4, 4), (8, 8))
    with pytest.raises(AssertionError) as caught:
        checks.assert_close(maps, torch.zeros(2, 8, 8), 0.0, "scale_cams of constant maps")
    assert "contains NaN or infinite values: a division by zero?" in str(caught.value)
    with pytest.raises(AssertionError, match="relative error 5.00e-01 must be exactly 0"):
        checks.assert_close(torch.ones(2), torch.full((2,), 3.0), 0.0, "exact")


def test_other_errors_pass_through_unchanged():
    def explodes():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="^boom$"):
        checks.call(explodes)
    assert checks.call(F.relu, torch.tensor([-1.0, 2.0])).tolist() == [0.0, 2.0]


def _grad_cam_variant_cells():
    """The solution's grad_cam_variant cell and the visible check cell after it (solution notebook)."""
    notebook = nbformat.read(str(build.SOLUTION_DIR / "02_gradcam.ipynb"), as_version=4)
    by_id = {cell.get("id"): cell.source for cell in notebook.cells}
    return by_id["grad_cam_variant"], by_id["check_grad_cam_variant"]


@pytest.mark.parametrize("variant", ["reference", "ignores_switches"])
def test_the_grad_cam_variant_check_cell(model, x, variant, capsys):
    """The defaults must equal grad_cam; a variant that ignores its switches is told so."""
    solution, check_cell = _grad_cam_variant_cells()
    namespace = _variant_namespace(model, x)
    exec(solution, namespace)  # noqa: S102
    if variant == "ignores_switches":
        namespace["grad_cam_variant"] = mutants02.grad_cam_variant__ignores_switches
        with pytest.raises(AssertionError, match="every map still has the maximum 1; without normalisation"):
            exec(check_cell, namespace)  # noqa: S102
    else:
        exec(check_cell, namespace)  # noqa: S102
        assert "the defaults give Grad-CAM's maps" in capsys.readouterr().out


def _variant_namespace(model, x) -> dict:
    """What the variant's cells see in the notebook: the libraries, the model, images, the Part 1 functions."""
    return {"torch": torch, "F": F, "np": np, "checks": checks, "library_cams": library_cams, "model": model,
            "x_show": x[:2], **{name: getattr(gradcam, name) for name in ("activations_and_gradients",
                                                                          "gradcam_channel_weights", "scale_cams",
                                                                          "grad_cam")}}


def test_a_wrong_grad_cam_is_blamed_not_the_right_variant_built_beside_it(model, x):
    """Issue 26: the variant's check compares with pytorch-grad-cam, so a correct variant passes when
    grad_cam is wrong; a variant that returns the wrong grad_cam's maps is told to fix grad_cam first."""
    solution, check_cell = _grad_cam_variant_cells()
    namespace = _variant_namespace(model, x)
    exec(solution, namespace)  # noqa: S102
    exec(harness.mutant_source(mutants02.grad_cam__relu_on_weights)[1], namespace)  # noqa: S102
    exec(check_cell, namespace)  # noqa: S102  (the right variant passes)
    wrong = namespace["grad_cam"]
    namespace["grad_cam_variant"] = lambda model, layer_name, x, targets=None, **switches: wrong(model, layer_name, x)
    with pytest.raises(AssertionError, match="gives your grad_cam's maps, but grad_cam itself fails its checks "
                                             "above .* fix grad_cam"):
        exec(check_cell, namespace)  # noqa: S102


# --------------------------------------------------------------------------- issue 26: nothing raw, nothing silent


def test_a_hook_left_on_the_model_is_named_and_set_aside_during_the_call(model, x, capsys):
    """A hook an earlier cell left (here one that would double every activation) is named in a
    note; the correct function is called without it and passes; the hook is back afterwards."""
    expected = hooks.record_activations(model, ["layer1"], x)["layer1"]
    handle = model.layer4.register_forward_hook(lambda module, inputs, output: 2 * output)
    try:
        got = checks.call(hooks.record_activations, model, ["layer1", "layer4"], x)
        assert torch.equal(got["layer1"], expected)
        assert checks.count_hooks(model) == 1  # put back, in the same dictionary
    finally:
        handle.remove()
    assert checks.count_hooks(model) == 0  # the student's handle still removes it
    printed = capsys.readouterr().out
    assert printed.startswith("Note: model.layer4 has 1 forward hook left from an earlier run"), printed
    assert "`handle.remove()`" in printed and "set them aside while it called record_activations(...)" in printed


def test_hooks_a_function_leaves_are_not_set_aside(model, x):
    """The cleanup checks count what a function leaves: checks.call does not remove it."""
    leaking = harness.notebook_namespace(hooks)
    exec(harness.mutant_source(mutants01.record_activations__keeps_hooks)[1], leaking)  # noqa: S102
    before = checks.count_hooks(model)
    try:
        checks.call(leaking["record_activations"], model, ["layer1", "layer2"], x)
        assert checks.count_hooks(model) == before + 2
    finally:
        for module in model.modules():
            module._forward_hooks.clear()


def test_a_late_bound_layer_name_is_named(model, x):
    message = message_of(mutants01.record_activations__late_bound_name, model, ["layer1", "layer2"], x)
    assert message.startswith("record_activations__late_bound_name(...) raised KeyError: 'layer1' is one of the names "
                              "asked for"), message
    assert "name=name" in message and "(raised at: `return {name: recorded[name] for name in layer_names}" in message


def test_a_function_that_prints_instead_of_returning_is_named(model, x):
    namespace = {"record_activations": hooks.record_activations, "torch": torch}
    exec(harness.mutant_source(mutants01.top_channels__prints_instead_of_returning)[1], namespace)  # noqa: S102
    message = message_of(namespace["top_channels"], model, "layer3", x, k=2)
    assert message.startswith("top_channels(...) returned None: it must `return` its result"), message


def test_an_int_target_that_is_not_expanded_is_named(model, x):
    message = message_of(mutants02.activations_and_gradients__int_target_not_expanded, model, "layer4", x, 7)
    assert "raised IndexError: a tensor without dimensions was indexed: one int target" in message
    assert ".reshape(-1).expand(len(x))" in message


def test_an_input_changed_in_place_is_named():
    def blanks(x, value=0.0):
        x[:, :, :2] = value
        return x.sum()

    images = torch.ones(1, 1, 4, 4)
    message = message_of(blanks, images)
    assert message.startswith("blanks(...) changed its argument `x` in place"), message
    assert checks.call(lambda x: x.clone().fill_(0).sum(), images) == 0  # a copy changed: fine

