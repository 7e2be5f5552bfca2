"""The Gradescope zip, run as Gradescope runs it, in a folder laid out like /autograder."""

import json
import os
import subprocess
import sys
import zipfile

import nbformat

from autograder.authoring import build
from autograder.course.gradescope import build_zip


def test_zip_layout_and_run_autograder_writes_results(tmp_path, standin_assets):
    archive = build_zip(tmp_path / "autograder.zip", assignments=["01_hooks"])
    with zipfile.ZipFile(archive) as zipped:
        names = set(zipped.namelist())
        assert {"setup.sh", "run_autograder"} <= names
        assert zipped.getinfo("run_autograder").external_attr >> 16 & 0o111
        assert "autograder/engine/checks/a01_hooks.py" in names and "solutions/hooks.py" in names
        assert not any("__pycache__" in name or name.startswith("data/") for name in names)
        root = tmp_path / "autograder"
        zipped.extractall(root / "source")
    # Students rename files when they download twice: a single upload still counts.
    (root / "submission").mkdir()
    nbformat.write(build.solved_submission("01_hooks"), root / "submission" / "01_hooks (1).ipynb")
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), XAI_KIT_PYTHON=sys.executable)
    result = subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads((root / "results" / "results.json").read_text())
    assert set(results) >= {"score", "execution_time", "output", "visibility", "stdout_visibility", "tests"}
    assert results["score"] == 8
    tests = {test["name"]: test for test in results["tests"]}
    assert set(tests) == {"01_hooks: test_record_activations_values", "01_hooks: test_record_activations_cleanup",
                          "01_hooks: test_top_channels"}
    for test in tests.values():
        assert set(test) == {"name", "score", "max_score", "status", "output", "visibility"}
        assert test["status"] == "passed" and test["score"] == test["max_score"]
        assert test["visibility"] in {"hidden", "after_due_date", "after_published", "visible"}


def test_missing_upload_scores_zero_with_a_reason(tmp_path, standin_assets):
    from autograder.course.gradescope import run

    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "submission" / "notes.txt").write_text("forgot the notebook")
    results = run(root, assignments=["01_hooks"])
    assert results["score"] == 0
    assert results["tests"] == [{"name": "01_hooks: could not be graded", "score": 0.0, "max_score": 8.0,
                                 "status": "failed", "output": "no 01_hooks.ipynb handed in", "visibility": "visible"}]
