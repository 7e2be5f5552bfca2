"""Start the grader's own Python helper processes isolated from what a notebook can write.

``python -m some.module`` puts its working directory first on ``sys.path``, reads the user's
site-packages (``~/.local``), ``PYTHONSTARTUP`` and every ``PYTHON*`` variable, and writes
``__pycache__`` next to what it imports. A graded notebook runs as the same user: a ``json.py``
dropped in the worker's folder, a ``.pth`` file in ``~/.local``, or a planted ``.pyc`` would run
in the grader's next worker process.

So :func:`command` runs the interpreter with ``-I`` (isolated: no working directory or script
folder on ``sys.path``, no user site-packages, ``PYTHON*`` variables ignored) and ``-B`` (no
bytecode written), and a two-line bootstrap that puts the grader's code folders back on
``sys.path`` explicitly (``-I`` drops ``PYTHONPATH``, and the worker must import the kit's code,
from the worker's private copy) before it runs the module as ``__main__``.

:func:`environment` is the environment to start it with: its children (nbgrader's kernels) do
not ignore ``PYTHON*`` variables, so it sets ``PYTHONDONTWRITEBYTECODE=1`` and
``PYTHONNOUSERSITE=1`` and drops ``PYTHONSTARTUP``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: ``python -I -B -c BOOTSTRAP PATHS MODULE ARG...``: PATHS first on sys.path, then MODULE as __main__.
BOOTSTRAP = ("import os, runpy, sys; paths, module = sys.argv[1:3]; del sys.argv[1:3]; "
             "sys.path[:0] = [p for p in paths.split(os.pathsep) if p]; "
             "runpy.run_module(module, run_name='__main__', alter_sys=True)")


def code_paths(env: dict | None = None) -> str:
    """The folders the helper imports the kit from: ``PYTHONPATH`` of ``env`` (of this process
    when None), or else the folder this ``autograder`` package was imported from."""
    paths = (os.environ if env is None else env).get("PYTHONPATH", "")
    return paths or str(Path(__file__).resolve().parents[2])


def command(module: str, arguments, env: dict | None = None) -> list[str]:
    """The argument list that runs ``python -m module *arguments`` isolated (see above)."""
    return [sys.executable, "-I", "-B", "-c", BOOTSTRAP, code_paths(env), module, *arguments]


def environment(env: dict | None = None) -> dict:
    """``env`` (this process's environment when None) for the isolated helper and its children."""
    env = dict(os.environ if env is None else env)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONNOUSERSITE"] = "1"
    env.pop("PYTHONSTARTUP", None)
    return env
