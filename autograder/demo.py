"""``make demo``: build the release, publish the student repository and grade two demo students offline.

The demo students are ``reference`` (the solution notebooks handed in as they are) and ``blank``
(the untouched student release). Without the downloaded model and data the demo uses the
untrained stand-in (``python -m student_src.fetch --standin``) and says so loudly: its grades are
real (grading compares the student's functions with the reference on the same model), its
figures are not.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat

from autograder import build, publish
from autograder.grade import grade, summary_table
from student_src import assets, data, fetch, imagenet, models


def real_assets_present() -> bool:
    return models.checkpoint_path(standin=False).is_file() and \
        (assets.asset_root(standin=False) / data.BATCH_FOLDER / "test_batch").is_file() and \
        all(path.is_file() for path, _ in imagenet.real_assets())


def make_demo_submissions(folder: Path) -> Path:
    """``folder/reference/NN.ipynb`` (release with the solutions filled in) and ``folder/blank/`` (release)."""
    for student in ("reference", "blank"):
        (folder / student).mkdir(parents=True, exist_ok=True)
    for assignment in build.assignment_ids():
        nbformat.write(build.solved_submission(assignment), folder / "reference" / f"{assignment}.ipynb")
        shutil.copyfile(build.RELEASE_DIR / f"{assignment}.ipynb", folder / "blank" / f"{assignment}.ipynb")
    return folder


def run_demo(out: Path, jobs: int = 1) -> int:
    build.release()
    print(f"Release built: {', '.join(build.assignment_ids())} -> notebooks/")
    if real_assets_present() and not assets.standin_requested():
        print("Using the downloaded hub model and CIFAR-10.")
    else:
        os.environ[assets.STANDIN_ENV] = "1"
        fetch.ensure_standin()
        print("=" * 78)
        print("STAND-IN MODE: the hub model and CIFAR-10 are not downloaded, so the notebooks run on an")
        print("UNTRAINED random-init ResNet-18 and synthetic images. Grades below are meaningful (student")
        print(f"and reference are compared on the same model); accuracies and figures are not. Run\n"
              f"    {assets.FETCH_COMMAND}\nwith network access for the real thing.")
        print("=" * 78)
    if out.exists():
        shutil.rmtree(out)
    submissions = make_demo_submissions(out / "submissions")
    published = publish.publish(out / "student-repository")
    print(f"Student repository published ({len(published)} files): {out / 'student-repository'}")
    rows = grade(submissions, out, jobs=jobs)
    print(summary_table(rows))
    print(f"\ngrades: {out / 'grades.csv'}\nfeedback: {out / 'feedback'}/<student>/<assignment>.html\n"
          f"student repository (what students get; push it to the public repository): {out / 'student-repository'}")
    return 0
