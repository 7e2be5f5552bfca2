"""Gradescope: ``python -m autograder gradescope`` builds the autograder zip; ``gradescope-run`` grades.

The zip holds ``setup.sh`` and ``run_autograder`` at its root, plus the kit's instructor side
(``autograder/``, ``solutions/``, ``student_src/``, packaging files). On Gradescope:

- ``setup.sh`` (image build, network allowed) makes a venv with CPU-only torch and the pinned
  requirements, then writes the untrained stand-in into ``data/standin`` unless the zip was
  built with ``--with-data`` (the downloaded hub model and CIFAR-10 packed in). Grading does not
  need trained weights: student and reference functions are compared on the same model.
- ``run_autograder`` grades the uploaded notebook(s) offline with the same nbgrader pipeline as
  ``python -m autograder grade`` and writes ``results/results.json``: one test per graded cell
  (name, score, max_score, status, output, visibility) plus the total.

Paths follow Gradescope (``/autograder/source``, ``/autograder/submission``,
``/autograder/results``); ``$AUTOGRADER_ROOT`` moves them (the tests use a temporary folder).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

from autograder.authoring import build
from autograder.engine.grade import TOTAL_ITEM, grade
from student_src import assets

PACKED = ("autograder", "solutions", "student_src", "pyproject.toml", "requirements.txt", "constraints.txt",
          "README.md")
SKIPPED_PARTS = ("__pycache__", ".ipynb_checkpoints")
COURSE_WORK_DIRS = ("source", "release", "submitted", "autograded", "feedback")

SETUP_SH = """#!/usr/bin/env bash
# Gradescope image build: Python venv with CPU-only torch and the kit's pinned requirements.
set -euo pipefail
apt-get update -qq && apt-get install -y -qq python3 python3-venv python3-pip bubblewrap > /dev/null
cd /autograder/source
python3 -m venv /autograder/venv
PIP="/autograder/venv/bin/pip"
$PIP install --quiet --upgrade pip
TORCH=$(grep -E '^torch==' constraints.txt | cut -d= -f3)
VISION=$(grep -E '^torchvision==' constraints.txt | cut -d= -f3)
$PIP install --quiet "torch==$TORCH" "torchvision==$VISION" --index-url https://download.pytorch.org/whl/cpu
grep -v -E '^(torch|torchvision|nvidia-|triton|cuda-)' constraints.txt > /tmp/constraints-cpu.txt
$PIP install --quiet -r requirements.txt -c /tmp/constraints-cpu.txt
$PIP install --quiet --no-deps -e .
if [ ! -f data/models/resnet18_cifar10/pytorch_model.bin ]; then
  XAI_KIT_DATA_DIR=/autograder/source/data /autograder/venv/bin/python -m student_src.fetch --standin
