"""Float32 round-off noise of the reference solutions: the measurements behind every tolerance.

Two correct implementations of one formula differ only by round-off, and how much depends on
how the work is split: the batch size (CPU convolution kernels differ for a batch of one), the
order of the images, the number of threads, the CPU's vector width (AVX2, AVX-512) and oneDNN
versus ATen's own kernels, and, on a GPU, TF32 convolutions. This script computes each graded
quantity once as the baseline (a batch of 6, default threads, this CPU's best kernels), then
again under each of those changes, and prints ``rel_error`` (``student_src.checks.rel_error``:
max |a - b| / (max |a| + max |b|)) against the baseline:

    .venv/bin/python benchmarks/measure_noise.py            # about 2 minutes on 2 cores

The CPU variants run in child processes with ``ATEN_CPU_CAPABILITY`` (ATen's vector width:
default = no SIMD, avx2, avx512) and ``ONEDNN_MAX_CPU_ISA`` (oneDNN's). TF32 is emulated on the
CPU: every convolution's and linear layer's input and weight are rounded to TF32's 10 mantissa
bits, as an Ampere GPU does (``student_src.session.full_float32`` turns TF32 off in notebooks).

A tolerance is justified when it is at least 10x the largest noise measured here for its
quantity, and a known-wrong mutant's error is far above it (tests/test_tolerances.py checks
the in-process part of this rule on every run).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from student_src.probe_models import alexnet_shaped  # noqa: E402
from solutions import faithfulness, gradcam, guided, hooks, layercam, shapley  # noqa: E402
from student_src import checks  # noqa: E402
from student_src.evaluation import grid_regions  # noqa: E402
from student_src.models import build_cifar_resnet18  # noqa: E402

BATCH = 6
CHILD_VARIANTS = {
    "ATen default (no SIMD)": {"ATEN_CPU_CAPABILITY": "default"},
    "ATen AVX2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "ATen AVX-512": {"ATEN_CPU_CAPABILITY": "avx512"},
    "oneDNN AVX2 only": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "ATen default + oneDNN SSE4.1": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
}


def models():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        resnet = build_cifar_resnet18().eval()
    return resnet, alexnet_shaped()


def inputs(batch: int = BATCH) -> torch.Tensor:
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(7))


def quantities():
    """``{name: function(models, x, targets) -> tensor}``: each graded kind of output."""
    def cam(layer, net=0):
        return lambda m, x, t: gradcam.grad_cam(m[net], layer, x, t)
    return {
        "activations layer1.0.bn1": lambda m, x, t: hooks.record_activations(m[0], ["layer1.0.bn1"], x)["layer1.0.bn1"],
        "activations layer4": lambda m, x, t: hooks.record_activations(m[0], ["layer4"], x)["layer4"],
        "gradients layer3.0.bn1": lambda m, x, t: gradcam.activations_and_gradients(m[0], "layer3.0.bn1", x, t)[1],
        "gradients layer4": lambda m, x, t: gradcam.activations_and_gradients(m[0], "layer4", x, t)[1],
        "Grad-CAM layer4": cam("layer4"),
        "Grad-CAM layer3": cam("layer3"),
        "Grad-CAM layer2": cam("layer2"),
        "Grad-CAM layer3.0.conv1": cam("layer3.0.conv1"),
        "Grad-CAM AlexNet features.10": cam("features.10", net=1),
        "Layer-CAM layer3": lambda m, x, t: layercam.layer_cam(m[0], "layer3", x, t),
        "input gradient": lambda m, x, t: guided.input_gradient(m[0], x, t),
        "guided backprop": lambda m, x, t: guided.guided_backprop(m[0], x, t),
        "deletion curve": lambda m, x, t: faithfulness.deletion_curve(
            m[0], x, gradcam.grad_cam(m[0], "layer3", x, t), t, steps=8),
        "Shapley values AlexNet 4x4 grid": lambda m, x, t: shapley.region_shapley(
            m[1], x, t, grid_regions(32, 32, 4), n_permutations=2, seed=0, batch_size=8),
    }


def evaluate(nets, x, targets, order=None, per_image=False) -> dict:
    """Every quantity on ``x``; ``order`` permutes the batch (results put back), ``per_image`` loops."""
    results = {}
    for name, function in quantities().items():
        if per_image:
            value = torch.cat([function(nets, x[i:i + 1], targets[i:i + 1]) for i in range(len(x))])
        elif order is not None:
            inverse = torch.argsort(order)
            value = function(nets, x[order], [targets[i] for i in order.tolist()])[inverse]
        else:
            value = function(nets, x, targets)
        results[name] = value.detach().double()
    return results


def round_to_tf32(tensor: torch.Tensor) -> torch.Tensor:
    """Round float32 values to TF32 (10 explicit mantissa bits), to nearest even."""
    bits = tensor.detach().contiguous().view(torch.int32)
    rounded = (bits + 0xFFF + ((bits >> 13) & 1)) & ~0x1FFF
    return rounded.view(torch.float32)


def tf32_emulated(net: torch.nn.Module) -> torch.nn.Module:
    """A copy whose convolutions and linear layers compute with TF32-rounded inputs and weights."""
    net = copy.deepcopy(net)
    for module in net.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            with torch.no_grad():
                module.weight.copy_(round_to_tf32(module.weight))
            module.register_forward_pre_hook(
                lambda mod, args: (args[0] + (round_to_tf32(args[0]) - args[0]).detach(),) + args[1:])
    return net


def in_process_noise(nets, x, targets, only=None, baseline=None) -> dict:
    """``{variant: {quantity: rel_error vs the baseline}}`` for the variants one process can make
    (``only``: a subset of their names; ``baseline``: :func:`evaluate` of the same inputs, if done)."""
    baseline = evaluate(nets, x, targets) if baseline is None else baseline
    variants = {
        "one image at a time": lambda: evaluate(nets, x, targets, per_image=True),
        "batch reversed": lambda: evaluate(nets, x, targets, order=torch.arange(len(x) - 1, -1, -1)),
    }
    threads = torch.get_num_threads()

    def one_thread():
        torch.set_num_threads(1)
        try:
            return evaluate(nets, x, targets)
        finally:
            torch.set_num_threads(threads)

    def without_onednn():
        with torch.backends.mkldnn.flags(enabled=False):
            return evaluate(nets, x, targets)

    variants["1 thread"] = one_thread
    variants["oneDNN off"] = without_onednn
    table = {}
    for variant, run in variants.items():
        if only is not None and variant not in only:
            continue
        results = run()
        table[variant] = {name: checks.rel_error(results[name], baseline[name]) for name in baseline}
    return table


def targets_for(nets, x) -> list:
    with torch.no_grad():
        return nets[0](x).topk(2, dim=1).indices[:, 1].tolist()  # runner-up classes: not the easy case


def child(output: str) -> None:
    nets = models()
    x = inputs()
    torch.save(evaluate(nets, x, targets_for(nets, x)), output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the table as JSON to this file")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    nets = models()
    x = inputs()
    targets = targets_for(nets, x)
    baseline = evaluate(nets, x, targets)
    table = in_process_noise(nets, x, targets, baseline=baseline)
    tf32 = evaluate(tuple(tf32_emulated(net) for net in nets), x, targets)
    table["TF32 convolutions (emulated)"] = {name: checks.rel_error(tf32[name], baseline[name]) for name in baseline}
    with tempfile.TemporaryDirectory() as folder:
        for variant, env in CHILD_VARIANTS.items():
            path = os.path.join(folder, "result.pt")
            run = subprocess.run([sys.executable, __file__, "--child", path], env={**os.environ, **env},
                                 capture_output=True, text=True)
            if run.returncode != 0:
                table[variant] = {name: float("nan") for name in baseline}
                print(f"{variant}: failed: {run.stderr.strip()[-300:]}", file=sys.stderr)
                continue
            results = torch.load(path)
            table[variant] = {name: checks.rel_error(results[name], baseline[name]) for name in baseline}
    variants = list(table)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}; rel_error vs a batch of {BATCH}\n")
    print("| quantity | " + " | ".join(variants) + " | max CPU |")
    print("|---" * (len(variants) + 2) + "|")
    for name in baseline:
        cpu = max(table[v][name] for v in variants if not v.startswith("TF32"))
        print(f"| {name} | " + " | ".join(f"{table[v][name]:.1e}" for v in variants) + f" | {cpu:.1e} |")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
