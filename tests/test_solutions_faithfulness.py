"""Deletion / insertion curves and their AUC (solutions.faithfulness), computed by hand on a tiny
linear model; the evaluation helpers (student_src.evaluation) and the library wrappers
(student_src.library_metrics)."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from torch import nn

from solutions.faithfulness import area_under_curve, deletion_curve, insertion_curve
from student_src import checks, evaluation, library_metrics


def sigmoid(value: float) -> float:
    return 1 / (1 + math.exp(-value))


@pytest.fixture()
def sum_model():
    """Two classes on 1-channel 2x2 images: logits (sum of pixels, 0), so p(class 0) = sigmoid(sum)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]))
    return model.eval()


# Image 0: pixels 1 2 / 3 4, saliency 0.5 0.9 / 0.5 0.1 -> order: pixel 1, then the tie 0 before 2, then 3.
# Image 1: pixels 0.5 1.5 / 2.5 0.25, saliency 0.2 0.2 / 0.7 0.2 -> order: 2, 0, 1, 3.
X = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[0.5, 1.5], [2.5, 0.25]]]])
SALIENCY = torch.tensor([[[0.5, 0.9], [0.5, 0.1]], [[0.2, 0.2], [0.7, 0.2]]])


def expected(sums, sign=1.0):
    return torch.tensor([[sigmoid(sign * s) for s in row] for row in sums])


@pytest.mark.parametrize("steps, baseline, sums", [
    (4, 0.0, [[10, 8, 7, 4, 0], [4.75, 2.25, 1.75, 0.25, 0]]),
    (3, 0.0, [[10, 8, 7, 0], [4.75, 2.25, 1.75, 0]]),            # (k * 4) // 3 = 0, 1, 2, 4 pixels
    (2, 1.0, [[10, 9, 4], [4.75, 3.75, 4]]),                     # removed pixels become 1
])
def test_deletion_curve_by_hand(sum_model, steps, baseline, sums):
    curve = deletion_curve(sum_model, X, SALIENCY, [0, 0], steps=steps, baseline=baseline)
    assert curve.shape == (2, steps + 1)
    torch.testing.assert_close(curve, expected(sums))


def test_deletion_curve_records_the_given_class(sum_model):
    """Class 1 (p = sigmoid(-sum)) is never the prediction here; its probability is still the one recorded."""
    curve = deletion_curve(sum_model, X, SALIENCY, torch.tensor([1, 1]), steps=4)
    torch.testing.assert_close(curve, expected([[10, 8, 7, 4, 0], [4.75, 2.25, 1.75, 0.25, 0]], sign=-1.0))
    torch.testing.assert_close(deletion_curve(sum_model, X, SALIENCY, 1, steps=4), curve)
    mixed = deletion_curve(sum_model, X, SALIENCY, [1, 0], steps=4)
    torch.testing.assert_close(mixed[0], curve[0])
    torch.testing.assert_close(mixed[1], expected([[4.75, 2.25, 1.75, 0.25, 0]])[0])


def test_insertion_curve_by_hand(sum_model):
    curve = insertion_curve(sum_model, X, SALIENCY, [0, 0], steps=4, baseline=0.0)
    torch.testing.assert_close(curve, expected([[0, 2, 3, 6, 10], [0, 2.5, 3, 4.5, 4.75]]))
    start = torch.full_like(X, 0.5)  # a tensor baseline: inserted pixels replace 0.5
    curve = insertion_curve(sum_model, X, SALIENCY, [0, 0], steps=2, baseline=start)
    torch.testing.assert_close(curve, expected([[2, 4, 10], [2, 4, 4.75]]))


def test_area_under_curve_by_hand():
    curves = torch.tensor([[0.0, 0.5, 1.0], [1.0, 1.0, 1.0], [0.2, 0.4, 0.9], [0.0, 1.0, 0.0]])
    torch.testing.assert_close(area_under_curve(curves), torch.tensor([0.5, 1.0, 0.475, 0.5]))
    torch.testing.assert_close(area_under_curve(torch.tensor([[0.2, 0.6]])), torch.tensor([0.4]))