fi
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope entry point: grade /autograder/submission into /autograder/results/results.json.
set -uo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PYTHON="${XAI_KIT_PYTHON:-$ROOT/venv/bin/python}"
cd "$ROOT/source"
exec "$PYTHON" -m autograder gradescope-run --root "$ROOT" {assignments}
"""


def _packed_files(with_data: bool):
    root = build.REPO_ROOT
    for name in PACKED:
        path = root / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            relative = file.relative_to(root)
            parts = relative.parts
            if any(part in SKIPPED_PARTS for part in parts) or file.suffix == ".db":
                continue
            if parts[:2] == ("autograder", "course") and len(parts) > 3 and parts[2] in COURSE_WORK_DIRS:
                continue
            if parts[0] == "solutions" and len(parts) > 1 and parts[1] == "figures":
                continue
            yield file, relative
    if with_data:
        data_root = assets.data_dir()
        # Not the ImageNet weights (760 MB): grading compares student and reference on the same model.
        for file in sorted(p for p in data_root.rglob("*") if p.is_file() and "standin" not in p.parts
                           and "torchvision" not in p.parts):
            yield file, Path("data") / file.relative_to(data_root)


def build_zip(out: Path, assignments=None, with_data: bool = False) -> Path:
    """Write the Gradescope autograder zip to ``out``; return its path."""
    assignments = list(assignments or build.assignment_ids())
    if with_data and not (assets.data_dir() / "models").is_dir():
        raise assets.missing("The downloaded model and data (for --with-data)", assets.data_dir(), False)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in (("setup.sh", SETUP_SH),
                           ("run_autograder", RUN_AUTOGRADER.replace("{assignments}", " ".join(assignments)))):
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = 0o755 << 16
            archive.writestr(info, text)
        for file, relative in _packed_files(with_data):
            archive.write(file, str(relative))
    return out


def _stage_submission(submission_dir: Path, assignments, target: Path) -> Path:
    """Copy the uploaded notebooks to ``target/student/<assignment>.ipynb``.

    A single uploaded notebook with another name (``02_gradcam (1).ipynb``) counts as the only
    configured assignment's notebook.
    """
    student = target / "student"
    student.mkdir(parents=True, exist_ok=True)
    uploaded = sorted(submission_dir.rglob("*.ipynb"))
    named = {path.stem: path for path in uploaded if path.stem in assignments}
    if not named and len(uploaded) == 1 and len(assignments) == 1:
        named = {assignments[0]: uploaded[0]}
    for assignment, path in named.items():
        shutil.copyfile(path, student / f"{assignment}.ipynb")
    return target


def results_json(rows, elapsed: float, note: str) -> dict:
    """Gradescope's results.json from grade rows (one test per autograded cell or problem)."""
    tests = []
    lines = []
    for row in rows:
        if row.item == TOTAL_ITEM:
            lines.append(f"{row.assignment}: {row.score:g}/{row.max_score:g} autograded points"
                         + (f" ({row.message})" if row.message else ""))
            if row.status != "graded":
                tests.append({"name": f"{row.assignment}: could not be graded", "score": 0.0,
                              "max_score": row.max_score, "status": "failed", "output": row.message,
                              "visibility": "visible"})
        elif row.kind == "autograded":
            tests.append({"name": f"{row.assignment}: {row.item}", "score": row.score,
                          "max_score": row.max_score, "status": row.status, "output": row.message,
                          "visibility": "visible"})
    score = sum(row.score or 0.0 for row in rows if row.item == TOTAL_ITEM)
    output = "\n".join(lines + ["Written answers are graded by hand."] + ([note] if note else []))
    return {"score": score, "execution_time": round(elapsed, 1), "output": output, "visibility": "visible",
            "stdout_visibility": "hidden", "tests": tests}


def gradescope_sandbox() -> str:
    """``"bwrap"`` where bubblewrap can make its namespaces in this container, else ``"none"``."""
    from autograder.engine import sandbox

    return "bwrap" if sandbox.unavailable_reason() is None else "none"


def run(root: Path, assignments=None) -> dict:
    """Grade ``root/submission`` and write ``root/results/results.json``; return the results."""
    started = time.monotonic()
    assignments = list(assignments or build.assignment_ids())
    note = ""
    os.environ.setdefault(assets.DATA_DIR_ENV, str(root / "source" / "data"))
    from student_src import imagenet

    imagenet_missing = any(imagenet.uses_imagenet(a) for a in assignments) and \
        not all(path.is_file() for path, _ in imagenet.real_assets())
    if imagenet_missing or not (assets.data_dir() / "models" / "resnet18_cifar10").is_dir():
        os.environ[assets.STANDIN_ENV] = "1"
        note = "Graded on the untrained stand-in model: scores are exact, figures in the feedback are not real."
    with tempfile.TemporaryDirectory(prefix="xai-gradescope-") as tmp:
        staged = _stage_submission(root / "submission", assignments, Path(tmp) / "submissions")
        # One notebook gains nothing from a pre-warmed zygote, which would be one more process
        # holding torch in Gradescope's small container. The hidden checks run outside the kernel
        # either way; the kernel runs in bubblewrap where the container allows user namespaces,
        # else the container (one per upload) is the boundary.
        rows = grade(staged, Path(tmp) / "out", jobs=1, assignments=assignments, progress=False,
                     prewarmed_kernels=len(assignments) > 1, sandbox=gradescope_sandbox())
    results = results_json(rows, time.monotonic() - started, note)
    (root / "results").mkdir(parents=True, exist_ok=True)
    (root / "results" / "results.json").write_text(json.dumps(results, indent=2))
    return results
