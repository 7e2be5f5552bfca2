"""``make demo``: build the release, publish the student repository, and walk a term offline on two
demo students (``autograder.course.demo_term``: a fake Canvas download, collect, grade into a
course folder, one manual grade, feedback, export; how to open formgrader on it).

Without the downloaded model and data the demo uses the untrained stand-in
(``python -m student_src.fetch --standin``) and says so loudly: its grades are real (grading compares the student's functions with the reference on the same model), its
figures are not.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from autograder.authoring import build, publish
from autograder.course.demo_term import run_term
from student_src import assets, data, fetch, imagenet, models


def real_assets_present() -> bool:
    return models.checkpoint_path(standin=False).is_file() and \
        (assets.asset_root(standin=False) / data.BATCH_FOLDER / "test_batch").is_file() and \
        all(path.is_file() for path, _ in imagenet.real_assets())


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
    published = publish.publish(out / "student-repository")
    print(f"Student repository published ({len(published)} files): {out / 'student-repository'}\n"
          "(what students get; push it to the public student repository)")
    run_term(out / "term", jobs=jobs)
    return 0
