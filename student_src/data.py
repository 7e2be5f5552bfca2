"""CIFAR-10 test split: reading it, normalising it, picking examples from it.

The files are the ones torchvision downloads (``python -m student_src.fetch``):
``<data>/cifar-10-batches-py/test_batch`` is a pickled dict with ``b"data"`` (10000, 3072) uint8,
rows laid out as 1024 red, 1024 green, 1024 blue values of a 32x32 image, and ``b"labels"``;
``batches.meta`` holds ``b"label_names"``. The kit reads them itself (torchvision checks the
md5 of the real files at load time, which fetch already did once), so the same loader works on
the stand-in and on the small files the tests write in the same format.

Images go into the model normalised per channel: ``x = (pixel / 255 - MEAN) / STD`` with the
statistics the hub checkpoint was trained with; :func:`denormalize` undoes it for display.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from student_src import assets

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
BATCH_FOLDER = "cifar-10-batches-py"
#: How many test images the notebooks use when nbgrader executes them (validate, autograde).
GRADING_SUBSET_SIZE = 256


def grading_mode() -> bool:
    """True while nbgrader executes the notebook (validate, autograde): heavy cells shrink."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def normalize(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images (N, 32, 32, 3) or (32, 32, 3) -> float tensors (N, 3, 32, 32) or (3, 32, 32)."""
    pixels = torch.as_tensor(np.asarray(images), dtype=torch.float32) / 255.0
    pixels = pixels.movedim(-1, -3)
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    return (pixels - mean) / std


def denormalize(x: torch.Tensor) -> np.ndarray:
    """Normalised (3, H, W) or (N, 3, H, W) tensors -> float images (H, W, 3) / (N, H, W, 3) in [0, 1]."""
    x = x.detach().float().cpu()
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    return (x * std + mean).clamp(0, 1).movedim(-3, -1).numpy()


class CIFAR10TestSet(Dataset):
    """The CIFAR-10 test split in memory.

    Attributes:
        images: uint8 array (N, 32, 32, 3).
        labels: int64 array (N,).
        classes: the ten class names, index = label.
        standin: True when these are the stand-in's synthetic images.

    ``dataset[i]`` is ``(x, label)`` with ``x`` a normalised float tensor (3, 32, 32).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, classes=CLASSES, standin: bool = False):
        self.images = images
        self.labels = labels
        self.classes = tuple(classes)
        self.standin = standin

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return normalize(self.images[index]), int(self.labels[index])

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised images (B, 3, 32, 32) and labels (B,) for the given indices."""
        indices = np.asarray(indices, dtype=np.int64)
        return normalize(self.images[indices]), torch.as_tensor(self.labels[indices])


