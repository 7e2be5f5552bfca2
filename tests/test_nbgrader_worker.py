"""The long-lived nbgrader worker: serves requests, reports failures, and survives being killed.
The tests that run kernels run them in the bubblewrap sandbox, as ``grade`` does."""

import os
import subprocess
import time

import nbformat
import pytest

from autograder.authoring import build
from autograder.engine.nbgrader_worker import CpuTimeExceeded, NbgraderWorker, WorkerError
from tests.processes import ProcessRecorder, alive, burning_children

ASSIGNMENT = "ps1"


def _cell(kind, source, grade_id, **meta):
    cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
    cell.metadata["nbgrader"] = {"grade_id": grade_id, "schema_version": 3, "grade": False, "solution": False,
                                 "locked": False, "task": False, **meta}
    return cell


def _source_notebook():
    return nbformat.v4.new_notebook(cells=[
        _cell("code", "def answer():\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION", "answer",
              solution=True),
        _cell("code", "assert answer() == 42", "test_answer", grade=True, locked=True, points=2),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def _submission(body):
    notebook = _source_notebook()
    notebook.cells[0].source = f"def answer():\n{body}"
    return notebook


@pytest.fixture
def course(tmp_path):
    course = build.new_course(tmp_path / "course")
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(_source_notebook(), course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    return course


def _hand_in(course, student, notebook):
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(notebook, folder / f"{ASSIGNMENT}.ipynb")


def _score(course, student):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return gradebook.find_submission(ASSIGNMENT, student).score



def test_grades_and_survives_a_notebook_that_never_ends(course):
    """With pre-warmed kernels, as grading runs (plain kernels, which Gradescope uses for a single
    notebook, are graded end to end in tests/test_gradescope.py)."""
    _hand_in(course, "right", _submission("    return 42"))
    _hand_in(course, "wrong", _submission("    return 41"))
    # Never ends; nbgrader's own cell timeout (300 s) is longer than the request's limit (12 s), so
    # only killing the worker (and with it bwrap, the zygote and the kernel) stops it.
    _hand_in(course, "stuck", _submission(
        "    import time\n"
        "    while True:\n        try:\n            time.sleep(0.05)\n        except KeyboardInterrupt:\n            pass"))
    # Computes without end, ignoring interrupts: the request's CPU limit (8 s) stops it first.
    _hand_in(course, "burning", _submission(
        "    while True:\n        try:\n            while True:\n                pass\n"
        "        except KeyboardInterrupt:\n            pass"))
    with NbgraderWorker(course, env=build.grading_env(), cell_seconds=300, prewarm=True, sandbox="bwrap") as worker:
        worker.request("generate_assignment", ASSIGNMENT)
        worker.request("autograde", ASSIGNMENT, "right", timeout=120)
        started = time.monotonic()
        recorder = ProcessRecorder(worker._process.pid)  # bwrap, the zygote, the stuck kernel, ...
        with pytest.raises(subprocess.TimeoutExpired):
            worker.request("autograde", ASSIGNMENT, "stuck", timeout=12)
        assert time.monotonic() - started < 40
        seen = recorder.stop()
        assert len(seen) >= 3
        deadline = time.monotonic() + 15
        while any(alive(pid) for pid in seen) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(pid) for pid in seen), "a process of the stuck notebook outlived its worker"
        with pytest.raises(CpuTimeExceeded, match="used more than 8 s of CPU time"):
            worker.request("autograde", ASSIGNMENT, "burning", timeout=600, cpu_seconds=8)
        worker.request("autograde", ASSIGNMENT, "wrong", timeout=120)  # a fresh worker takes over
        worker.request("generate_feedback", ASSIGNMENT, "wrong", timeout=120)
    assert _score(course, "right") == 2 and _score(course, "wrong") == 0
    assert (course / "feedback" / "wrong" / ASSIGNMENT / f"{ASSIGNMENT}.html").is_file()


def test_a_failed_command_raises_with_nbgraders_reason(course):
    with NbgraderWorker(course, env=build.grading_env()) as worker:
        worker.request("generate_assignment", ASSIGNMENT)
        with pytest.raises(WorkerError, match="nbgrader autograde ps1 nobody failed"):
            worker.request("autograde", ASSIGNMENT, "nobody", timeout=120)
        with pytest.raises(ValueError, match="unknown command"):
            worker.request("collect", ASSIGNMENT)
        pid = worker._process.pid
    assert not alive(pid)


def test_a_worker_that_dies_is_reported_and_replaced(course):
    with NbgraderWorker(course, env=build.grading_env()) as worker:
        worker.request("generate_assignment", ASSIGNMENT)
        os.kill(worker._process.pid, 9)
        with pytest.raises(WorkerError, match="worker stopped"):
            worker.request("generate_assignment", ASSIGNMENT)
        worker.request("generate_assignment", ASSIGNMENT)


def test_a_kernel_that_ignores_the_interrupt_is_restarted_and_later_cells_still_count(course):
    """Cell limit 3 CPU seconds (wall-clock backstop 15 s). A cell that ignores Ctrl-C while 16
    child processes burn CPU (the kernel's process tree: past the limit long before the backstop,
    however busy the machine) scores 0, its kernel is restarted, and the cells before it are run
    again on the fresh kernel, so the later cells keep their points, the one that needs the
    earlier state (``answer``) included (before the replay it lost its 3 points to a NameError).
    A cell that sleeps uses no CPU: the wall-clock backstop interrupts it (its kernel lives on).
    The notebook does not wait out every later cell."""
    notebook = _source_notebook()
    notebook.cells += [
        _cell("code", burning_children(16) + "while True:\n    try:\n        while True:\n            pass\n"
                      "    except KeyboardInterrupt:\n        pass", "test_loops", grade=True, locked=True, points=5),
        _cell("code", "assert 2 + 2 == 4", "test_independent", grade=True, locked=True, points=1),
        _cell("code", "assert answer() == 42", "test_needs_state", grade=True, locked=True, points=3),
        _cell("code", "import time\ntime.sleep(3600)", "test_sleeps", grade=True, locked=True, points=1),
        _cell("code", "assert answer() == 42", "test_after_sleep", grade=True, locked=True, points=1),
    ]
    nbformat.write(notebook, course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    _hand_in(course, "looping", notebook)
    with NbgraderWorker(course, env=build.grading_env(), cell_seconds=3, prewarm=True, sandbox="bwrap") as worker:
        worker.request("generate_assignment", ASSIGNMENT)
        started = time.monotonic()
        worker.request("autograde", ASSIGNMENT, "looping", timeout=240)
        assert time.monotonic() - started < 120
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        scores = {grade.cell.name: grade.score for grade in
                  gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, "looping").grades}
    assert scores == {"test_answer": 2, "test_loops": 0, "test_independent": 1, "test_needs_state": 3,
                      "test_sleeps": 0, "test_after_sleep": 1}
    graded = nbformat.read(course / "autograded" / "looping" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    errors = {cell.metadata["nbgrader"]["grade_id"]: [output.evalue for output in cell.outputs
                                                      if output.get("ename") == "CellTimeoutError"]
              for cell in graded.cells if cell.cell_type == "code"}
    assert errors["test_loops"] == ["this cell used more than 3 s of CPU time: it was interrupted and scores 0"]
    assert errors["test_sleeps"] == ["this cell did not finish within 15 s (wall clock; its CPU limit is 3 s): it "
                                     "was interrupted and scores 0"]
