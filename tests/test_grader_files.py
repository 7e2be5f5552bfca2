"""The grader's files: a private copy for the kernels, and a snapshot that puts back any change."""

from autograder.grader_files import CODE_PACKAGES, FileSnapshot, private_code_copy


def _tree(tmp_path):
    root = tmp_path / "code"
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "checks.py").write_text("def check():\n    assert False\n")
    (root / "pkg" / "sub" / "data.txt").write_text("data")
    single = tmp_path / "config.py"
    single.write_text("c = 1\n")
    return root, single


def test_an_untouched_tree_has_no_changes(tmp_path):
    root, single = _tree(tmp_path)
    snapshot = FileSnapshot([root, single])
    assert snapshot.changes() == [] and snapshot.restore() == []


def test_edits_deletions_additions_and_planted_bytecode_are_undone(tmp_path):
    root, single = _tree(tmp_path)
    snapshot = FileSnapshot([root, single])
    (root / "pkg" / "checks.py").write_text("def check():\n    pass\n")
    (root / "pkg" / "sub" / "data.txt").unlink()
    (root / "pkg" / "__pycache__").mkdir()
    (root / "pkg" / "__pycache__" / "checks.cpython-311.pyc").write_bytes(b"planted")
    single.write_text("c = 2\n")
    changed = snapshot.restore()
    assert changed == ["code/pkg/__pycache__/checks.cpython-311.pyc", "code/pkg/checks.py",
                       "code/pkg/sub/data.txt", "config.py"]
    assert (root / "pkg" / "checks.py").read_text() == "def check():\n    assert False\n"
    assert (root / "pkg" / "sub" / "data.txt").read_text() == "data"
    assert not (root / "pkg" / "__pycache__").exists()
    assert single.read_text() == "c = 1\n"
    assert snapshot.changes() == []


def test_a_file_replaced_by_a_folder_or_link_is_put_back(tmp_path):
    root, single = _tree(tmp_path)
    snapshot = FileSnapshot([root])
    target = root / "pkg" / "checks.py"
    target.unlink()
    target.mkdir()
    (target / "x").write_text("x")
    data = root / "pkg" / "sub" / "data.txt"
    data.unlink()
    data.symlink_to(single)
    assert snapshot.restore() == ["code/pkg/checks.py", "code/pkg/checks.py/x", "code/pkg/sub/data.txt"]
    assert target.is_file() and not data.is_symlink() and data.read_text() == "data"


def test_caches_can_be_left_alone(tmp_path):
    root, _ = _tree(tmp_path)
    snapshot = FileSnapshot([root], skip_caches=True)
    (root / "pkg" / "__pycache__").mkdir()
    (root / "pkg" / "__pycache__" / "checks.cpython-311.pyc").write_bytes(b"written by python")
    assert snapshot.restore() == []
    assert (root / "pkg" / "__pycache__" / "checks.cpython-311.pyc").exists()


def test_the_private_copy_holds_the_grader_code_without_caches(tmp_path):
    code = private_code_copy(tmp_path / "code")
    assert sorted(p.name for p in code.iterdir()) == sorted(CODE_PACKAGES)
    assert (code / "autograder" / "checks" / "a01_hooks.py").is_file()
    assert (code / "solutions" / "gradcam.py").is_file()
    assert not list(code.rglob("__pycache__")) and not list(code.rglob("*.png"))


def test_shared_files_report_every_notebook_in_flight(tmp_path):
    from autograder.grader_files import SharedFileWatch

    root, _ = _tree(tmp_path)
    watch = SharedFileWatch(FileSnapshot([root]))
    watch.started("alice")
    watch.started("bob")
    (root / "pkg" / "evil.pth").write_text("import os")
    message = watch.finished("alice")  # alice's worker finds the change: bob was running too
    assert "evil.pth" in message and "grade this notebook again" in message
    assert not (root / "pkg" / "evil.pth").exists()
    watch.started("carol")
    assert watch.finished("bob") == message
    assert watch.finished("carol") is None  # started after the files were put back


def test_grading_kernels_find_the_assets_this_process_finds(tmp_path, monkeypatch):
    """Kernels import student_src from the private copy, whose own folder has no data/: the worker
    passes on where this process finds the model and data (``<checkout>/data`` by default)."""
    from autograder.grade import worker_env
    from student_src import assets

    monkeypatch.delenv(assets.DATA_DIR_ENV, raising=False)
    code = private_code_copy(tmp_path / "code")
    env = worker_env(2, code, tmp_path / "runtime")
    assert env[assets.DATA_DIR_ENV] == str(assets.data_dir())
    assert env["PYTHONPATH"].split(":")[0] == str(code) and env["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv(assets.DATA_DIR_ENV, str(tmp_path / "elsewhere"))
    assert worker_env(1, code, tmp_path / "runtime")[assets.DATA_DIR_ENV] == str(tmp_path / "elsewhere")
