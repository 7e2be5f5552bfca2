"""Shards: ``grade --course PATH --shard K/N`` on a real PostgreSQL server and on a real SLURM
cluster (``tests/services.py``), against one unsharded run on SQLite; the lock that keeps two runs
on one SQLite course apart. Four students hand in 01_hooks (two solved, two blank), the two
shards of 2 holding one of each (the hash is fixed: ``STUDENTS``). Each course is graded once
(module fixture ``graded``)."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from autograder.authoring import build
from autograder.course.autograde import load_state
from autograder.course.collect import collect
from autograder.course.export import export
from autograder.course.feedback import _api, generate
from autograder.course.folder import Course, CourseError
from autograder.course.init import init_course
from autograder.course.shards import Shard, grading_lock, shard_of
from tests import grading_harness as harness
from tests import services
from tests.conftest import standin_assets_in

ASSIGNMENT = "01_hooks"
#: student -> (what they hand in, their shard of 2)
STUDENTS = {"ada": ("solved", 0), "bob": ("blank", 0), "dee": ("solved", 1), "eve": ("blank", 1)}
SHARDS = 2
#: graded again by the SLURM array: one student of each shard
SLURM_STUDENTS = ("--student", "ada", "--student", "eve")
#: What differs between any two runs of the grader (not a difference between databases): the
#: sandbox's random folder in tracebacks, the execution times in cell metadata, and how the text
#: a cell printed was cut into stream messages.
SANDBOX_FOLDER = re.compile(r"/tmp/xai-sb-[A-Za-z0-9_]+")


def _submissions(folder: Path) -> Path:
    for student, (kind, _) in STUDENTS.items():
        notebook = (build.solved_submission if kind == "solved" else harness.blank_submission)(ASSIGNMENT)
        (folder / student).mkdir(parents=True)
        nbformat.write(notebook, folder / student / f"{ASSIGNMENT}.ipynb")
    return folder


def _course(root: Path, name: str, submissions: Path, db_url: str | None = None) -> Course:
    course = init_course(root / name, course_id="xai-shards", assignments=[ASSIGNMENT], db_url=db_url)
    collect(course, submissions)
    return course


def _grade_command(course: Course, *options: str) -> list[str]:
    return [sys.executable, "-m", "autograder", "grade", "--course", str(course.root), "--quiet", "--standin", *options]


def _graded_by_slurm(cluster, course: Course, root: Path, *options: str) -> str:
    """A job array of the kit's shard script on ``course``, one task per shard: the tasks' output."""
    ended = services.run_array(cluster, [f"--array=0-{SHARDS - 1}", "--cpus-per-task=1",
                                         f"--output={root}/slurm-%a.out", f"--chdir={build.REPO_ROOT}",
                                         f"--export=ALL,PYTHON={sys.executable}",
                                         str(build.REPO_ROOT / "autograder" / "course" / "slurm_shard.sh"),
                                         str(course.root), *options], SHARDS)
    output = "\n".join(path.read_text() for path in sorted(root.glob("slurm-*.out")))
    assert ended == {task: ("COMPLETED", "0:0") for task in range(SHARDS)}, output + services.logs(cluster.home)
    return output


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The SQLite course graded in one run; the PostgreSQL course graded by two shard processes at
    once (its state kept), then two of its students graded again by a SLURM job array of the kit's
    shard script."""
    root = tmp_path_factory.mktemp("shards")
    seconds = {}
    with standin_assets_in(root / "assets"), services.postgres_server() as postgres:
        submissions = _submissions(root / "submissions")
        single = _course(root, "sqlite", submissions)
        started = time.perf_counter()
        unsharded = subprocess.run(_grade_command(single, "--jobs", "2"), cwd=build.REPO_ROOT, capture_output=True,
                                   text=True, timeout=600)
        seconds["sqlite, one run, --jobs 2"] = time.perf_counter() - started
        assert unsharded.returncode == 0, unsharded.stderr[-3000:]
        sharded = _course(root, "postgres", submissions, postgres.createdb("shards"))
        started = time.perf_counter()
        shards = [subprocess.Popen(_grade_command(sharded, "--shard", f"{k}/{SHARDS}", "--jobs", "1"),
                                   cwd=build.REPO_ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                  for k in range(SHARDS)]
        outputs = [shard.communicate(timeout=600) for shard in shards]
        seconds["postgres, 2 shards at once, --jobs 1 each"] = time.perf_counter() - started
        for shard, (stdout, stderr) in zip(shards, outputs):
            assert shard.returncode == 0, stdout[-2000:] + stderr[-3000:]
        by_shards = SimpleNamespace(gradebook=_gradebook_state(sharded), autograded=_autograded(sharded),
                                    state=load_state(sharded))
        with services.slurm_cluster() as cluster:
            started = time.perf_counter()
            slurm_output = _graded_by_slurm(cluster, sharded, root, "--force", *SLURM_STUDENTS)
            seconds["slurm array of 2, one notebook each"] = time.perf_counter() - started
        yield SimpleNamespace(single=single, sharded=sharded, shard_outputs=outputs, by_shards=by_shards,
                              slurm_output=slurm_output, postgres=postgres, root=root, seconds=seconds)


def _gradebook_state(course: Course) -> dict:
    """Every student's cells (auto score, needs manual, comment), timestamps and penalties, read back
    through nbgrader's Gradebook API (on whatever database the course names)."""
    state = {}
    with course.gradebook() as gradebook:
        for student in STUDENTS:
            submission = gradebook.find_submission(ASSIGNMENT, student)
            notebook = gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, student)
            state[student] = {
                "timestamp": submission.timestamp, "late_penalty": notebook.late_submission_penalty,
                "score": notebook.score,
                "grades": {g.name: (g.auto_score, g.manual_score, g.needs_manual_grade) for g in notebook.grades},
                "comments": {c.name: c.auto_comment for c in notebook.comments}}
    return state


