"""``python -m autograder validate``: nbgrader's own validation of the built notebooks.

That every assignment's solution passes its tests and its release fails every one of them is
proven for all assignments through the real autograde pipeline (the class run,
tests/test_grading_aNN.py: the reference gets full marks, the blank release fails every
autograded cell). Here the validate command itself, on Assignment 1: the solution passes, and a
release test that passes on the stubs is reported.
"""

from autograder.authoring import build, validate


def test_validation_passes_the_solution_and_notices_a_test_that_passes_on_the_stubs(standin_assets, monkeypatch,
                                                                                     tmp_path):
    import nbformat

    release = nbformat.read(str(build.RELEASE_DIR / "01_hooks.ipynb"), 4)
    for cell in release.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "test_top_channels":
            cell.source = "assert True"
            cell.metadata.nbgrader.pop("checksum", None)
    nbformat.write(release, tmp_path / "01_hooks.ipynb")
    monkeypatch.setattr(build, "RELEASE_DIR", tmp_path)
    problems = validate.validate(["01_hooks"])
    # Exactly one problem: the edited release test; none from the solution or the other tests.
    assert len(problems) == 1 and "01_hooks release" in problems[0] and "assert True" in problems[0], problems
