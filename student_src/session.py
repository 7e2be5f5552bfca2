"""The first thing every notebook does: ``model, test_set = session.start()``."""

from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager

import numpy as np
import torch

from student_src import assets, checks, data, models

#: How to run a notebook offline, printed by the set-up when the downloads are missing.
OFFLINE_HINT = (f"No network, or not fetched yet? Start Jupyter with {assets.STANDIN_ENV}=1 "
                f"(`{assets.STANDIN_ENV}=1 jupyter lab`) to run on the untrained stand-in (random weights, "
                "synthetic images): the checks work, the figures show the mechanics only.")


def start(seed: int = 0):
    """Prepare a notebook session and return ``(model, test_set)``.

    1. Silences library ``UserWarning``/``FutureWarning``/``DeprecationWarning`` (nbgrader scores a
       test cell that prints a warning to stderr as failed);
    2. seeds torch and numpy, so figures are the same on every run;
    3. prints the environment check (:func:`student_src.checks.hello`);
    4. turns TF32 off on GPUs (:func:`full_float32`), so the checks' float32 tolerances hold there;
    5. loads the CIFAR-10 ResNet-18 (eval mode, on the GPU if there is one) and the test split;
       the test cells put the model back into this state before they call your functions
       (:func:`student_src.checks.call`).

    With ``$XAI_KIT_STANDIN`` set, the untrained stand-in is used (and written first if it is not
    on disk yet: no download). Raises ``MissingAssetError`` naming the fetch command, and how to
    run on the stand-in instead, when the model or data are missing.
    """
    _prepare(seed)
    checks.hello()
    with _offline_hint():
        model = checks.remember_model(models.load_model())  # the state every test cell starts from
        test_set = data.load_test_set()
    device = next(model.parameters()).device
    print(f"Model on {device}; {len(test_set)} test images; classes: {', '.join(test_set.classes)}")
    return model, test_set


def start_imagenet(seed: int = 0, with_vgg: bool = True):
    """Assignment 5's set-up: ``alexnet, vgg16, photos = session.start_imagenet()``.

    Steps 1, 2 and 4 of :func:`start`, then torchvision's AlexNet and VGG-16 with ImageNet
    weights (eval mode, on the GPU if there is one; ``vgg16`` is ``None`` when ``with_vgg`` is
    false) and the photos ``("both", "cat", "dog")`` as one ImageNet-normalised batch
    (3, 3, 224, 224). With ``$XAI_KIT_STANDIN`` set: seeded random-init networks and generated
    photos, marked as stand-ins. Raises ``MissingAssetError`` naming
    ``python -m student_src.fetch --imagenet`` when the files are missing.
    """
    from student_src import imagenet

    _prepare(seed)
    mode = "STAND-IN (random-init networks, generated photos)" if assets.standin_requested() else "real"
    print(f"Python {sys.version.split()[0]}, torch {torch.__version__}, device: {models.default_device()}; "
          f"assets: {mode}, in {assets.asset_root()}")
    with _offline_hint():
        alexnet = imagenet.load_model("alexnet")
        vgg16 = imagenet.load_model("vgg16") if with_vgg else None
        photos = imagenet.load_photos(tuple(imagenet.PHOTOS)).to(next(alexnet.parameters()).device)
    loaded = "AlexNet and VGG-16" if with_vgg else "AlexNet"
    print(f"{loaded} on {photos.device}; photos {', '.join(imagenet.PHOTOS)}: {tuple(photos.shape)}")
    return alexnet, vgg16, photos


def standin_note(what: str) -> None:
    """On the stand-in only: print that ``what`` (an output above) is no evidence about a trained model."""
    if assets.standin_active():
        print(f"STAND-IN: {what}: from an untrained network on synthetic images, no evidence for the "
              "questions (answer them from a run on the real model).")


@contextmanager
def _offline_hint():
    """Write the stand-in first when it is asked for and missing; add :data:`OFFLINE_HINT` to a
    ``MissingAssetError`` for the real files."""
    if assets.standin_requested():
        from student_src import fetch

        fetch.ensure_standin()
    try:
        yield
    except assets.MissingAssetError as error:
        if assets.standin_requested():
            raise
        raise assets.MissingAssetError(f"{error}\n{OFFLINE_HINT}") from None


def _prepare(seed: int) -> None:
    for category in (UserWarning, FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    torch.manual_seed(seed)
    np.random.seed(seed)
    full_float32()


def full_float32() -> None:
    """Compute convolutions and matrix products in full float32 on a GPU (no TF32).

    On Ampere and later GPUs (Colab's L4 and A100) PyTorch runs convolutions in TF32 by default:
    10 mantissa bits instead of float32's 23. Two correct implementations that run the network
    with different batch sizes then differ by about 1e-3 (measured by emulating TF32 rounding on
    the CPU: ``benchmarks/measure_noise.py``), far above the 1e-5 the checks allow for float32
    round-off. With TF32 off, a GPU's noise is float32 noise again. No effect on a CPU.
    """
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
