"""Helpers shared by the hidden checks."""

from __future__ import annotations

import torch
from torch import nn


def call_student(function, what: str, *args, **kwargs):
    """Call the student's code; turn an exception into an AssertionError that says where."""
    try:
        return function(*args, **kwargs)
    except AssertionError:
        raise
    except Exception as error:  # noqa: BLE001 (any failure of the student's code fails the check)
        raise AssertionError(f"{what} raised {type(error).__name__}: {error}") from error


class AlexNetShaped(nn.Module):
    """A small random-init network laid out like torchvision's AlexNet (and VGG) for 32x32 inputs.

    ``features`` has convolutions at the same indices as AlexNet's (0, 3, 6, 8, 10), each followed
    by ``nn.ReLU(inplace=True)``, so ``features.10`` is the last convolution and an in-place ReLU
    overwrites its output; the classifier has an in-place ReLU too. A hook that keeps
    ``output.detach()`` (no copy) at ``features.10`` records the ReLU's output, not the
    convolution's: the case the hidden checks add for the in-place pitfall.
    Shapes: (B, 3, 32, 32) -> features.10: (B, 24, 8, 8) -> logits (B, 10).
    """

    def __init__(self, seed: int = 17, num_classes: int = 10):
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
            torch.manual_seed(seed)
            self.features = nn.Sequential(
                nn.Conv2d(3, 12, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),      # 0, 1, 2
                nn.Conv2d(12, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),     # 3, 4, 5
                nn.Conv2d(16, 24, 3, padding=1), nn.ReLU(inplace=True),                      # 6, 7
                nn.Conv2d(24, 24, 3, padding=1), nn.ReLU(inplace=True),                      # 8, 9
                nn.Conv2d(24, 24, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),     # 10, 11, 12
            )
            self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
            self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(24 * 4, 32), nn.ReLU(inplace=True),
                                            nn.Linear(32, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def alexnet_shaped(seed: int = 17) -> nn.Module:
    """A fresh :class:`AlexNetShaped` in eval mode (CPU)."""
    return AlexNetShaped(seed).eval()
