"""What the bubblewrap sandbox costs per notebook: kernel start to first executed cell, and one
small notebook graded, with and without the sandbox, side by side in one run.

    .venv/bin/python benchmarks/sandbox_overhead.py [--kernels 10] [--students 4] [--rounds 2] [--skip-grading]

1. one zygote started without a sandbox and one in bwrap (``autograder.engine.sandbox``), each fully
   imported first; then ``--kernels`` kernels from each, alternately: seconds from
   ``start_kernel`` to the reply of a first ``1 + 1`` (in the sandbox this includes the sweep of
   the PID namespace, emptying /tmp and HOME, and copying the working folder);
2. ``grade`` of ``--students`` students handing in the reference 01_hooks notebook (one worker),
   ``--sandbox none`` and ``--sandbox bwrap`` alternately, ``--rounds`` times; each run also pays
   its own zygote start, nbgrader start and course build. The ratio bwrap/none is the figure.

Uses the stand-in model and data (made in a temporary folder). Goal: at most 0.5 s per notebook.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jupyter_client.manager import KernelManager  # noqa: E402

from autograder.authoring import build  # noqa: E402

from autograder.engine import prewarmed_kernel, sandbox
from autograder.engine.grader_files import private_code_copy  # noqa: E402
from student_src import assets, fetch  # noqa: E402


def _first_cell_seconds(layout: sandbox.SandboxLayout | None, env: dict) -> float:
    """Start one kernel of the zygote ``env`` points at; seconds until ``1 + 1`` has run."""
    options = {}
    if layout is not None:
        options = {"transport": "ipc", "ip": layout.ipc_prefix,
                   "connection_file": str(Path(layout.connections) / f"kernel-{uuid.uuid4()}.json")}
    started = time.monotonic()
    manager = KernelManager(kernel_name=prewarmed_kernel.KERNEL_NAME, **options)
    manager.start_kernel(env=env)
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        client.execute_interactive("1 + 1", timeout=60, output_hook=lambda message: None)
        return time.monotonic() - started
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _start_zygote(root: Path, layout, code: Path) -> tuple:
    """A zygote (in bwrap if ``layout``), waited for until its imports are done; its environment."""
    address = str(root / f"zygote-{uuid.uuid4().hex[:8]}.sock")
    env = dict(os.environ) | {prewarmed_kernel.ZYGOTE_ENV: address}
    if layout is not None:  # as the worker starts it: the kernel's code is its only code of the kit
        env[sandbox.SANDBOX_ENV] = layout.to_env()
        env["PYTHONPATH"] = str(code)
    process = prewarmed_kernel.start_zygote(address, env=env, sandbox_layout=layout, code=code)
    _first_cell_seconds(layout, env)  # the first kernel waits for the imports: not counted
    return process, env


def kernel_starts(root: Path, kernels: int) -> dict:
    """``{"none": [seconds...], "bwrap": [...]}``: kernels started alternately from two zygotes."""
    code = private_code_copy(root / "code")
    os.environ["PYTHONPATH"] = build.grading_env(code_root=code)["PYTHONPATH"]
    prewarmed_kernel.install_kernelspec(root / "jupyter", script=code / "autograder" / "engine" / "prewarmed_kernel.py")
    os.environ["JUPYTER_PATH"] = str(root / "jupyter")
    layout = sandbox.make_layout(8192, root=root / "sb")
    kernel_code = sandbox.kernel_code_copy(root / "kernel-code", build.REPO_ROOT)
    zygotes = {"none": _start_zygote(root, None, code), "bwrap": _start_zygote(root, layout, kernel_code)}
    times: dict = {name: [] for name in zygotes}
    try:
        for _ in range(kernels):
            for name, (_, env) in zygotes.items():
                times[name].append(_first_cell_seconds(layout if name == "bwrap" else None, env))
    finally:
        for process, _ in zygotes.values():
            process.kill()
            process.wait()
    return times


def grading_seconds(root: Path, students: int, rounds: int) -> dict:
    """``{"none": [s, ...], "bwrap": [...]}``: ``grade`` of ``students`` copies of the reference 01_hooks."""
    from autograder.engine.grade import grade

    for number in range(students):
        folder = root / "submissions" / f"reference{number}"
        folder.mkdir(parents=True)
        shutil.copyfile(build.REPO_ROOT / "solutions" / "notebooks" / "01_hooks.ipynb", folder / "01_hooks.ipynb")
    seconds: dict = {"none": [], "bwrap": []}
    for round_number in range(rounds):
        for choice in ("none", "bwrap"):
            started = time.monotonic()
            rows = grade(root / "submissions", root / f"out-{choice}-{round_number}", jobs=1, assignments=["01_hooks"],
                         progress=False, sandbox=choice)
            seconds[choice].append(time.monotonic() - started)
            totals = [row for row in rows if row.item == "autograded_total"]
            assert len(totals) == students and all((t.score, t.max_score) == (8, 8) for t in totals), totals
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernels", type=int, default=10)
    parser.add_argument("--students", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-grading", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="xai-sbbench-") as tmp:
        root = Path(tmp)
        os.environ[assets.DATA_DIR_ENV] = str(root / "data")
        os.environ[assets.STANDIN_ENV] = "1"
        fetch.make_standin(root / "data" / "standin", n_images=200)
        times = kernel_starts(root, args.kernels)
        print(f"kernel start to first cell, {args.kernels} kernels each (seconds)")
        print(f"{'':10}{'median':>10}{'mean':>10}{'max':>10}")
        for name, values in times.items():
            print(f"{name:10}{statistics.median(values):10.3f}{statistics.mean(values):10.3f}{max(values):10.3f}")
        overhead = statistics.median(times["bwrap"]) - statistics.median(times["none"])
        print(f"sandbox overhead per kernel (median): {overhead:+.3f} s (goal: at most 0.5 s)")
        if not args.skip_grading:
            seconds = grading_seconds(root, args.students, args.rounds)
            none, bwrap = statistics.median(seconds["none"]), statistics.median(seconds["bwrap"])
            print(f"\ngrade, {args.students} students x reference 01_hooks, one worker, median of {args.rounds}: "
                  f"none {none:.1f} s, bwrap {bwrap:.1f} s, ratio {bwrap / none:.3f} "
                  f"({(bwrap - none) / args.students:+.2f} s per notebook); all runs: {seconds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
