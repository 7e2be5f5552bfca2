"""Reference solution of Assignment 5, part 1: which layer of a CNN is its last convolution?

Grad-CAM (Selvaraju et al., ICCV 2017, https://arxiv.org/abs/1610.02391) reads the last
convolutional feature map: the deepest layer that still has a spatial layout. In torchvision's
AlexNet that is ``features.10`` (``Conv2d(256, 256, 3)``; at 224x224 its output is (256, 13, 13)),
in VGG-16 ``features.28`` (``Conv2d(512, 512, 3)``, (512, 14, 14)), in a ResNet-18
``layer4.1.conv2``. The module *after* it in ``features`` is an in-place ReLU and then a max-pool
(AlexNet's ``features.12`` halves the map to 6x6): neither is a convolution.

``model.named_modules()`` lists the modules in the order they were registered, depth first
(``features``, ``features.0``, ... ``avgpool``, ``classifier``, ...). For networks built as a chain
of ``nn.Sequential`` blocks, as these are, that is the order in which ``forward`` runs them.

Student functions use only ``torch`` and ``nn``.
"""

from __future__ import annotations

from torch import nn


def last_conv_layer(model: nn.Module) -> str:
    """The name (as in ``model.named_modules()``) of the last ``nn.Conv2d`` registered in ``model``.

    Args:
        model: any ``nn.Module``, e.g. torchvision's ``alexnet()`` -> ``"features.10"``,
            ``vgg16()`` -> ``"features.28"``, the CIFAR ResNet-18 -> ``"layer4.1.conv2"``.

    Returns:
        the dotted module name, usable with ``model.get_submodule(name)``.

    Raises:
        ValueError: the model has no ``nn.Conv2d`` at all (say so; do not return a wrong layer).
    """
    ### BEGIN SOLUTION
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer")
    return names[-1]
    ### END SOLUTION
