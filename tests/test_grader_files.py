"""The grader's working files: a private copy of its code per worker, the assets found as here."""

from autograder.engine.grader_files import CODE_PACKAGES, private_code_copy


def test_the_private_copy_holds_the_grader_code_without_caches(tmp_path):
    code = private_code_copy(tmp_path / "code")
    assert sorted(p.name for p in code.iterdir()) == sorted(CODE_PACKAGES)
    assert (code / "autograder" / "engine" / "checks" / "a01_hooks.py").is_file()
    assert (code / "solutions" / "gradcam.py").is_file()
    assert not list(code.rglob("__pycache__")) and not list(code.rglob("*.png"))


def test_grading_kernels_find_the_assets_this_process_finds(tmp_path, monkeypatch):
    """Kernels import student_src from the private copy, whose own folder has no data/: the worker
    passes on where this process finds the model and data (``<checkout>/data`` by default)."""
    from autograder.engine.grade import worker_env
    from student_src import assets

    monkeypatch.delenv(assets.DATA_DIR_ENV, raising=False)
    code = private_code_copy(tmp_path / "code")
    env = worker_env(2, code, tmp_path / "runtime")
    assert env[assets.DATA_DIR_ENV] == str(assets.data_dir())
    assert env["PYTHONPATH"].split(":")[0] == str(code) and env["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv(assets.DATA_DIR_ENV, str(tmp_path / "elsewhere"))
    assert worker_env(1, code, tmp_path / "runtime")[assets.DATA_DIR_ENV] == str(tmp_path / "elsewhere")
