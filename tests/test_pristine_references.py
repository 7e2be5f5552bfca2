"""No hidden check computes an expected value from state the kernel could change.

Through the check server, what a student's function does to the models and tensors it is given
is mirrored onto the grader's objects (so that side-effect checks see it). A function that
zeroes the weights it is given and returns what the reference gives on the zeroed model would
then match a reference computed on the mirrored model. ``checks.common.on_pristine`` (with
``check_server.PristineCopies``) gives the references the objects as the grader handed them.

- Every check of every assignment, through a real server, given an adversary in place of each of
  its student functions in turn (the others are the reference): the adversary changes in place
  everything it is given (parameters and buffers of every model, the input tensors, tensor
  targets) and returns what the reference gives on the changed state. Three adversaries: one
  changes everything, one only the models (the red team's attack), one only the tensors. Each
  check fails, except those listed in ``MAY_PASS`` with the reason (side-effect checks that look
  at something else, an answer no adversary can change); an adversary given nothing of its kind
  is the reference, and passes.
- ``PristineCopies`` itself: mirrored changes never reach the copies, the grader's own changes
  do, views of a sent tensor find their pristine values, a copy a reference changed is replaced.
"""

from __future__ import annotations

import copy
import inspect

import pytest
import torch
from torch import nn

from autograder.engine import check_server
from autograder.engine.checks.common import on_pristine
from solutions import guided
from student_src import grading_client
from tests.test_alternatives import reference_function
from tests.test_check_server import CHECK_MODULES, _remote_verdict

#: (check, student function, what the adversary changes): why the adversary may pass it.
MAY_PASS = {
    ("check_last_conv_layer", "last_conv_layer", "everything"): "its answer, a module name, is read from the "
    "model's structure, which no adversary changes: a self-consistent adversary gives the right answer",
    ("check_last_conv_layer", "last_conv_layer", "models"): "as for everything",
    ("check_record_activations_cleanup", "record_activations", "tensors"): "side effects on the model only "
    "(hooks, mode, weights); the values are check_record_activations_values' business",
    ("check_guided_backprop_restores_model", "guided_backprop", "tensors"): "the model restored (modules, "
    "hooks, ReLUs): what is done to x is check_guided_backprop_no_side_effects' business",
    ("check_cascading_randomization_cumulative", "cascading_randomization", "tensors"): "which stages of the "
    "model are random at each call of explain_fn, whatever the input",
    ("check_cascading_randomization_leaves_model", "cascading_randomization", "tensors"): "side effects on "
    "the model only",
}


@pytest.fixture(scope="module")
def server():
    running = check_server.ensure_running()
    yield running
    running.end_notebook()


#: What an adversary changes: everything it is given, only the models (the red team's attack: a
#: changed input shows in a check that compares with the student's own output on a fresh copy of it),
#: only the tensors.
CHANGES = {"everything": (True, True), "models": (True, False), "tensors": (False, True)}


#: What the adversaries changed during the current test (the kernel side runs in this process).
CHANGED: list = []


def _mutate(value, models: bool = True, tensors: bool = True, depth: int = 0) -> None:
    """Change in place every model (``models``) and tensor (``tensors``) in ``value``, so that any
    answer computed from them changes; note each in ``CHANGED``."""
    if depth > 8:
        return
    if isinstance(value, (nn.Module, torch.Tensor)) and (models if isinstance(value, nn.Module) else tensors):
        CHANGED.append(type(value).__name__)
    with torch.no_grad():
        if isinstance(value, nn.Module) and models:
            for name, tensor in value.state_dict(keep_vars=True).items():
                if tensor.is_floating_point():
                    tensor.mul_(2.0 if name.endswith("running_var") else -0.5)  # a variance stays positive
                else:
                    tensor.add_(1)
        elif isinstance(value, torch.Tensor) and tensors and value.numel():
            if value.is_floating_point():
                value.mul_(-1.5).add_(0.25).abs_()  # not monotone: even rank statistics change
            elif value.dtype != torch.bool:
                value.copy_(value.flip(list(range(value.dim()))))  # targets, labels, orders: still valid
        elif isinstance(value, (list, tuple)):
            for item in value:
                _mutate(item, models, tensors, depth + 1)
        elif isinstance(value, dict):
            for item in value.values():
                _mutate(item, models, tensors, depth + 1)


class _MutatingGuidedReLU(guided.GuidedReLUFunction):
    """GuidedReLUFunction that changes its input and the incoming gradient in place first."""

    @staticmethod
    def forward(ctx, x):
        _mutate(x)
        return guided.GuidedReLUFunction.forward(ctx, x)

    @staticmethod
    def backward(ctx, grad_output):
        _mutate(grad_output)
        return guided.GuidedReLUFunction.backward(ctx, grad_output)


