"""nbgrader validation of every built notebook: solutions pass, releases fail every autograded test."""

from autograder import build, validate


def test_solutions_pass_and_releases_fail_every_test(standin_assets):
    assert validate.validate() == []


def test_validation_notices_a_test_that_passes_on_the_stubs(standin_assets, monkeypatch, tmp_path):
    import nbformat

    release = nbformat.read(str(build.RELEASE_DIR / "01_hooks.ipynb"), 4)
    for cell in release.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "test_top_channels":
            cell.source = "assert True"
            cell.metadata.nbgrader.pop("checksum", None)
    nbformat.write(release, tmp_path / "01_hooks.ipynb")
    monkeypatch.setattr(build, "RELEASE_DIR", tmp_path)
    problems = validate.validate(["01_hooks"])
    assert len(problems) == 1 and "01_hooks release" in problems[0] and "assert True" in problems[0]