def _as_graded(notebook_text: str) -> dict:
    """An autograded notebook less what differs between any two runs (``SANDBOX_FOLDER``)."""
    notebook = json.loads(SANDBOX_FOLDER.sub("/tmp/xai-sb", notebook_text))
    for cell in notebook["cells"]:
        cell.get("metadata", {}).pop("execution", None)
        outputs = []
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                output = dict(output, text="".join(output["text"]))
                if outputs and outputs[-1]["output_type"] == "stream" and outputs[-1]["name"] == output["name"]:
                    outputs[-1]["text"] += output["text"]
                    continue
            outputs.append(output)
        if "outputs" in cell:
            cell["outputs"] = outputs
    return notebook


def _autograded(course: Course) -> dict:
    """``{student: {file: content}}`` of ``autograded/`` (notebooks through :func:`_as_graded`)."""
    return {student: {path.name: _as_graded(path.read_text()) if path.suffix == ".ipynb" else path.read_bytes()
                      for path in sorted(course.path("autograded", student, ASSIGNMENT).iterdir())}
            for student in STUDENTS}


def _feedback_text(course: Course) -> dict:
    """``{page: its text}``: what a student reads on each feedback page, whitespace collapsed."""
    from bs4 import BeautifulSoup

    return {str(path.relative_to(course.root)): " ".join(SANDBOX_FOLDER.sub(
                "/tmp/xai-sb", BeautifulSoup(path.read_text(), "html.parser").get_text()).split())
            for path in sorted((course.root / "feedback").rglob("*.html"))}


def test_a_student_s_shard_is_fixed_and_every_student_is_in_exactly_one():
    # sha256("ada")[:8] big-endian, modulo N: the same in every Python run and on every machine
    assert [shard_of("ada", n) for n in (1, 2, 3, 4, 7)] == [0, 0, 2, 2, 5]
    assert {student: shard_of(student, SHARDS) for student in STUDENTS} == {s: k for s, (_, k) in STUDENTS.items()}
    students = [f"student{i:04d}" for i in range(1000)]
    for count in (1, 3, 10):
        shards = [Shard(k, count) for k in range(count)]
        assert all(sum(shard.holds(student) for shard in shards) == 1 for student in students)
        assert min(sum(map(shards[k].holds, students)) for k in range(count)) > 1000 / count * 0.8
    assert Shard.parse("3/10") == Shard(3, 10)
    for wrong in ("10/10", "-1/3", "1/0", "a/b", "3", ""):
        with pytest.raises(CourseError, match="K/N with 0 <= K < N"):
            Shard.parse(wrong)


def test_two_shards_at_once_into_postgres_grade_as_one_run_on_sqlite(graded):
    assert graded.single.db_url.startswith("sqlite:") and graded.sharded.db_url.startswith("postgresql")
    assert not (graded.sharded.root / "gradebook.db").exists()
    for stdout, _ in graded.shard_outputs:
        assert "graded 2 notebook(s)" in stdout, stdout  # each shard graded its own two students only
    single = _gradebook_state(graded.single)
    assert graded.by_shards.gradebook == single
    assert single["ada"]["score"] == 8 and single["bob"]["score"] == 0  # the comparison is not vacuous
    assert graded.by_shards.autograded == _autograded(graded.single)
    # graded.json holds all four, written by the two shards side by side
    assert sorted(graded.by_shards.state) == sorted(STUDENTS)
    print(f"\nwall-clock seconds: {json.dumps({k: round(v, 1) for k, v in graded.seconds.items()})}")


