"""The grader's own working files: a private copy of its code and fresh IPython/Jupyter folders
per grading worker. Grader-only.

- :func:`private_code_copy`: each grading worker (the nbgrader process, where the hidden checks
  and the reference run) imports the grader code (``autograder``, ``solutions``, ``student_src``)
  from its own temporary copy, so that editing the checkout while a class is graded changes
  nothing mid-run. Kernels never see it: their sandbox holds only ``sandbox.KERNEL_CODE``.
- :func:`worker_runtime` / :func:`runtime_env`: empty IPython and Jupyter folders for the worker.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from autograder.authoring.source_format import REPO_ROOT

#: The packages the grading worker imports from its private copy.
CODE_PACKAGES = ("autograder", "solutions", "student_src")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "figures", "notebooks", "assignments", "templates")


def private_code_copy(target: Path) -> Path:
    """Copy the grader code a kernel imports (``CODE_PACKAGES``, without caches, figures or
    notebooks) into ``target``; put ``target`` first on the worker's PYTHONPATH."""
    target.mkdir(parents=True, exist_ok=True)
    for package in CODE_PACKAGES:
        shutil.copytree(REPO_ROOT / package, target / package, ignore=_IGNORED)
    return target


RUNTIME_FOLDERS = {"IPYTHONDIR": "ipython", "JUPYTER_CONFIG_DIR": "jupyter_config", "JUPYTER_DATA_DIR": "jupyter_data"}


def worker_runtime(root: Path, code: Path) -> Path:
    """Empty IPython and Jupyter folders for one grading worker, plus the pre-warmed kernelspec in
    ``root/kernels`` (its launcher run from the worker's private ``code`` copy)."""
    from IPython.core.profiledir import ProfileDir

    from autograder.engine import prewarmed_kernel

    for folder in RUNTIME_FOLDERS.values():
        (root / folder).mkdir(parents=True, exist_ok=True)
    ProfileDir.create_profile_dir_by_name(str(root / "ipython"), "default").check_dirs()
    prewarmed_kernel.install_kernelspec(root / "kernels" / "jupyter", script=code / "autograder" / "engine" / "prewarmed_kernel.py")
    return root


def runtime_env(root: Path) -> dict:
    """Environment variables that point IPython and Jupyter at :func:`worker_runtime`'s folders."""
    return {variable: str(root / folder) for variable, folder in RUNTIME_FOLDERS.items()}
