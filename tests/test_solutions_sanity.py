"""Spearman rank correlation and cascading randomisation (solutions.sanity)."""

from __future__ import annotations

import copy

import pytest
import torch
from scipy.stats import spearmanr

from solutions.gradcam import grad_cam
from solutions.sanity import cascading_randomization, spearman_rank_correlation
from student_src import checks

RESNET_STAGES = ["fc", "layer4", "layer3", "layer2", "layer1", "bn1", "conv1"]


def test_spearman_matches_scipy_with_ties():
    generator = torch.Generator().manual_seed(0)
    a = torch.relu(torch.randn(4, 8, 8, generator=generator))            # many tied zeros
    b = torch.randint(0, 5, (4, 8, 8), generator=generator).float()      # many ties
    expected = [spearmanr(a[i].flatten(), b[i].flatten()).statistic for i in range(4)]
    torch.testing.assert_close(spearman_rank_correlation(a, b), torch.tensor(expected, dtype=torch.float32))


def test_spearman_average_ranks_by_hand():
    # ranks of (5, 7, 7, 9): 0, 1.5, 1.5, 3; of (1, 2, 3, 4): 0, 1, 2, 3 -> rho = 4.5 / sqrt(4.5 * 5)
    rho = spearman_rank_correlation(torch.tensor([[5.0, 7.0, 7.0, 9.0]]), torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    torch.testing.assert_close(rho, torch.tensor([4.5 / (4.5 * 5) ** 0.5]))


def test_spearman_identical_reversed_and_constant():
    x = torch.rand(3, 5, 5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(spearman_rank_correlation(x, x), torch.ones(3))
    torch.testing.assert_close(spearman_rank_correlation(x, 2 * x + 1), torch.ones(3))
    torch.testing.assert_close(spearman_rank_correlation(x, -x), -torch.ones(3))
    assert torch.equal(spearman_rank_correlation(torch.zeros(3, 5, 5), x), torch.zeros(3))
    assert torch.equal(spearman_rank_correlation(x, torch.ones(3, 5, 5)), torch.zeros(3))
    assert torch.equal(spearman_rank_correlation(torch.zeros(3, 5, 5), torch.ones(3, 5, 5)), torch.ones(3))


def explain_layer4(model, x, targets):
    return grad_cam(model, "layer4", x, targets)


@pytest.fixture(scope="module")
def cascade(cifar_resnet, cifar_batch):
    """One run on the shared model, with a snapshot taken before it."""
    snapshot = checks.ModelSnapshot(cifar_resnet)
    x = cifar_batch[0][:4]
    result = cascading_randomization(cifar_resnet, explain_layer4, x, cifar_batch[1][:4], seed=0)
    return snapshot, result


def test_the_original_model_is_untouched(cifar_resnet, cascade):
    snapshot, _ = cascade
    snapshot.assert_unchanged(cifar_resnet, "cascading_randomization")


def test_stages_run_top_down_and_stage_zero_is_identical(cascade):
    _, result = cascade
    assert list(result) == ["original"] + RESNET_STAGES
    assert result["original"] == pytest.approx(1.0, abs=1e-6)
    assert all(isinstance(value, float) for value in result.values())


def test_grad_cam_loses_its_similarity_once_weights_are_random(cascade):
    _, result = cascade
    randomized = [result[stage] for stage in RESNET_STAGES]
    assert max(randomized) < 0.5 < result["original"]
    assert sum(randomized) / len(randomized) < 0.25


def test_seeded_and_custom_order(cifar_resnet, cifar_batch):
    x, targets = cifar_batch[0][:2], [1, 2]
    order = ["layer4.1", "fc"]
    first = cascading_randomization(cifar_resnet, explain_layer4, x, targets, layer_order=order, seed=7)
    assert list(first) == ["original", "layer4.1", "fc"]
    assert first == cascading_randomization(cifar_resnet, explain_layer4, x, targets, layer_order=order, seed=7)
    assert first != cascading_randomization(cifar_resnet, explain_layer4, x, targets, layer_order=order, seed=8)


def test_targets_default_to_the_original_predictions(cifar_resnet, cifar_batch):
    x = cifar_batch[0][:2]
    predicted = cifar_resnet(x).argmax(dim=1)
    order = ["fc"]
    assert (cascading_randomization(cifar_resnet, explain_layer4, x, None, layer_order=order)
            == cascading_randomization(cifar_resnet, explain_layer4, x, predicted, layer_order=order))


def test_randomisation_keeps_each_parameters_mean_and_scale(cifar_resnet, cifar_batch):
    """The copy that explain_fn sees: a new object, fc re-drawn with fc's own mean and std."""
    seen = []

    def spy(model, x, targets):
        seen.append(copy.deepcopy(model))
        return explain_layer4(model, x, targets)

    cascading_randomization(cifar_resnet, spy, cifar_batch[0][:1], [0], layer_order=["fc"], seed=0)
    assert seen[0] is not None and len(seen) == 3
    before, after = cifar_resnet.fc.weight.detach(), seen[2].fc.weight.detach()
    assert not torch.equal(before, after)
    assert abs(after.mean() - before.mean()) < 0.2 * before.std()
    assert abs(after.std() / before.std() - 1) < 0.1
    assert torch.equal(seen[2].layer4[0].conv1.weight, cifar_resnet.layer4[0].conv1.weight)
