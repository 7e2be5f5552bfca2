"""Small networks the course's checks run your functions on. Public: nothing here is an answer.

The hidden checks do not run in your kernel: the grader's trusted process builds these models
(with its own seeds), sends them to your kernel, and asks it to call your function on them.
Their classes must therefore be importable here, in ``student_src``; which layers, inputs and
seeds a check uses stays with the grader.

- :class:`AlexNetShaped`: laid out like torchvision's AlexNet (in-place ReLUs after each conv);
- :class:`TinyCNN`: a 4x4 one-channel network whose Grad-CAM can be computed by hand;
- :class:`SharedReLUNet`: one ``nn.ReLU(inplace=True)`` module that runs twice (like ResNet's
  ``BasicBlock``);
- :class:`NestedConvBlocks`: convolutions in nested blocks, then BatchNorm, ReLU, pool, linear;
- :class:`AdditiveModel`: a score that is a sum over pixels (exact Shapley values by hand);
- :class:`InteractionCNN`: a small CNN whose score is far from additive over image regions;
- :class:`FailsOnPurpose` and :class:`FailsAfterReLU`: a forward pass that raises, to check that
  hooks and patched modules are removed in ``finally``.
"""

from __future__ import annotations

import torch
from torch import nn


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


class TinyCNN(nn.Module):
    """A 4x4 one-channel image -> two 2x2 channels (block mean, minus block mean), ReLU -> 2 logits.

    Layer ``"relu"`` gives ``A = (relu(m), relu(-m))`` where ``m`` is the 2x2 map of block means;
    a linear layer over every position gives gradients that differ between positions, so the
    average pool of Grad-CAM, a max pool and HiResCAM all give different maps.
    """

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # the weights are set below; keep the caller's RNG
            self.conv = nn.Conv2d(1, 2, kernel_size=2, stride=2, bias=False)
            self.fc = nn.Linear(8, 2, bias=False)
        self.relu = nn.ReLU()
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([0.25, -0.25]).view(2, 1, 1, 1).expand(2, 1, 2, 2))
            self.fc.weight.copy_(torch.tensor([[1.0, 0.0, 2.0, 1.0, -1.0, 0.0, 1.0, -2.0],
                                               [0.0, 1.0, 1.0, 0.0, 2.0, 2.0, 2.0, 2.0]]))

    def forward(self, x):
        return self.fc(self.relu(self.conv(x)).flatten(1))


class FailsOnPurpose(nn.Module):
    """A layer whose forward pass always raises ``ValueError`` (put it after the layer you hook)."""

    def forward(self, x):
        raise ValueError("forward failed on purpose")


class SharedReLUNet(nn.Module):
    """Two convolutions and a linear layer; ONE ``nn.ReLU(inplace=True)`` module runs twice.

    The same pattern as torchvision's ``BasicBlock``, in a network small enough to compute by
    hand (``tests/test_solutions_guided.py`` does). Input (B, 3, 4, 4), 5 logits.
    """

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(31)
            self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
            self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
            self.fc = nn.Linear(6 * 4 * 4, 5)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        return self.fc(x.flatten(1))


class FailsAfterReLU(nn.Module):
    """Runs its ReLU modules (one in-place, one nested), then raises: the model must still be restored."""

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.head = nn.Sequential(nn.Conv2d(4, 2, 1), nn.ReLU())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        self.head(self.relu(self.conv(x)))
        raise RuntimeError("forward failed on purpose")


class NestedConvBlocks(nn.Module):
    """Convolutions inside nested blocks; after the last one come a BatchNorm, an in-place ReLU, a
    pool and a linear head (none of them a convolution). Input (B, 3, H, W), 3 logits."""

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(5)
            self.stem = nn.Conv2d(3, 4, 3, padding=1)
            self.blocks = nn.Sequential(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()),
                                        nn.Sequential(nn.Conv2d(4, 6, 1), nn.BatchNorm2d(6), nn.ReLU(inplace=True)))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(6, 3))

    def forward(self, x):
        return self.head(self.pool(self.blocks(self.stem(x))))


class AdditiveModel(nn.Module):
    """``logits = g(x).flatten(1) @ weights.T`` with ``g = tanh`` (``squash=True``) or the identity.

    The score is a sum of one term per pixel, so the Shapley value of a group of pixels is the
    sum of its own terms, ``w * (g(x) - g(baseline))``, whatever the other pixels show.
    ``weights``: (num_classes, C * H * W).
    """

    def __init__(self, weights: torch.Tensor, squash: bool = False):
        super().__init__()
        self.weights = nn.Parameter(torch.as_tensor(weights, dtype=torch.float32).clone(), requires_grad=False)
        self.squash = squash

    def forward(self, x):
        return (torch.tanh(x) if self.squash else x).flatten(1) @ self.weights.t()


class InteractionCNN(nn.Module):
    """A small random CNN whose score is far from additive over image regions: a convolution, ReLU,
    a 2x2 average pool, a linear layer, and the product of logits 0 and 1 added to every logit.
    Input (B, 3, H, W), 4 logits."""

    def __init__(self, seed: int = 61):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.conv = nn.Conv2d(3, 6, 3, padding=1)
            self.fc = nn.Linear(6 * 4, 4)
        self.pool = nn.AdaptiveAvgPool2d(2)

    def forward(self, x):
        logits = self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))
        return logits + 2.0 * logits[:, :1] * logits[:, 1:2]
