"""``python -m autograder publish``: the student repository, complete, reproducible, with nothing
grader-only in it, and working for a student (pip install offline, the Colab set-up cell, the
first exercise's visible check)."""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import textwrap
import time
import tomllib
from pathlib import Path

import nbformat
import pytest

from autograder.authoring import build, publish
from solutions import gradcam
from tests.test_colab_setup import simulated_colab

REPOSITORY, REF = "example-university/xai-notebooks", "2027-spring"
EXPECTED_TOP_LEVEL = {"README.md", "LICENSE", "pyproject.toml", ".gitignore", publish.MARKER,
                      "notebooks", "student_src", "data"}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    out = tmp_path_factory.mktemp("published") / "student-repo"
    files = publish.publish(out, REPOSITORY, REF)
    return out, files


def _contents(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_tree_is_complete_and_points_at_the_pinned_ref(published):
    out, files = published
    assert {p.name for p in out.iterdir()} == EXPECTED_TOP_LEVEL
    assert sorted(p.name for p in (out / "notebooks").iterdir()) == [f"{a}.ipynb" for a in build.assignment_ids()]
    assert {p.name for p in (out / "student_src").glob("*.py")} == \
        {p.name for p in (build.REPO_ROOT / "student_src").glob("*.py")}
    for path in (out / "notebooks").iterdir():
        cells = nbformat.read(str(path), 4).cells
        assert f"colab.research.google.com/github/{REPOSITORY}/blob/{REF}/notebooks/{path.name}" in cells[1].source
        assert f"git+https://github.com/{REPOSITORY}.git@{REF}" in cells[2].source
        assert "@main" not in cells[2].source
    readme = (out / "README.md").read_text()
    for needed in (REF, "Colab", "student_src.fetch", "nbgrader", "Gradescope", "LMS", "Restart"):
        assert needed in readme, needed
    pyproject = tomllib.loads((out / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"] == {"packages": ["student_src"]}  # no solutions, no autograder
    assert {"captum>=0.7", "grad-cam>=1.5.4,<1.6"} <= set(pyproject["project"]["dependencies"])
    assert "MIT" in (out / "LICENSE").read_text()
    assert files == sorted(p for p in out.rglob("*") if p.is_file())


def test_publishing_twice_writes_identical_files(published, tmp_path):
    out, _ = published
    again = tmp_path / "again"
    publish.publish(again, REPOSITORY, REF)
    assert _contents(again) == _contents(out)
    publish.publish(again, REPOSITORY, REF)  # over an earlier publication: replaced, same files
    assert _contents(again) == _contents(out)


def test_a_selection_of_assignments_and_refusals(tmp_path):
    out = tmp_path / "first-weeks"
    publish.publish(out, REPOSITORY, REF, ["02_gradcam", "01_hooks"])
    assert sorted(p.name for p in (out / "notebooks").iterdir()) == ["01_hooks.ipynb", "02_gradcam.ipynb"]
    assert "04_beyond" not in (out / "README.md").read_text()
    with pytest.raises(publish.PublishError, match="unknown assignment"):
        publish.publish(tmp_path / "x", REPOSITORY, REF, ["05_nope"])
    with pytest.raises(publish.PublishError, match="OWNER/NAME"):
        publish.publish(tmp_path / "x", "not a repository", REF)
    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    (unrelated / "thesis.tex").write_text("keep me")
    with pytest.raises(publish.PublishError, match="not empty"):
        publish.publish(unrelated, REPOSITORY, REF)
    assert (unrelated / "thesis.tex").read_text() == "keep me"


def test_nothing_grader_only_in_any_file(published):
    out, files = published
    assert publish.grader_only_findings(out) == []
    everything = "\n".join(publish._texts(path) for path in files)
    for forbidden in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "hidden.run(", "import solutions", "from solutions",
                      "from autograder", "check_record_activations_values", "autograder.engine.checks"):
        assert forbidden not in everything, forbidden
    assert not any(part in {"solutions", "autograder", "tests"} for p in files for part in p.relative_to(out).parts)


def _reference_body(function) -> str:
    source = inspect.getsource(function)
    return source.split("### BEGIN SOLUTION\n")[1].split("    ### END SOLUTION")[0]


@pytest.mark.parametrize("pasted, where", [
    (_reference_body(gradcam.scale_cams), "student_src/viz.py"),                # one reference body
    (_reference_body(gradcam.gradcam_channel_weights), "student_src/data.py"),  # a one-line body
    ("from solutions.hooks import record_activations\n", "student_src/session.py"),
    ("from autograder import hidden\n", "student_src/checks.py"),
    ("hidden_check = 'check_grad_cam_tiny_cnn'\nhidden.run('a02_gradcam', hidden_check, f)\n", "README.md"),
])
def test_the_scan_finds_one_pasted_piece(published, tmp_path, pasted, where):
    out, _ = published
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    target = copy / where
    target.write_text(target.read_text() + "\n" + textwrap.indent(pasted, "    " if where.endswith(".py") else ""))
    findings = publish.grader_only_findings(copy)
    assert findings and all(finding.startswith(where) for finding in findings), findings


def test_the_scan_finds_a_model_answer_and_a_grader_file(published, tmp_path):
    out, _ = published
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    solution = nbformat.read(str(build.SOLUTION_DIR / "02_gradcam.ipynb"), 4)
    answer = next(c.source for c in solution.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                  == "q_layers")
    notebook_path = copy / "notebooks" / "02_gradcam.ipynb"
    notebook = nbformat.read(str(notebook_path), 4)
    next(c for c in notebook.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "q_layers").source \
        = answer
    nbformat.write(notebook, notebook_path)
    (copy / "solutions").mkdir()
    (copy / "solutions" / "notes.txt").write_text("nothing in here")
    findings = publish.grader_only_findings(copy)
    assert any(f.startswith("notebooks/02_gradcam.ipynb") and "solutions" in f for f in findings), findings
    assert any(f.startswith("solutions/notes.txt") and "grader-only name" in f for f in findings), findings


@pytest.mark.parametrize("setuptools_table", [
    '[tool.setuptools]\npackages = ["student_src", "solutions"]\n',          # one package too many
    '[tool.setuptools.packages.find]\ninclude = ["student_src*"]\n',          # discovery, not a list
    "",                                                                        # automatic discovery
])
def test_the_scan_refuses_a_pyproject_that_installs_more_than_student_src(published, tmp_path, setuptools_table):
    out, _ = published
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    pyproject = copy / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text[:text.index("[tool.setuptools]")] + setuptools_table)
    findings = publish.grader_only_findings(copy)
    assert len(findings) == 1 and findings[0].startswith("pyproject.toml: installs"), findings


def _git(*args, cwd):
    env = {**os.environ, "GIT_AUTHOR_NAME": "kit", "GIT_AUTHOR_EMAIL": "kit@example.org",
           "GIT_COMMITTER_NAME": "kit", "GIT_COMMITTER_EMAIL": "kit@example.org"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def test_a_student_installs_it_offline_and_runs_the_first_exercise(published, tmp_path):
    """The published tree as a git repository standing in for GitHub, tagged with the term's ref:
    the Colab set-up cell installs it (no torch reinstalled) into a new, empty venv that sees
    "Colab's" packages, fetches the stand-in, and the notebook's first cells run there, up to
    the first exercise's visible check (with a correct answer typed in)."""
    out, _ = published
    remote = tmp_path / "github" / "xai-notebooks"
    shutil.copytree(out, remote)
    _git("init", "-q", "-b", "main", cwd=remote)
    _git("add", "-A", cwd=remote)
    _git("commit", "-q", "-m", "Course release", cwd=remote)
    _git("tag", REF, cwd=remote)

    python, colab_site = simulated_colab(tmp_path / "colab-venv")

    notebook = nbformat.read(str(out / "notebooks" / "01_hooks.ipynb"), 4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source
               for c in nbformat.read(str(build.SOLUTION_DIR / "01_hooks.ipynb"), 4).cells
               if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
    cells = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        cells.append(answers.get(grade_id, cell.source))
        if grade_id == "test_record_activations_values":
            break
    (tmp_path / "cells.py").write_text("\n\n".join(cells))
    script = tmp_path / "run_cells.py"
    script.write_text(textwrap.dedent("""
        import sys, types
        sys.modules["google.colab"] = types.ModuleType("google.colab")
        import matplotlib
        matplotlib.use("Agg")
        exec(compile(open(sys.argv[1]).read(), "notebook", "exec"), {"__name__": "__main__"})
        print("first exercise checked")
    """))
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "XAI_KIT_PIP_SOURCE": f"git+file://{remote}@{REF}",
           "XAI_KIT_FETCH_ARGS": "--standin", "XAI_KIT_DATA_DIR": str(tmp_path / "data"), "XAI_KIT_STANDIN": "1",
           "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    started = time.monotonic()
    result = subprocess.run([str(python), str(script), str(tmp_path / "cells.py")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    print(f"set-up cell (pip install of the published tree) and first cells: {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Colab set-up done" in result.stdout and "Shapes and values look right." in result.stdout
    assert "first exercise checked" in result.stdout
    installed = {p.name.split("-")[0].lower() for p in colab_site.glob("*.dist-info")}
    assert "xai_course_notebooks" in installed
    assert not {"torch", "torchvision"} & installed, "the set-up cell reinstalled torch"
    [record] = colab_site.glob("xai_course_notebooks-*.dist-info/RECORD")
    top_level = {line.split(",")[0].split("/")[0] for line in record.read_text().splitlines()}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"student_src"}
    where = subprocess.run([str(python), "-c", "import student_src; print(student_src.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, check=True).stdout
    assert str(colab_site) in where
