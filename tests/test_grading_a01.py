"""Assignment 1 through the real nbgrader pipeline: reference, blank, known-wrong, tampered, corrupt."""

import pytest

from autograder.engine.grade import TOTAL_ITEM
from tests import grading_harness as harness
from tests.alternatives import a01_hooks as alternatives
from tests.mutants import a01_hooks as mutants

ASSIGNMENT = "01_hooks"
CLEANUP, VALUES, TOP = "test_record_activations_cleanup", "test_record_activations_values", "test_top_channels"
LATE_BOUND = "is one of the names asked for, but the dict has no entry for it. A hook defined in a loop"
MUTANTS = {
    "keeps_hooks": (mutants.record_activations__keeps_hooks, {CLEANUP}),
    "no_finally": (mutants.record_activations__no_finally, {CLEANUP}),
    "not_detached": (mutants.record_activations__not_detached, {VALUES}),
    "aliased": (mutants.record_activations__aliased, {VALUES}),
    "top_max": (mutants.top_channels__max_not_mean, {TOP}),
}
#: Mistakes made on the way, two to a notebook (each pair's second mistake is in another
#: function): the cells each notebook loses, and the start of the visible message each of those
#: cells shows (the row's message: the first error in the cell). ``None``: the cell fails
#: through its hidden check (record_activations' values: the hidden check tries nested names).
VISIBLE_MESSAGES = {
    "mistakes_eval_mode_topk_dim0": (
        (mutants.record_activations__sets_eval_mode, mutants.top_channels__topk_over_images),
        {CLEANUP: "record_activations on a model in train mode left the model in eval mode (it was in train mode)",
         TOP: "top_channels(...) raised RuntimeError: `topk` was asked for more values than the dimension"}),
    "mistakes_getattr_squeeze": (
        (mutants.record_activations__getattr_layer_names, mutants.top_channels__squeezes_the_batch),
        {CLEANUP: "record_activations(...) raised AttributeError: 'layer4.1.conv2' is a path of module names, "
                  "not one attribute: look layers up with `model.get_submodule(name)`",
         VALUES: None,
         TOP: "top_channels on a batch of one image raised IndexError: a tensor has fewer dimensions than your "
              "code indexes. Often `.squeeze()` without an argument"}),
    # Issue 26: a hook defined in a loop that late-binds the layer name (KeyError for every name but the
    # last one, visible and hidden), and a function that prints its result instead of returning it.
    "mistakes_late_binding_prints": (
        (mutants.record_activations__late_bound_name, mutants.top_channels__prints_instead_of_returning),
        {VALUES: f"record_activations(...) raised KeyError: 'layer1' {LATE_BOUND}",
         CLEANUP: f"record_activations(...) raised KeyError: 'layer2' {LATE_BOUND}",
         TOP: "top_channels(...) returned None: it must `return` its result"}),
}
def cohort() -> dict:
    """The notebooks this module grades: ``{student: notebook}`` (graded with the other
    assignments' cohorts in one run, tests/conftest.py ``graded_class``)."""
    blank = harness.blank_submission(ASSIGNMENT)
    students = {
        "reference": harness.mutated_submission(ASSIGNMENT),
        "blank": blank,
        # A student who replaces a locked test cell by `pass` (and deletes another) still scores 0.
        "tamperer": harness.edit_cell(blank, VALUES, "pass"),
        "corrupt": b'{"cells": [ this is not json',
    }
    deleted = harness.blank_submission(ASSIGNMENT)
    deleted.cells = [c for c in deleted.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") != TOP]
    students["deleter"] = deleted
    for name, (mutant, _) in MUTANTS.items():
        students[name] = harness.mutated_submission(ASSIGNMENT, mutant)
    for name, (functions, _) in VISIBLE_MESSAGES.items():
        students[name] = harness.mutated_submission(ASSIGNMENT, *functions)
    students["debug_hook_left"] = harness.with_code(harness.mutated_submission(ASSIGNMENT), "record_activations",
                                                    mutants.DEBUG_HOOK_LEFT, prepend=False)
    students.update(harness.alternative_submissions(ASSIGNMENT, alternatives.ALTERNATIVES))
    return students


@pytest.fixture(scope="module")
def graded(graded_class):
    return graded_class[ASSIGNMENT]


def test_reference_gets_full_autograded_marks(graded):
    harness.assert_reference_full_marks(graded, ASSIGNMENT, 8, 3)


def test_blank_release_scores_zero(graded):
    harness.assert_blank_scores_zero(graded, ASSIGNMENT, 8)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_known_wrong_implementation_loses_exactly_its_points(graded, name):
    harness.assert_loses_exactly(graded, name, ASSIGNMENT, MUTANTS[name][1])


def test_edited_locked_test_cell_is_restored(graded):
    rows = graded["tamperer"]
    assert rows[VALUES].status == "failed" and rows[TOTAL_ITEM].score == 0
    assert f"edited locked cell {VALUES} restored" in rows[TOTAL_ITEM].message


def test_deleted_test_cell_is_restored_and_run(graded):
    rows = graded["deleter"]
    assert rows[TOP].status == "failed" and rows[TOTAL_ITEM].score == 0
    assert f"deleted cell {TOP} restored" in rows[TOTAL_ITEM].message


def test_corrupt_notebook_gets_a_clear_row_and_others_are_graded(graded):
    total = graded["corrupt"][TOTAL_ITEM]
    assert total.status == "not graded" and total.score == 0
    assert "not a readable notebook" in total.message
    assert graded["reference"][TOTAL_ITEM].score == 8


def test_correct_alternatives_get_full_autograded_marks(graded):
    """Independent correct implementations (tests/alternatives/) lose nothing, visible checks included."""
    harness.assert_alternatives_get_full_marks(graded, ASSIGNMENT, alternatives.ALTERNATIVES)


@pytest.mark.parametrize("name", sorted(VISIBLE_MESSAGES))
def test_mistakes_on_the_way_lose_their_cells_with_a_message_naming_them(graded, name):
    _, messages = VISIBLE_MESSAGES[name]
    harness.assert_loses_exactly_with_messages(graded, name, ASSIGNMENT, messages)


def test_a_hook_left_on_the_model_costs_no_point(graded):
    """Issue 26: a debug hook left on model.layer4 by a cell that ran twice. Every check that takes
    the model names it in a note (tests/test_visible_checks.py) and calls the correct functions
    without it."""
    harness.assert_loses_exactly(graded, "debug_hook_left", ASSIGNMENT, set())