def adversary(name: str, changes: str = "everything"):
    """The reference of student function ``name``, run after changing what it is given (``CHANGES``)."""
    reference = reference_function(name)
    if isinstance(reference, type):
        return type(name, (_MutatingGuidedReLU,), {})  # its only arguments are tensors: always changed
    models, tensors = CHANGES[changes]

    def changes_its_arguments(*args, **kwargs):
        _mutate((args, kwargs), models, tensors)
        return reference(*args, **kwargs)

    changes_its_arguments.__name__ = name
    return changes_its_arguments


def _cases():
    for module in CHECK_MODULES:
        for check in module.CHECKS:
            for name in inspect.signature(check).parameters:
                for changes in CHANGES:
                    yield pytest.param(check, name, changes,
                                       id=f"{module.__name__.rsplit('.', 1)[-1]}.{check.__name__}-{name}-{changes}")


def test_the_adversary_changes_what_the_reference_gives():
    """Without mirroring (in-process, one model): the changed state gives another answer."""
    from autograder.engine.checks import a02_gradcam

    model, x = a02_gradcam._resnet(), a02_gradcam._inputs(2, 1)
    expected = reference_function("grad_cam")(model, "layer3", x)
    got = adversary("grad_cam")(model, "layer3", x)
    assert (got - expected).abs().max() > 0.1


def test_the_may_pass_entries_name_real_cases():
    assert set(MAY_PASS) <= {(param.values[0].__name__, param.values[1], param.values[2]) for param in _cases()}


@pytest.mark.parametrize(("check", "name", "changes"), list(_cases()))
def test_an_adversary_that_changes_its_arguments_fails_every_value_check(server, check, name, changes):
    arguments = {parameter: adversary(name, changes) if parameter == name else reference_function(parameter)
                 for parameter in inspect.signature(check).parameters}
    CHANGED.clear()
    passed, message = _remote_verdict(server, check, arguments)
    if not CHANGED:  # nothing of that kind was given: the adversary was the reference
        assert passed, message
    elif (check.__name__, name, changes) not in MAY_PASS:
        assert not passed, f"{check.__name__} passed an adversary {name} that changed {changes} it was given"


# --- PristineCopies -------------------------------------------------------------------------------


def _small_model() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        return nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(12, 2)).eval()


def test_mirrored_changes_never_reach_the_pristine_copies():
    copies = check_server.PristineCopies()
    model, x = _small_model(), torch.randn(4, 2, 2, 2)
    before_model, before_x = copy.deepcopy(model), x.clone()
    copies.module_sent(model)
    copies.tensor_sent(x)
    with torch.no_grad():  # what mirroring does after a call that zeroed everything
        for tensor in model.state_dict(keep_vars=True).values():
            tensor.zero_()
        x.zero_()
    model.train()
    copies.mirrored()
    lent, lent_x, lent_view = copies.substitute((model, x, x[1:3]))
    assert lent is not model and not lent.training
    assert all(torch.equal(a, b) for a, b in zip(lent.state_dict().values(), before_model.state_dict().values()))
    assert torch.equal(lent_x, before_x) and torch.equal(lent_view, before_x[1:3])
    parameter = model[3].weight[0]  # a tensor on a sent model's memory
    assert torch.equal(copies.substitute(parameter), before_model[3].weight[0])
    unseen = torch.ones(3)
    assert copies.substitute(unseen) is unseen


def test_the_graders_own_changes_between_calls_are_carried_over():
    copies = check_server.PristineCopies()
    model, x = _small_model(), torch.randn(4, 2, 2, 2)
    marks = grading_client.state_marks(model)
    copies.module_sent(model)
    copies.tensor_sent(x)
    copies.mirrored()
    with torch.no_grad():
        model[0].bias.fill_(7.0)
        x[0].fill_(5.0)
    model[1].train()
    changed, _ = grading_client.changed_state(model, marks)
    copies.module_sent(model, changed)
    copies.tensor_sent(x)
    lent, lent_x = copies.substitute((model, x))
    assert torch.equal(lent[0].bias, torch.full((3,), 7.0)) and lent[1].training and not lent[0].training
    assert torch.equal(lent_x, x)


def test_a_copy_a_reference_changed_is_replaced():
    copies = check_server.PristineCopies()
    model = _small_model()
    copies.module_sent(model)
    first = copies.substitute(model)
    assert copies.substitute(model) is first  # unchanged: lent again (no copy)
    first[0].register_forward_hook(lambda *args: None)
    second = copies.substitute(model)
    assert second is not first and not second[0]._forward_hooks
    with torch.no_grad():
        second[3].weight.zero_()
    third = copies.substitute(model)
    assert third is not second and third[3].weight.abs().sum() > 0


def test_on_pristine_in_process_calls_the_function_on_its_own_arguments():
    model = _small_model()
    assert on_pristine(lambda given: given)(model) is model