def test_curves_on_the_resnet_batched_equal_per_image(cifar_resnet, cifar_batch):
    x = cifar_batch[0][:3]
    saliency = torch.randint(0, 4, (3, 32, 32), generator=torch.Generator().manual_seed(0)).float()
    targets = torch.tensor([7, 0, 4])
    baseline = evaluation.blurred_baseline(x)
    snapshot = checks.ModelSnapshot(cifar_resnet)
    deletion = deletion_curve(cifar_resnet, x, saliency, targets, steps=4, baseline=baseline)
    insertion = insertion_curve(cifar_resnet, x, saliency, targets, steps=4, baseline=baseline)
    snapshot.assert_unchanged(cifar_resnet, "curves")
    assert deletion.shape == insertion.shape == (3, 5)
    for i in range(3):
        one = slice(i, i + 1)
        torch.testing.assert_close(
            deletion_curve(cifar_resnet, x[one], saliency[one], targets[one], steps=4, baseline=baseline[one]),
            deletion[one], atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        probabilities = cifar_resnet(x).softmax(dim=1)[torch.arange(3), targets]
        blurred = cifar_resnet(baseline).softmax(dim=1)[torch.arange(3), targets]
    torch.testing.assert_close(deletion[:, 0], probabilities)   # step 0: the untouched image
    torch.testing.assert_close(deletion[:, -1], blurred)        # every pixel replaced
    torch.testing.assert_close(insertion[:, 0], blurred)
    torch.testing.assert_close(insertion[:, -1], probabilities)


def test_random_maps_and_blurred_baseline():
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    maps = evaluation.random_saliency_maps(x, seed=3)
    assert maps.shape == (2, 32, 32) and 0 <= maps.min() and maps.max() < 1
    assert torch.equal(maps, evaluation.random_saliency_maps(x, seed=3))
    assert not torch.equal(maps, evaluation.random_saliency_maps(x, seed=4))
    blurred = evaluation.blurred_baseline(x)
    assert blurred.shape == x.shape
    assert blurred.diff(dim=-1).abs().mean() < 0.2 * x.diff(dim=-1).abs().mean()


def test_faithfulness_table_ranks_methods_and_adds_library_metrics(cifar_resnet, cifar_batch):
    x, targets = cifar_batch[0][:2], torch.tensor([1, 2])
    maps = {"random": evaluation.random_saliency_maps(x), "ones": torch.ones(2, 32, 32)}
    rows = evaluation.faithfulness_table(
        cifar_resnet, x, targets, maps, deletion_curve, insertion_curve, area_under_curve, steps=4,
        extra_metrics={"cam_mult": library_metrics.cam_mult_image_confidence_change})
    assert [list(row) for row in rows] == [["method", "deletion_auc", "insertion_auc", "difference", "cam_mult"]] * 2
    assert rows[0]["difference"] >= rows[1]["difference"]
    assert {row["method"] for row in rows} == {"random", "ones"}
    ones = next(row for row in rows if row["method"] == "ones")
    assert abs(ones["cam_mult"]) < 1e-6  # x * 1 is x: no change in confidence
    text = evaluation.format_table(rows)
    assert text.splitlines()[0].split() == list(rows[0]) and "random" in text


def test_library_metrics_are_quiet_deterministic_and_leave_the_global_rng(cifar_resnet, cifar_batch):
    from pytorch_grad_cam.metrics.road import ROADMostRelevantFirst

    model = copy.deepcopy(cifar_resnet)
    x, targets = cifar_batch[0][:2], [3, 5]
    maps = evaluation.random_saliency_maps(x, seed=1)
    state = torch.get_rng_state()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        road = library_metrics.road_most_relevant_first(model, x, maps, targets, percentile=70, seed=2)
        combined = library_metrics.road_combined(model, x, maps, targets, percentiles=(30, 70))
        change = library_metrics.cam_mult_image_confidence_change(model, x, maps, targets)
    assert torch.equal(torch.get_rng_state(), state)
    assert road.shape == combined.shape == change.shape == (2,)
    assert torch.isfinite(torch.stack([road, combined, change])).all()
    assert torch.equal(road, library_metrics.road_most_relevant_first(model, x, maps, targets, percentile=70, seed=2))
    # Same numbers as calling the library directly with the same seed.
    torch.manual_seed(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = ROADMostRelevantFirst(percentile=70)
        direct = metric(x, maps.numpy(), library_metrics.softmax_targets(targets, 2), model)
    torch.testing.assert_close(road, torch.as_tensor(direct))
    with torch.no_grad():
        before = model(x).softmax(dim=1)[torch.arange(2), torch.tensor(targets)]
        after = model(x * maps[:, None]).softmax(dim=1)[torch.arange(2), torch.tensor(targets)]
    torch.testing.assert_close(change, after - before)
