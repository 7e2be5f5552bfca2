"""Reference of Assignment 1 and its hidden checks, without nbgrader."""

import pytest
import torch
from torch import nn

from autograder.engine.checks import a01_hooks as hidden
from solutions.hooks import record_activations, top_channels
from student_src import checks
from tests.mutants import a01_hooks as mutants


def test_record_activations_matches_running_the_layers_by_hand(cifar_resnet, cifar_batch):
    x, _ = cifar_batch
    got = record_activations(cifar_resnet, ["layer2", "layer1"], x)
    assert list(got) == ["layer2", "layer1"]
    with torch.no_grad():
        stem = cifar_resnet.relu(cifar_resnet.bn1(cifar_resnet.conv1(x)))
        layer1 = cifar_resnet.layer1(stem)
        assert torch.equal(got["layer1"], layer1)
        assert torch.equal(got["layer2"], cifar_resnet.layer2(layer1))


def test_hooks_are_removed_after_success_and_after_an_exception(cifar_resnet, cifar_batch):
    record_activations(cifar_resnet, ["layer3"], cifar_batch[0])
    assert checks.count_hooks(cifar_resnet) == 0
    failing = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Sequential(nn.ReLU(), nn.Linear(2, 2)))
    with pytest.raises(RuntimeError):
        record_activations(failing, ["0", "1.0"], torch.zeros(1, 3, 4, 4))
    assert checks.count_hooks(failing) == 0


def test_top_channels_by_hand():
    x = torch.zeros(1, 3, 2, 2)
    model = nn.Sequential(nn.Identity())
    x[0, 0] = torch.tensor([[4.0, 0.0], [0.0, 0.0]])  # mean 1, max 4
    x[0, 1] = torch.tensor([[2.0, 2.0], [2.0, 2.0]])  # mean 2, max 2
    x[0, 2] = torch.tensor([[3.0, -3.0], [0.0, 0.0]])  # mean 0
    values, indices = top_channels(model, "0", x, k=3)
    assert indices.tolist() == [[1, 0, 2]] and values.tolist() == [[2.0, 1.0, 0.0]]


CHECKS = {"values": hidden.check_record_activations_values, "cleanup": hidden.check_record_activations_cleanup}


def _failing_checks(function):
    failed = set()
    for name, check in CHECKS.items():
        try:
            check(function)
        except AssertionError:
            failed.add(name)
    return failed


def test_reference_passes_every_hidden_check():
    assert _failing_checks(record_activations) == set()
    hidden.check_top_channels(top_channels)


@pytest.mark.parametrize("mutant, expected", [
    (mutants.record_activations__keeps_hooks, {"cleanup"}),
    (mutants.record_activations__no_finally, {"cleanup"}),
    (mutants.record_activations__not_detached, {"values"}),
])
def test_each_mutant_fails_exactly_its_checks(mutant, expected):
    assert _failing_checks(mutant) == expected


def test_top_channels_mutant_is_caught():
    with pytest.raises(AssertionError):
        hidden.check_top_channels(mutants.top_channels__max_not_mean)
