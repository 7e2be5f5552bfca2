"""CIFAR-10 reading in the real on-disk format, normalisation, example selection."""

import pickle

import numpy as np
import pytest
import torch

from student_src import assets, data


def test_round_trip_of_the_on_disk_format(tmp_path):
    images, labels = data.synthetic_images(12, seed=3)
    data.write_cifar_batch(tmp_path, images, labels)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "rb") as file:
        raw = pickle.load(file, encoding="bytes")
    # CIFAR's layout: one row per image, 1024 red then 1024 green then 1024 blue values.
    assert raw[b"data"].shape == (12, 3072)
    assert raw[b"data"][0, 0] == images[0, 0, 0, 0] and raw[b"data"][0, 1024] == images[0, 0, 0, 1]
    dataset = data.load_test_set(root=tmp_path)
    assert np.array_equal(dataset.images, images) and np.array_equal(dataset.labels, labels)
    assert dataset.classes == data.CLASSES and len(dataset) == 12


def test_normalisation_uses_the_checkpoint_statistics_and_inverts():
    image = np.full((32, 32, 3), 255, dtype=np.uint8)
    x = data.normalize(image)
    assert x.shape == (3, 32, 32)
    expected = [(1 - m) / s for m, s in zip(data.MEAN, data.STD)]
    assert torch.allclose(x[:, 0, 0], torch.tensor(expected))
    images, _ = data.synthetic_images(2)
    assert np.allclose(data.denormalize(data.normalize(images)), images / 255.0, atol=1e-6)


def test_missing_files_name_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("XAI_KIT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("XAI_KIT_STANDIN", raising=False)
    with pytest.raises(assets.MissingAssetError, match="python -m student_src.fetch"):
        data.load_test_set()
    monkeypatch.setenv("XAI_KIT_STANDIN", "1")
    with pytest.raises(assets.MissingAssetError, match="python -m student_src.fetch --standin"):
        data.load_test_set()


def test_damaged_files_give_a_clear_error(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(b"<html>not a pickle</html>")
    (folder / "batches.meta").write_bytes(b"")
    with pytest.raises(assets.MissingAssetError, match="damaged"):
        data.load_test_set(root=tmp_path)


def test_subset_is_deterministic_distinct_and_sorted():
    a, b = data.subset_indices(50, 1000, seed=4), data.subset_indices(50, 1000, seed=4)
    assert np.array_equal(a, b) and len(set(a)) == 50 and np.all(np.diff(a) > 0)
    assert not np.array_equal(a, data.subset_indices(50, 1000, seed=5))
    with pytest.raises(ValueError):
        data.subset_indices(11, 10)


def test_evaluation_shrinks_only_under_nbgrader(monkeypatch):
    dataset = data.CIFAR10TestSet(*data.synthetic_images(600))
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert len(data.evaluation_indices(dataset)) == 600
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert len(data.evaluation_indices(dataset)) == data.GRADING_SUBSET_SIZE


def test_accuracy_helpers_on_hand_made_predictions():
    predictions = np.array([0, 1, 1, 2, 2, 2])
    labels = np.array([0, 1, 2, 2, 2, 0])
    accuracy = data.per_class_accuracy(predictions, labels, num_classes=4)
    assert accuracy[0] == 0.5 and accuracy[1] == 1.0 and accuracy[2] == pytest.approx(2 / 3)
    assert np.isnan(accuracy[3])
    wrong = data.select_examples(predictions, labels, 5, correct=False)
    assert sorted(wrong.tolist()) == [2, 5]
    right = data.select_examples(predictions, labels, 2, correct=True, seed=1)
    assert len(right) == 2 and all(predictions[i] == labels[i] for i in right)


def test_predict_returns_probabilities(cifar_resnet):
    dataset = data.CIFAR10TestSet(*data.synthetic_images(10))
    probabilities = data.predict(cifar_resnet, dataset, batch_size=4)
    assert probabilities.shape == (10, 10)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(10), atol=1e-5)
