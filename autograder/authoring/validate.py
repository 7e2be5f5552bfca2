"""``python -m autograder validate``: nbgrader's own validation of every built notebook.

- the solution notebook must pass: every test cell runs without error;
- the student release, validated with ``invert=True``, must fail every autograded test cell
  (a test that passes on the stubs gives points for nothing).

``nbgrader validate`` on the command line exits 0 even when validation fails, so this calls
``nbgrader.validator.Validator`` and reads its result (``{}`` means success).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from autograder.authoring import build

from autograder.engine import prewarmed_kernel

CELL_TIMEOUT = 300


def _validator(invert: bool):
    from nbgrader.validator import Validator
    from traitlets.config import Config

    config = Config()
    config.Execute.timeout = CELL_TIMEOUT
    config.Execute.kernel_name = prewarmed_kernel.KERNEL_NAME
    return Validator(config=config, invert=invert)


def _problems_of(assignment: str, kind: str) -> list[str]:
    """Validate one built notebook: ``kind`` is "solution" (must pass) or "release" (must fail)."""
    if kind == "solution":
        result = _validator(invert=False).validate(str(build.SOLUTION_DIR / f"{assignment}.ipynb"))
        return [f"{assignment} solution: {key}: {cell['source'][:80]!r} {cell.get('raw_error', '')[-300:]}"
                for key, cells in result.items() for cell in cells]
    result = _validator(invert=True).validate(str(build.RELEASE_DIR / f"{assignment}.ipynb"))
    return [f"{assignment} release: a test cell {key} on the stubs: {cell['source'][:80]!r}"
            for key, cells in result.items() for cell in cells]


def validate(assignments=None, jobs: int = 2) -> list[str]:
    """Problems found (empty when the solutions pass and the releases fail every test).

    Notebooks run in kernels forked from a process that has imported torch (``prewarmed_kernel``);
    ``jobs`` notebooks are validated side by side, each in a process of its own (forked, so it
    sees the environment set here). Problems are listed in assignment order, solution first.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from autograder.engine import check_server

    check_server.ensure_running()  # the hidden tests' checks run here; the kernels inherit its address
    env = build.grading_env()
    saved = dict(os.environ)
    os.environ.update({key: env[key] for key in ("PYTHONPATH", "PATH", "PYTHONWARNINGS")})
    runtime = tempfile.TemporaryDirectory(prefix="xai-validate-")
    zygote = prewarmed_kernel.activate(Path(runtime.name))
    work = [(assignment, kind) for assignment in assignments or build.assignment_ids()
            for kind in ("solution", "release")]
    try:
        if jobs <= 1:
            results = [_problems_of(*item) for item in work]
        else:
            with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork")) as pool:
                results = list(pool.map(_problems_of, *zip(*work)))
    finally:
        zygote.kill()
        zygote.wait()
        runtime.cleanup()
        os.environ.clear()
        os.environ.update(saved)
    return [problem for problems in results for problem in problems]


def main(assignments=None, jobs: int = 2) -> int:
    problems = validate(assignments, jobs)
    for problem in problems:
        print(problem)
    names = ", ".join(assignments or build.assignment_ids())
    print(f"validation of {names}: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
