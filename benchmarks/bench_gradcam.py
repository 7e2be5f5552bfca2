"""Time the reference Grad-CAM against pytorch-grad-cam's, side by side on the same model and batch.

    python benchmarks/bench_gradcam.py [--batch 64] [--repeats 7] [--layer layer4] [--threads N]

Both run on the CIFAR ResNet-18 (random init: the time does not depend on the weights) on a batch
of 32x32 images, targets = predicted classes, after a warm-up; the median of ``--repeats`` runs
(alternating between the two) is reported. The reference takes ``torch.autograd.grad`` to the
target layer only; the library calls ``loss.backward()``, which also computes every weight's
gradient. Goal at layer4: ratio <= 0.4 (a deeper target layer leaves less backward to skip).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytorch_grad_cam import GradCAM  # noqa: E402

from solutions.gradcam import grad_cam  # noqa: E402
from student_src.checks import rel_error  # noqa: E402
from student_src.models import build_cifar_resnet18  # noqa: E402

GOAL_RATIO = 0.4


def median_seconds(functions, repeats: int, warmup: int = 2) -> list:
    """Median wall time of each function; the runs alternate, so load from other processes
    on a shared machine falls on both sides alike."""
    for _ in range(warmup):
        for function in functions:
            function()
    times = [[] for _ in functions]
    for _ in range(repeats):
        for function, measured in zip(functions, times):
            start = time.perf_counter()
            function()
            measured.append(time.perf_counter() - start)
    return [statistics.median(measured) for measured in times]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--layer", default="layer4")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = build_cifar_resnet18().eval()
    x = torch.randn(args.batch, 3, 32, 32)
    layer = model.get_submodule(args.layer)

    with GradCAM(model, [layer]) as library_cam:
        def run_library():
            maps = library_cam(x, targets=None)
            model.zero_grad(set_to_none=True)
            return maps

        agreement = rel_error(grad_cam(model, args.layer, x), torch.from_numpy(run_library()))
        ours, library = median_seconds([lambda: grad_cam(model, args.layer, x), run_library], args.repeats)

    ratio = ours / library
    print(f"Grad-CAM at {args.layer}, batch {args.batch} x 3 x 32 x 32, CPU, {torch.get_num_threads()} thread(s), "
          f"median of {args.repeats}")
    print(f"  solutions.gradcam.grad_cam : {1000 * ours:8.1f} ms")
    print(f"  pytorch_grad_cam.GradCAM   : {1000 * library:8.1f} ms")
    print(f"  ratio ours / library       : {ratio:8.2f}   (goal <= {GOAL_RATIO})")
    print(f"  relative error of the maps : {agreement:8.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
