"""The grader's own inputs and outputs with hostile submissions: DIR is only read, nothing planted in
OUT is followed, zips are capped before and while they are extracted, grades.csv cannot carry a
formula or a forged row, and the grader's helper processes run isolated. No nbgrader run here:
these test ``submissions``, ``safe_output``, ``grade.write_csv`` and ``isolated_python`` directly."""

import csv
import hashlib
import io
import json
import os
import stat
import struct
import subprocess
import tracemalloc
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.engine import isolated_python, safe_output, submissions
from autograder.engine.grade import CSV_FIELDS, FORMULA_STARTS, TOTAL_ITEM, Row, rows_not_graded, write_csv
from autograder.engine.submissions import collect, hand_in

ASSIGNMENTS = ["01_hooks", "02_gradcam"]


def _notebook_bytes(text="print('hi')") -> bytes:
    return nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(text)])).encode()


def _hashes(root: Path) -> dict:
    """Every entry under ``root`` (links not followed): its kind, mode and, for files, SHA-256."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(info.st_mode) else None
        found[str(path.relative_to(root))] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode),
                                              info.st_mtime_ns, digest)
    return found


def _zip(path: Path, members: dict) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _by_id(collected) -> dict:
    return {submission.student_id: submission for submission in collected}


# 1. Private copies; DIR is never changed; no link is followed.

@pytest.fixture
def cohort(tmp_path):
    """DIR with a folder student, a zip student and a student whose notebook is a link outside DIR."""
    directory = tmp_path / "DIR"
    (directory / "alice").mkdir(parents=True)
    (directory / "alice" / "01_hooks.ipynb").write_bytes(_notebook_bytes("alice = 1"))
    (directory / "alice" / "numpy.py").write_text("raise SystemExit")
    _zip(directory / "bob.zip", {"bob/02_gradcam.ipynb": _notebook_bytes("bob = 2")})
    secret = tmp_path / "outside" / "secret.ipynb"
    secret.parent.mkdir()
    secret.write_bytes(_notebook_bytes("secret = 3"))
    (directory / "carol").mkdir()
    (directory / "carol" / "01_hooks.ipynb").symlink_to(secret)
    return directory


def test_notebooks_are_copied_into_a_private_folder_and_dir_is_unchanged(cohort, tmp_path):
    before = _hashes(cohort)
    collected = _by_id(collect(cohort, ASSIGNMENTS))
    alice, bob = collected["alice"], collected["bob"]
    for submission, assignment in ((alice, "01_hooks"), (bob, "02_gradcam")):
        copy = submission.notebooks[assignment]
        assert cohort not in copy.parents
        assert submission.digests[assignment] == hashlib.sha256(copy.read_bytes()).hexdigest()
        private_root = copy.parents[2]  # <scratch>/students/<id>/<nb>
        assert stat.S_IMODE(private_root.stat().st_mode) == 0o700
    # What grading hands to nbgrader is the copy, even if DIR's file changes later.
    (cohort / "alice" / "01_hooks.ipynb").write_bytes(_notebook_bytes("changed later"))
    before["alice/01_hooks.ipynb"] = _hashes(cohort)["alice/01_hooks.ipynb"]
    handed = tmp_path / "course" / "01_hooks.ipynb"
    handed.parent.mkdir()
    assert hand_in(alice, "01_hooks", handed) is None
    assert b"alice = 1" in handed.read_bytes()
    assert _hashes(cohort) == before


def test_a_private_copy_changed_before_grading_is_not_graded(cohort, tmp_path):
    alice = _by_id(collect(cohort, ASSIGNMENTS))["alice"]
    alice.notebooks["01_hooks"].write_bytes(_notebook_bytes("planted by an earlier notebook"))
    handed = tmp_path / "handed.ipynb"
    assert "changed after it was handed in" in hand_in(alice, "01_hooks", handed)
    assert not handed.exists()


@pytest.mark.parametrize("replacement", ["link", "fifo"])
def test_a_private_copy_replaced_by_a_link_or_fifo_is_not_followed(cohort, tmp_path, replacement):
    alice = _by_id(collect(cohort, ASSIGNMENTS))["alice"]
    copy = alice.notebooks["01_hooks"]
    copy.unlink()
    if replacement == "link":
        copy.symlink_to(cohort / "alice" / "01_hooks.ipynb")
    else:
        os.mkfifo(copy)
    assert "changed after it was handed in" in hand_in(alice, "01_hooks", tmp_path / "handed.ipynb")


def test_a_notebook_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    directory = tmp_path / "DIR"
    (directory / "dave").mkdir(parents=True)
    os.mkfifo(directory / "dave" / "01_hooks.ipynb")
    dave = _by_id(collect(directory, ASSIGNMENTS, scratch=tmp_path / "scratch"))["dave"]
    assert dave.problems["01_hooks"] == "01_hooks.ipynb: not a regular file"


def test_dir_itself_may_be_a_link_the_instructor_made(cohort, tmp_path):
    (tmp_path / "DIR-link").symlink_to(cohort)
    assert "01_hooks" in _by_id(collect(tmp_path / "DIR-link", ASSIGNMENTS))["alice"].notebooks


def test_a_notebook_that_links_outside_dir_is_refused(cohort):
    carol = _by_id(collect(cohort, ASSIGNMENTS))["carol"]
    assert carol.notebooks == {}
    assert carol.problems["01_hooks"] == "01_hooks.ipynb: a symbolic link: not followed"


def test_the_default_scratch_folder_is_private(cohort):
    copy = _by_id(collect(cohort, ASSIGNMENTS))["alice"].notebooks["01_hooks"]
    assert stat.S_IMODE(copy.parents[2].stat().st_mode) == 0o700
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600


# 2. OUT: links are replaced, never followed; student ids cannot escape.

def test_grades_csv_planted_as_a_link_is_replaced_not_followed(tmp_path):
    out, victim = tmp_path / "OUT", tmp_path / "bashrc"
    out.mkdir()
    victim.write_text("original\n")
    (out / "grades.csv").symlink_to(victim)
    write_csv([Row("alice", "01_hooks", TOTAL_ITEM, "autograded", 1.0, 2.0, "graded")], out / "grades.csv")
    assert victim.read_text() == "original\n"
    assert not (out / "grades.csv").is_symlink() and "alice" in (out / "grades.csv").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["grades.csv"]  # no temporary file left


@pytest.mark.parametrize("planted", ["feedback", "feedback/alice", "feedback/alice/01_hooks.html"])
def test_feedback_paths_planted_as_links_are_replaced_not_followed(tmp_path, planted):
    out, elsewhere = tmp_path / "OUT", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    link = out / planted
    link.parent.mkdir(parents=True)
    link.symlink_to(elsewhere if not planted.endswith(".html") else elsewhere / "keep.txt")
    html = tmp_path / "course_feedback.html"
    html.write_text(f"<html><head>{safe_output.CSP_META}</head>feedback</html>")
    written = safe_output.copy_feedback(html, out, "alice", "01_hooks")
    assert written == out / "feedback" / "alice" / "01_hooks.html"
    assert written.read_text() == f"<html><head>{safe_output.CSP_META}</head>feedback</html>"
    for part in (out / "feedback", out / "feedback" / "alice", written):
        assert not part.is_symlink()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["keep.txt"]
    assert (elsewhere / "keep.txt").read_text() == "keep"


def test_removing_planted_outputs_removes_the_link_only(tmp_path):
    out, elsewhere = tmp_path / "OUT", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    (out / "feedback").symlink_to(elsewhere)
    safe_output.remove_path(out, "feedback")
    assert not os.path.lexists(out / "feedback") and (elsewhere / "keep.txt").exists()


@pytest.mark.parametrize("student_id", ["..", "../x", "a/b", "/tmp/x", "", "."])
def test_a_student_id_cannot_escape_the_feedback_folder(tmp_path, student_id):
    html = tmp_path / "page.html"
    html.write_text("x")
    with pytest.raises(ValueError):
        safe_output.copy_feedback(html, tmp_path / "OUT", student_id, "01_hooks")
    assert not submissions.STUDENT_ID.match(student_id)
    assert not any(p.suffix == ".html" for p in tmp_path.rglob("*") if p != html)


# 3. Zips: names and sizes checked before extraction, extraction capped.

@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory) -> Path:
    """A zip of about 200 KB whose notebook inflates to 200 MB of zeros."""
    path = tmp_path_factory.mktemp("bomb") / "mallory.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("01_hooks.ipynb", "w") as member:
            block = bytes(2**20)
            for _ in range(200):
                member.write(block)
    return path


def _declare_size(path: Path, size: int) -> None:
    """Make a one-member zip lie: its local and central headers declare ``size`` uncompressed bytes."""
    data = bytearray(path.read_bytes())
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, size)
    struct.pack_into("<I", data, central + 24, size)
    path.write_bytes(bytes(data))


def _collect_measured(directory, scratch):
    tracemalloc.start()
    try:
        collected = collect(directory, ASSIGNMENTS, scratch=scratch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return _by_id(collected), peak


def _disk_use(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("lying", [False, True], ids=["declared", "declared_size_lies"])
def test_a_zip_bomb_costs_at_most_the_limit(tmp_path, zip_bomb, monkeypatch, lying):
    monkeypatch.setattr(submissions, "MAX_NOTEBOOK_BYTES", 2**20)
    directory = tmp_path / "DIR"
    directory.mkdir()
    bomb = directory / "mallory.zip"
    bomb.write_bytes(zip_bomb.read_bytes())
    if lying:
        _declare_size(bomb, 1000)
    collected, peak = _collect_measured(directory, tmp_path / "scratch")
    mallory = collected["mallory"]
    assert mallory.notebooks == {}
    problem = mallory.problems["01_hooks"]
    assert ("larger than 1 MB" in problem) if not lying else ("cannot be read" in problem or "larger" in problem)
    assert peak < 8 * 2**20
    assert _disk_use(tmp_path / "scratch") <= 2**20
    rows = rows_not_graded([mallory], ASSIGNMENTS, [], {a: 10.0 for a in ASSIGNMENTS})
    assert [(row.assignment, row.status) for row in rows] == [("01_hooks", "not graded"), ("02_gradcam", "not graded")]
    assert rows[0].message == problem


def test_the_stream_cap_stops_at_the_limit_whatever_was_declared(tmp_path):
    target = tmp_path / "out.ipynb"
    with pytest.raises(submissions.Refused, match="larger than"):
        submissions.copy_capped(io.BytesIO(b"x" * 5000), target, limit=1000)
    assert not target.exists()
    assert len(submissions.copy_capped(io.BytesIO(b"x" * 1000), target, limit=1000)) == 64


@pytest.mark.parametrize("name", ["../01_hooks.ipynb", "/01_hooks.ipynb", "a/../../01_hooks.ipynb",
                                  "C:/01_hooks.ipynb", "..\\01_hooks.ipynb"])
def test_zip_members_with_unsafe_names_are_refused(tmp_path, name):
    directory = tmp_path / "DIR"
    directory.mkdir()
    _zip(directory / "eve.zip", {name: _notebook_bytes()})
    eve = _by_id(collect(directory, ASSIGNMENTS, scratch=tmp_path / "scratch"))["eve"]
    assert eve.notebooks == {} and "unsafe name" in eve.problems["01_hooks"]
    assert not (tmp_path / "01_hooks.ipynb").exists()


def test_a_class_zip_is_capped_and_keeps_unsafe_names_inside(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(submissions, "MAX_NOTEBOOK_BYTES", 2**16)
    class_zip = _zip(tmp_path / "class.zip", {
        "class/alice/01_hooks.ipynb": _notebook_bytes(),
        "class/bob/01_hooks.ipynb": b" " * (2**16 + 1),
        "class/../../escaped.ipynb": _notebook_bytes(),
    })
    collected = _by_id(collect(class_zip, ASSIGNMENTS, scratch=tmp_path / "scratch"))
    assert "01_hooks" in collected["alice"].notebooks
    assert "no 01_hooks.ipynb" in collected["bob"].problems["01_hooks"]
    assert not list(tmp_path.rglob("escaped.ipynb"))
    stderr = capsys.readouterr().err
    assert "class/bob/01_hooks.ipynb" in stderr and "unsafe name" in stderr


# 4. Only real folders and zips are students; one row per assignment for two entries.

def test_only_real_folders_and_zips_count_as_students(tmp_path, capsys):
    directory, elsewhere = tmp_path / "DIR", tmp_path / "elsewhere"
    (directory / "alice").mkdir(parents=True)
    (directory / "alice" / "01_hooks.ipynb").write_bytes(_notebook_bytes())
    elsewhere.mkdir()
    (elsewhere / "01_hooks.ipynb").write_bytes(_notebook_bytes())
    (directory / "linked").symlink_to(elsewhere)
    _zip(elsewhere / "zipped.zip", {"01_hooks.ipynb": _notebook_bytes()})
    (directory / "zipped.zip").symlink_to(elsewhere / "zipped.zip")
    os.mkfifo(directory / "fifo.zip")
    os.mkfifo(directory / "pipe")
    (directory / "fake.zip").write_text("not a zip")
    (directory / ".git").mkdir()
    (directory / ".DS_Store").write_bytes(b"\0")
    (directory / "notes.txt").write_text("notes")
    (directory / "top.ipynb").write_bytes(_notebook_bytes())
    collected = _by_id(collect(directory, ASSIGNMENTS, scratch=tmp_path / "scratch"))
    assert sorted(collected) == ["alice", "fake", "linked", "zipped"]
    assert "01_hooks" in collected["alice"].notebooks
    assert collected["linked"].problems["01_hooks"] == "'linked' is a symbolic link: not followed"
    assert collected["zipped"].problems["02_gradcam"] == "'zipped.zip' is a symbolic link: not followed"
    assert collected["fake"].problems["01_hooks"].startswith("not a readable zip file")
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1
    for name in (".git", ".DS_Store", "fifo.zip", "pipe", "notes.txt", "top.ipynb"):
        assert repr(name) in stderr


def test_two_entries_for_one_student_grade_neither_and_say_so(tmp_path):
    directory = tmp_path / "DIR"
    (directory / "alice").mkdir(parents=True)
    (directory / "alice" / "01_hooks.ipynb").write_bytes(_notebook_bytes())
    _zip(directory / "alice.zip", {"01_hooks.ipynb": _notebook_bytes()})
    collected = collect(directory, ASSIGNMENTS, scratch=tmp_path / "scratch")
    assert [submission.student_id for submission in collected] == ["alice"]
    rows = rows_not_graded(collected, ASSIGNMENTS, [], {a: 10.0 for a in ASSIGNMENTS})
    assert len(rows) == len(ASSIGNMENTS)
    for row in rows:
        assert row.status == "not graded" and "'alice'" in row.message and "'alice.zip'" in row.message


def test_an_unusable_student_id_gets_a_row_without_control_characters(tmp_path):
    directory = tmp_path / "DIR"
    (directory / "=evil\x1b[31m").mkdir(parents=True)
    (directory / "bad name").mkdir()
    collected = collect(directory, ASSIGNMENTS, scratch=tmp_path / "scratch")
    assert [submission.student_id for submission in collected] == ["=evil?[31m", "bad name"]
    assert all(problem.startswith("unusable student id") for s in collected for problem in s.problems.values())


# 5. CSV injection.

FORGED = "boom\nalice,01_hooks,autograded_total,autograded,8,8,graded,\r\nbob,x,y,z,1,1,graded,"


def test_grades_csv_has_no_formulas_and_no_forged_rows(tmp_path):
    rows = [
        Row("alice", "01_hooks", "test_a", "autograded", 0.0, 2.0, "failed", '=HYPERLINK("http://x"): boom'),
        Row("alice", "01_hooks", "test_b", "autograded", 0.0, 2.0, "failed", FORGED),
        Row("alice", "01_hooks", "test_c", "autograded", 0.0, 2.0, "failed", "+1+2"),
        Row("alice", "01_hooks", "test_d", "autograded", 0.0, 2.0, "failed", "-2+3"),
        Row("alice", "01_hooks", "test_e", "autograded", 0.0, 2.0, "failed", "@SUM(A1)"),
        Row("alice", "01_hooks", "test_f", "autograded", 0.0, 2.0, "failed", "\t=1"),
        Row("alice", "01_hooks", "test_g", "autograded", 0.0, 2.0, "failed", "\r=1"),
        Row("alice", "01_hooks", "test_h", "manual", None, 3.0, "needs manual grading", "=" * 5000),
        Row("=cmd|' /C calc'!A0", "01_hooks", TOTAL_ITEM, "autograded", 1.5, 6.0, "graded", ""),
    ]
    path = write_csv(rows, tmp_path / "OUT" / "grades.csv")
    with open(path, newline="") as file:
        records = list(csv.reader(file))
    assert records[0] == list(CSV_FIELDS)
    assert len(records) == 1 + len(rows)
    for record in records[1:]:
        assert len(record) == len(CSV_FIELDS)
        assert not any(cell.startswith(FORMULA_STARTS) for cell in record)
        assert not any("\n" in cell or "\r" in cell for cell in record)
        assert len(record[CSV_FIELDS.index("message")]) <= 500
    assert records[1][-1] == '\'=HYPERLINK("http://x"): boom'
    assert records[2][-1].startswith("boom alice,01_hooks")
    assert records[9][:1] == ["'=cmd|' /C calc'!A0"]
    assert [record[4:6] for record in records[8:]] == [["", "3"], ["1.5", "6"]]  # numbers stay numbers


# 6. The grader's helper processes run isolated.

def test_helper_processes_ignore_the_working_folder_and_write_no_bytecode(tmp_path):
    code, workdir = tmp_path / "code", tmp_path / "workdir"
    code.mkdir()
    workdir.mkdir()
    (code / "probe.py").write_text(
        "import json, os, sys, helper\n"
        "print(json.dumps({'argv': sys.argv[1:], 'helper': helper.WHERE, 'isolated': sys.flags.isolated,\n"
        "                  'no_bytecode': sys.flags.dont_write_bytecode, 'no_user_site': sys.flags.no_user_site,\n"
        "                  'env': [os.environ.get('PYTHONDONTWRITEBYTECODE'), os.environ.get('PYTHONNOUSERSITE'),\n"
        "                          os.environ.get('PYTHONSTARTUP')]}))\n")
    (code / "helper.py").write_text("WHERE = 'code'\n")
    (workdir / "helper.py").write_text("WHERE = 'planted in the working folder'\n")
    (workdir / "json.py").write_text("raise SystemExit('planted json ran')\n")
    env = dict(os.environ, PYTHONPATH=str(code), PYTHONSTARTUP=str(workdir / "json.py"))
    result = subprocess.run(isolated_python.command("probe", ["--flag", "x"], env), cwd=workdir,
                            env=isolated_python.environment(env), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"argv": ["--flag", "x"], "helper": "code", "isolated": 1,
                                         "no_bytecode": 1, "no_user_site": 1, "env": ["1", "1", None]}
    assert not list(tmp_path.rglob("__pycache__"))


# 7. Bounded feedback.

def test_feedback_over_the_cap_is_replaced_by_a_note(tmp_path):
    big = tmp_path / "big.html"
    big.write_bytes(b"<html>" + b"x" * (2**20) + b"</html>")
    written = safe_output.copy_feedback(big, tmp_path / "OUT", "alice", "01_hooks", limit=2**20)
    assert written.stat().st_size < 1000 and b"was not copied" in written.read_bytes()
    small = tmp_path / "small.html"
    small.write_text(f"<html><head>{safe_output.CSP_META}</head>ok</html>")
    written = safe_output.copy_feedback(small, tmp_path / "OUT", "alice", "01_hooks", limit=2**20)
    assert written.read_text() == f"<html><head>{safe_output.CSP_META}</head>ok</html>"
    assert safe_output.copy_feedback(tmp_path / "missing.html", tmp_path / "OUT", "alice", "02_gradcam") is None


def test_the_default_feedback_cap_is_five_megabytes():
    assert safe_output.MAX_FEEDBACK_BYTES == 5 * 2**20


def test_feedback_that_is_a_link_in_the_course_is_not_copied(tmp_path):
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY")
    html = tmp_path / "course" / "01_hooks.html"
    html.parent.mkdir()
    html.symlink_to(secret)
    written = safe_output.copy_feedback(html, tmp_path / "OUT", "alice", "01_hooks")
    assert "PRIVATE KEY" not in written.read_text()


def test_nbgrader_limits_the_output_of_every_cell():
    from nbgrader.preprocessors import LimitOutput
    from traitlets.config.loader import PyFileConfigLoader

    from autograder.authoring.build import COURSE_CONFIG

    config = PyFileConfigLoader(COURSE_CONFIG.name, path=str(COURSE_CONFIG.parent)).load_config()
    assert "nbgrader.preprocessors.LimitOutput" in config.Autograde.autograde_preprocessors
    assert (config.LimitOutput.max_lines, config.LimitOutput.max_traceback) == (1000, 100)
    limiter = LimitOutput(config=config)  # the names are LimitOutput's own traits, so they take effect
    assert (limiter.max_lines, limiter.max_traceback) == (1000, 100)
