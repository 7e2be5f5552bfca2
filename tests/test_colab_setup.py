"""The notebooks' set-up cell, run in a simulated Colab (offline: installs the kit from this checkout)."""

import os
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat

from autograder.authoring import build
from autograder.authoring.source_format import REPO_ROOT


def _setup_source() -> str:
    cells = nbformat.read(str(build.RELEASE_DIR / "01_hooks.ipynb"), 4).cells
    return next(c.source for c in cells if c.get("id") == "colab_setup")


def test_every_notebook_starts_with_a_badge_and_the_setup_cell():
    for path in sorted(build.RELEASE_DIR.glob("*.ipynb")):
        cells = nbformat.read(str(path), 4).cells
        assert "colab.research.google.com/github/" in cells[1].source and f"notebooks/{path.name}" in cells[1].source
        # Not tracked by nbgrader: a notebook published for another repository or ref grades the same.
        assert cells[2].id == "colab_setup" and "nbgrader" not in cells[2].metadata
        assert "nbgrader" not in cells[1].metadata


def test_local_jupyter_runs_nothing(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)

    def forbidden(*args, **kwargs):
        raise AssertionError("the set-up cell must not run commands outside Colab")

    monkeypatch.setattr(subprocess, "run", forbidden)
    exec(_setup_source(), {})
    assert "Local Jupyter" in capsys.readouterr().out


def simulated_colab(folder: Path) -> tuple[Path, Path]:
    """A new, empty venv that sees this venv's packages as "Colab's preinstalled" ones:
    ``(its python, its site-packages)``. No pip of its own: pip, setuptools and the preinstalled
    packages (torch, numpy, matplotlib, transformers...) come from ours through a .pth file."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    colab_site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                     check=True, capture_output=True, text=True).stdout.strip())
    (colab_site / "preinstalled.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python, colab_site


def test_simulated_colab_installs_the_kit_without_reinstalling_torch(tmp_path):
    python, colab_site = simulated_colab(tmp_path / "colab-venv")
    script = tmp_path / "run_cell.py"
    script.write_text(textwrap.dedent("""
        import sys, types
        sys.modules["google.colab"] = types.ModuleType("google.colab")
        exec(open(sys.argv[1]).read(), {})
    """))
    (tmp_path / "cell.py").write_text(_setup_source())
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "XAI_KIT_PIP_SOURCE": str(REPO_ROOT),
           # (pip reads PIP_NO_BUILD_ISOLATION=0 as --no-build-isolation: offline, no setuptools download)
           "XAI_KIT_FETCH_ARGS": "--standin", "XAI_KIT_DATA_DIR": str(tmp_path / "data"),
           "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run([str(python), str(script), str(tmp_path / "cell.py")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Colab set-up done" in result.stdout
    installed = {p.name.split("-")[0].lower() for p in colab_site.glob("*.dist-info")}
    assert "xai_course_kit" in installed
    assert not {"torch", "torchvision"} & installed, "the set-up cell reinstalled torch"
    # student_src now imports from the installed copy, and the stand-in assets were fetched.
    check = subprocess.run([str(python), "-c", "import student_src, sys; print(student_src.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert str(colab_site) in check.stdout or "__editable__" in check.stdout
    assert (tmp_path / "data" / "standin" / "cifar-10-batches-py" / "test_batch").is_file()
