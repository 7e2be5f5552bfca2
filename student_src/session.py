"""The first thing every notebook does: ``model, test_set = session.start()``."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from student_src import checks, data, models


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

    Raises ``MissingAssetError`` naming the fetch command when the model or data are missing.
    """
    for category in (UserWarning, FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    torch.manual_seed(seed)
    np.random.seed(seed)
    full_float32()
    checks.hello()
    model = checks.remember_model(models.load_model())  # the state every test cell starts from
    test_set = data.load_test_set()
    device = next(model.parameters()).device
    print(f"Model on {device}; {len(test_set)} test images; classes: {', '.join(test_set.classes)}")
    return model, test_set


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
