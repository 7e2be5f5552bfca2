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

from autograder import build, prewarmed_kernel

CELL_TIMEOUT = 300


def _validator(invert: bool):
    from nbgrader.validator import Validator
    from traitlets.config import Config

    config = Config()
    config.Execute.timeout = CELL_TIMEOUT
    config.Execute.kernel_name = prewarmed_kernel.KERNEL_NAME
    return Validator(config=config, invert=invert)


def validate(assignments=None) -> list[str]:
    """Problems found (empty when the solutions pass and the releases fail every test).

    Notebooks run in kernels forked from a process that has imported torch (``prewarmed_kernel``).
    """
    env = build.grading_env()
    saved = dict(os.environ)
    os.environ.update({key: env[key] for key in ("PYTHONPATH", "PATH", "PYTHONWARNINGS")})
    problems = []
    runtime = tempfile.TemporaryDirectory(prefix="xai-validate-")
    zygote = prewarmed_kernel.activate(Path(runtime.name))
    try:
        for assignment in assignments or build.assignment_ids():
            solution = build.SOLUTION_DIR / f"{assignment}.ipynb"
            result = _validator(invert=False).validate(str(solution))
            for key, cells in result.items():
                for cell in cells:
                    problems.append(f"{assignment} solution: {key}: {cell['source'][:80]!r}"
                                    f" {cell.get('raw_error', '')[-300:]}")
            release = build.RELEASE_DIR / f"{assignment}.ipynb"
            for key, cells in _validator(invert=True).validate(str(release)).items():
                for cell in cells:
                    problems.append(f"{assignment} release: a test cell {key} on the stubs: {cell['source'][:80]!r}")
    finally:
        zygote.kill()
        zygote.wait()
        runtime.cleanup()
        os.environ.clear()
        os.environ.update(saved)
    return problems


def main(assignments=None) -> int:
    problems = validate(assignments)
    for problem in problems:
        print(problem)
    names = ", ".join(assignments or build.assignment_ids())
    print(f"validation of {names}: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
