"""The environment the tests run nbgrader's own commands with, as an instructor would: the kit's
virtual environment first on ``PATH`` (what ``source .venv/bin/activate`` does) and no ``PYTHON*``
variable at all. The kit is then found only as ``make install`` installed it (editable, into that
environment), never through ``PYTHONPATH`` or a working folder inside the checkout, which is what
pytest's own process has (``pythonpath = ["."]``) and what hid a course folder that worked only
beside the checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from pathlib import Path

#: The kit's virtual environment's scripts (``nbgrader``, ``jupyter``): not resolved, a venv's
#: ``python`` is a link to the system's.
VENV_BIN = Path(sys.executable).parent


def installed_kit_env(**extra: str) -> dict:
    """``os.environ`` without ``PYTHON*``, the venv's scripts first on ``PATH``, plus ``extra``;
    refuses (assertion) when that environment's installed kit is another checkout than this one."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTHON")}
    env["PATH"] = os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])
    _assert_installed_kit_is_this_checkout(env["PATH"])
    return env | extra


@cache
def _assert_installed_kit_is_this_checkout(path: str) -> None:
    from autograder.authoring.source_format import REPO_ROOT

    probe = subprocess.run([sys.executable, "-c", "import autograder; print(autograder.__file__)"], cwd="/",
                           env={"PATH": path, "HOME": os.environ.get("HOME", "/")}, capture_output=True, text=True)
    assert probe.returncode == 0, f"the kit is not installed in {VENV_BIN.parent}: `make install`\n{probe.stderr}"
    installed = Path(probe.stdout.strip()).resolve().parents[1]
    assert installed == REPO_ROOT.resolve(), (f"{VENV_BIN.parent} has the kit of {installed} installed, not this "
                                              f"checkout {REPO_ROOT}: run `make install` here (each checkout its own .venv)")