def read_cifar_batch(folder: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Read ``test_batch`` and ``batches.meta`` from a ``cifar-10-batches-py`` folder."""
    with open(folder / "test_batch", "rb") as file:
        batch = pickle.load(file, encoding="bytes")
    with open(folder / "batches.meta", "rb") as file:
        meta = pickle.load(file, encoding="bytes")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise ValueError(f"unexpected CIFAR batch layout: data {data.shape}, labels {labels.shape}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
    classes = tuple(name.decode() for name in meta[b"label_names"])
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= len(classes):
        raise ValueError(f"labels outside 0..{len(classes) - 1}")
    return images, labels, classes


def write_cifar_batch(root: Path, images: np.ndarray, labels, classes=CLASSES) -> Path:
    """Write images (N, 32, 32, 3) uint8 and labels in CIFAR-10's on-disk format under ``root``."""
    folder = Path(root) / BATCH_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    data = np.asarray(images, dtype=np.uint8).transpose(0, 3, 1, 2).reshape(len(images), -1)
    with open(folder / "test_batch", "wb") as file:
        pickle.dump({b"batch_label": b"testing batch 1 of 1", b"data": data,
                     b"labels": [int(label) for label in labels],
                     b"filenames": [f"image_{i:05d}.png".encode() for i in range(len(images))]}, file)
    with open(folder / "batches.meta", "wb") as file:
        pickle.dump({b"label_names": [name.encode() for name in classes],
                     b"num_cases_per_batch": len(images), b"num_vis": 3072}, file)
    return folder


def load_test_set(root: str | Path | None = None, standin: bool | None = None) -> CIFAR10TestSet:
    """The CIFAR-10 test split from ``root`` (default: the fetched copy, or the stand-in's).

    Raises:
        MissingAssetError: the files are missing or unreadable; the message names the fetch command.
    """
    use_standin = root is None and assets.standin_requested(standin)
    folder = Path(root if root is not None else assets.asset_root(use_standin)) / BATCH_FOLDER
    if not (folder / "test_batch").is_file():
        raise assets.missing("The CIFAR-10 test split", folder, use_standin)
    try:
        images, labels, classes = read_cifar_batch(folder)
    except (OSError, ValueError, KeyError, pickle.UnpicklingError, EOFError) as error:
        raise assets.MissingAssetError(
            f"The CIFAR-10 files in {folder} are damaged ({error}). Delete the folder and fetch again:\n"
            f"    {assets.STANDIN_FETCH_COMMAND if use_standin else assets.FETCH_COMMAND}"
        ) from error
    if use_standin:
        assets.note_standin_used()
    return CIFAR10TestSet(images, labels, classes, standin=use_standin)


def synthetic_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stand-in images (N, 32, 32, 3) uint8 and labels: smooth colour fields plus a bright square.

    They only exercise the pipeline; nothing about them resembles CIFAR-10's classes.
    """
    rng = np.random.default_rng(seed)
    coarse = torch.as_tensor(rng.uniform(0, 255, size=(n, 3, 4, 4)), dtype=torch.float32)
    smooth = torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)
    images = smooth.permute(0, 2, 3, 1).numpy()
    for image in images:
        top, left = rng.integers(0, 20, size=2)
        size = rng.integers(6, 12)
        image[top:top + size, left:left + size] = rng.uniform(128, 255, size=3)
    labels = rng.integers(0, len(CLASSES), size=n)
    return images.clip(0, 255).astype(np.uint8), labels


def subset_indices(n: int, total: int, seed: int = 0) -> np.ndarray:
    """``n`` distinct indices out of ``range(total)``, the same for the same seed, in increasing order."""
    if not 0 <= n <= total:
        raise ValueError(f"cannot pick {n} of {total} items")
    generator = torch.Generator().manual_seed(seed)
    return np.sort(torch.randperm(total, generator=generator)[:n].numpy())


def evaluation_indices(dataset: CIFAR10TestSet, seed: int = 0) -> np.ndarray:
    """The whole split normally; a fixed subset of ``GRADING_SUBSET_SIZE`` under nbgrader."""
    if grading_mode():
        return subset_indices(min(GRADING_SUBSET_SIZE, len(dataset)), len(dataset), seed)
    return np.arange(len(dataset))


@torch.no_grad()
def predict(model: torch.nn.Module, dataset: CIFAR10TestSet, indices=None, batch_size: int = 256):
    """Softmax probabilities (N, 10) of ``model`` on ``dataset[indices]`` (all images by default)."""
    indices = np.arange(len(dataset)) if indices is None else np.asarray(indices)
    device = next(model.parameters()).device
    probabilities = []
    for start in range(0, len(indices), batch_size):
        x, _ = dataset.batch(indices[start:start + batch_size])
        probabilities.append(torch.softmax(model(x.to(device)), dim=1).cpu())
    return torch.cat(probabilities) if probabilities else torch.empty(0, len(dataset.classes))


def per_class_accuracy(predictions, labels, num_classes: int = len(CLASSES)) -> np.ndarray:
    """Accuracy per class (num_classes,); NaN for a class with no example."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    accuracy = np.full(num_classes, np.nan)
    for c in range(num_classes):
        of_class = labels == c
        if of_class.any():
            accuracy[c] = float((predictions[of_class] == c).mean())
    return accuracy


def select_examples(predictions, labels, n: int, correct: bool, seed: int = 0) -> np.ndarray:
    """Positions of up to ``n`` correctly (or incorrectly) classified examples, seeded and sorted.

    ``predictions`` and ``labels`` are aligned 1-D arrays; the result indexes into them.
    """
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    pool = np.flatnonzero((predictions == labels) == correct)
    picked = subset_indices(min(n, len(pool)), len(pool), seed)
    return pool[picked]
