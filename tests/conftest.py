"""Shared fixtures: everything offline, made by the tests in the real formats."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from student_src import data, models


def pytest_configure(config):
    """Side by side (``pytest -n 2``, as ``make test`` runs): one torch thread per test process.
    Two processes with two OpenMP threads each on two cores spin-wait for each other (measured:
    2.7x the CPU time of a serial run); grading kernels are pinned to one thread anyway."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def cifar_resnet():
    """A random-init CIFAR ResNet-18 (seeded), eval mode, CPU: same architecture as the hub model."""
    torch.manual_seed(0)
    return models.build_cifar_resnet18().eval()


@pytest.fixture(scope="session")
def cifar_batch():
    """Eight normalised synthetic 32x32 images (8, 3, 32, 32) and their labels (8,)."""
    images, labels = data.synthetic_images(8, seed=1)
    return data.normalize(images), torch.as_tensor(labels)


@pytest.fixture()
def standin_assets(tmp_path, monkeypatch):
    """A data directory holding the stand-in checkpoint and synthetic CIFAR files, in stand-in mode."""
    from student_src import fetch

    monkeypatch.setenv("XAI_KIT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("XAI_KIT_STANDIN", "1")
    fetch.make_standin(tmp_path / "standin", n_images=64)
    return tmp_path


@contextmanager
def standin_assets_in(root: Path, n_images: int = 200):
    """Stand-in checkpoint and CIFAR files under ``root``, with the environment pointing at them
    for the duration of the block (the nbgrader round trips read it when they start)."""
    from student_src import fetch

    with pytest.MonkeyPatch.context() as patcher:
        patcher.setenv("XAI_KIT_DATA_DIR", str(root))
        patcher.setenv("XAI_KIT_STANDIN", "1")
        fetch.make_standin(root / "standin", n_images=n_images)
        yield root


@pytest.fixture(scope="module")
def standin_assets_module(tmp_path_factory):
    """Module-wide stand-in assets (for the slow nbgrader round trips): env set for the module."""
    with standin_assets_in(tmp_path_factory.mktemp("assets")) as root:
        yield root


#: The test modules that grade a cohort per assignment through nbgrader, all in one run.
GRADING_MODULES = ("tests.test_grading_a01", "tests.test_grading_a02", "tests.test_grading_a03",
                   "tests.test_grading_a04", "tests.test_grading_a05")


@pytest.fixture(scope="session")
def graded_class(request, tmp_path_factory):
    """``{assignment: {student: {item: Row}}}``: every cohort of the grading modules in this run
    (each module's ``cohort()``), graded once in ONE nbgrader run with two workers."""
    import importlib

    from tests import grading_harness

    selected = {item.module.__name__ for item in request.session.items}
    modules = [importlib.import_module(name) for name in GRADING_MODULES if name in selected]
    root = tmp_path_factory.mktemp("class")
    with standin_assets_in(root / "assets"):
        return grading_harness.grade_class(root, {module.ASSIGNMENT: module.cohort() for module in modules})


#: Test files whose fixtures grade or execute notebooks, longest first: started first when the
#: suite runs side by side (`pytest -n 2`, as `make test` does), so that no long one starts last.
LONG_RUNNING_FIRST = ("class", "test_course.py", "test_course_shards.py", "test_tamper.py", "test_validate.py",
                      "test_nbgrader_worker.py", "test_publish.py",
                      "test_figures.py", "test_gradescope.py", "test_prewarmed_kernel.py")


def _group_of(item) -> str:
    return "class" if item.module.__name__ in GRADING_MODULES else item.path.name


def pytest_itemcollected(item):
    """One xdist group per test file (its module fixtures run once, in one worker), and one group
    for the grading modules, which share ``graded_class``. (Added as each item is collected,
    so pytest-xdist's own collection hook sees the groups.)"""
    item.add_marker(pytest.mark.xdist_group(_group_of(item)))


def pytest_collection_modifyitems(config, items):
    """Long-running groups first (stable sort: file order otherwise)."""
    rank = {name: position for position, name in enumerate(LONG_RUNNING_FIRST)}
    items.sort(key=lambda item: rank.get(_group_of(item), len(rank)))