def test_feedback_formgrader_api_and_export_on_the_postgres_course(graded):
    pages = {}
    for course in (graded.single, graded.sharded):
        report = generate(course, [ASSIGNMENT])
        assert len(report["written"]) == len(STUDENTS)
        pages[course.root.name] = _feedback_text(course)
    assert pages["postgres"] == pages["sqlite"] and len(pages["sqlite"]) == len(STUDENTS)
    listed = {}
    for course in (graded.single, graded.sharded):  # what formgrader's pages ask for, through its API
        api = _api(course)
        listed[course.root.name] = sorted(
            (row["student"], row["score"], row["max_score"], row["needs_manual_grade"], row["autograded"])
            for row in api.get_submissions(ASSIGNMENT))
    assert listed["postgres"] == listed["sqlite"] and len(listed["sqlite"]) == len(STUDENTS)
    exported = {}
    for course in (graded.single, graded.sharded):
        path, _ = export(course, "long")
        exported[course.root.name] = path.read_text()
    assert exported["postgres"] == exported["sqlite"]
    assert {row["student"] for row in csv.DictReader(exported["sqlite"].splitlines())} == set(STUDENTS)


def test_a_slurm_job_array_of_the_shard_script_grades_as_the_unsharded_run(graded):
    assert graded.slurm_output.count("graded 1 notebook(s)") == SHARDS, graded.slurm_output
    state = load_state(graded.sharded)
    regraded = {s for s in STUDENTS if state[s][ASSIGNMENT]["graded_at"] != graded.by_shards.state[s][ASSIGNMENT]["graded_at"]}
    assert regraded == {"ada", "eve"}
    assert _gradebook_state(graded.sharded) == _gradebook_state(graded.single)
    assert _autograded(graded.sharded) == _autograded(graded.single)


def _bare_course(folder: Path) -> Course:
    """The least a course folder holds (its configuration and course.json), nothing handed in."""
    folder.mkdir()
    (folder / "nbgrader_config.py").write_text("c = get_config()  # noqa: F821\n")
    (folder / "course.json").write_text(json.dumps({"course_id": "bare", "assignments": [ASSIGNMENT]}))
    return Course.open(folder)


def test_a_second_run_on_a_sqlite_course_waits_for_the_first(tmp_path):
    """While one run holds a SQLite course, a second says who holds it and waits; then it runs."""
    course = _bare_course(tmp_path / "course")
    second_run = [sys.executable, "-c", "import sys; from autograder.course.autograde import grade_course; "
                  "from autograder.course.folder import Course; "
                  "run = grade_course(Course.open(sys.argv[1]), progress=False); print('done', run.skipped)",
                  str(course.root)]
    errors = tmp_path / "second.stderr"
    with grading_lock(course), open(errors, "w") as stderr:
        second = subprocess.Popen(second_run, cwd=build.REPO_ROOT, text=True, stdout=subprocess.PIPE, stderr=stderr)
        try:
            deadline = time.monotonic() + 60
            while "waiting for it to finish" not in errors.read_text() and time.monotonic() < deadline:
                assert second.poll() is None, errors.read_text()
                time.sleep(0.5)
            time.sleep(1)
            assert second.poll() is None, errors.read_text()  # still waiting, not grading
        except BaseException:
            second.kill()
            second.wait()
            raise
    stdout, _ = second.communicate(timeout=60)
    message = errors.read_text()
    assert second.returncode == 0, message
    assert f"another `grade --course` run holds {course.state_folder / 'grade.lock'}" in message
    assert "a SQLite gradebook takes one writer" in message and '"pid": ' in message
    assert stdout.strip() == "done 0"


def test_shards_writing_graded_json_at_once_keep_each_other_s_entries(tmp_path):
    """Two processes record 150 notebooks each in one course's graded.json at the same time."""
    course = _bare_course(tmp_path / "course")
    writer = ("import sys; from autograder.course.autograde import record_state; "
              "from autograder.course.folder import Course; course = Course.open(sys.argv[1]); "
              "[record_state(course, f'{sys.argv[2]}{i}', 'A', {'sha256': str(i)}) for i in range(150)]")
    writers = [subprocess.Popen([sys.executable, "-c", writer, str(course.root), prefix], cwd=build.REPO_ROOT)
               for prefix in ("left", "right")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    assert sorted(load_state(course)) == sorted(f"{prefix}{i}" for prefix in ("left", "right") for i in range(150))


def test_the_environment_names_the_gradebook(graded, monkeypatch):
    url = graded.postgres.url("elsewhere")
    monkeypatch.setenv("XAI_KIT_DB_URL", url)
    assert Course.open(graded.single.root).db_url == url
    monkeypatch.delenv("XAI_KIT_DB_URL")
    assert Course.open(graded.single.root).db_url == f"sqlite:///{graded.single.root / 'gradebook.db'}"


def test_course_init_refuses_a_database_it_cannot_use_and_writes_nothing(graded, tmp_path):
    for db_url, why in ((graded.sharded.db_url, "already holds a gradebook"),
                        (graded.postgres.url("never_created"), 'cannot open the database .*"never_created"'),
                        ("postgresql://grader:secret@/x?host=/nowhere", r"grader:\*\*\*@"),
                        ("not a url", "no database URL")):
        with pytest.raises(CourseError, match=why) as refused:
            init_course(tmp_path / "again", assignments=[ASSIGNMENT], db_url=db_url)
        assert "secret" not in str(refused.value)
        assert not (tmp_path / "again").exists()
