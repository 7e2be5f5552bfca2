"""Assignment 5 through the real nbgrader pipeline: reference, blank, two known mistakes in one
notebook (their cells are disjoint), and the correct alternatives."""

import pytest

from tests import grading_harness as harness
from tests.alternatives import a05_imagenet as alternatives
from tests.mutants import a05_imagenet as mutants

ASSIGNMENT = "05_imagenet"
#: One notebook, two mistakes whose cells do not overlap: the last module before the classifier as the
#: "last convolution" (its cell only), and Shapley contributions credited to the previously added region
#: (the additive and the sampling cells; the values still add up, so the efficiency cell passes).
COMBINED_MUTANTS = (mutants.last_conv_layer__last_before_classifier, mutants.region_shapley__credits_previous_region)
COMBINED_LOSES = {"test_last_conv_layer", "test_region_shapley_additive", "test_region_shapley_pairs"}
REGION_CELLS = ("test_region_shapley_additive", "test_region_shapley_efficiency", "test_region_shapley_pairs")
IN_PLACE = "changed its argument `x` in place"
ADDITIVE = "region_shapley on the additive model (baseline 0.0, n_permutations=3)"
#: Issue 26: two bare numbers and a buffer that passed its own cell, now named (region_shapley calls
#: the student's coalition_scores, so a mistake there fails the region_shapley cells too).
VISIBLE_MESSAGES = {
    "mistake_blanks_in_place": (
        (mutants.coalition_scores__blanks_in_place,),
        {"test_coalition_scores": f"coalition_scores(...) {IN_PLACE}",
         **{cell: f"region_shapley(...) {IN_PLACE}" for cell in REGION_CELLS}}),
    "mistake_long_buffer": (
        (mutants.coalition_scores__long_buffer,),
        {"test_coalition_scores": "coalition_scores on the 2x2 sum model (order 2, 0, 3, 1; batch_size=32): yours "
                                  "is an integer tensor (torch.int64) where floats are needed",
         "test_region_shapley_additive": f"{ADDITIVE}: yours has only whole numbers",
         **dict.fromkeys(REGION_CELLS[1:])}),
    "mistake_credits_by_position": (
        (mutants.region_shapley__credits_by_position,),
        {"test_region_shapley_additive": f"{ADDITIVE}: yours has the right total per image, spread over the wrong "
                                         "regions: credit v(S + {i}) - v(S) to the region just added",
         "test_region_shapley_pairs": None}),
}


def cohort() -> dict:
    """The notebooks this module grades (with the other assignments' cohorts, tests/conftest.py)."""
    students = {
        "reference": harness.mutated_submission(ASSIGNMENT),
        "blank": harness.blank_submission(ASSIGNMENT),
        "wrong_layer_and_credit": harness.mutated_submission(ASSIGNMENT, *COMBINED_MUTANTS),
    }
    students.update(harness.alternative_submissions(ASSIGNMENT, alternatives.ALTERNATIVES))
    students["captum"] = harness.mutated_submission(ASSIGNMENT, mutants.region_shapley__captum)
    for name, (functions, _) in VISIBLE_MESSAGES.items():
        students[name] = harness.mutated_submission(ASSIGNMENT, *functions)
    return students


@pytest.fixture(scope="module")
def graded(graded_class):
    return graded_class[ASSIGNMENT]


def test_reference_gets_full_autograded_marks(graded):
    harness.assert_reference_full_marks(graded, ASSIGNMENT, 11, 4)


def test_blank_release_scores_zero(graded):
    harness.assert_blank_scores_zero(graded, ASSIGNMENT, 11)


def test_known_wrong_implementations_lose_exactly_their_points(graded):
    harness.assert_loses_exactly(graded, "wrong_layer_and_credit", ASSIGNMENT, COMBINED_LOSES)


def test_correct_alternatives_get_full_autograded_marks(graded):
    harness.assert_alternatives_get_full_marks(graded, ASSIGNMENT, alternatives.ALTERNATIVES)


def test_calling_captum_instead_of_implementing_fails_the_hidden_checks(graded):
    """captum's ShapleyValueSampling cannot be imported where the graded functions run
    (autograder/engine/check_kernel.py): every region_shapley cell fails, saying so."""
    cells = {"test_region_shapley_additive", "test_region_shapley_efficiency", "test_region_shapley_pairs"}
    harness.assert_loses_exactly(graded, "captum", ASSIGNMENT, cells)
    for cell in cells:
        message = graded["captum"][cell].message
        assert "ImportError: captum is not available where your functions are graded" in message, (cell, message)


@pytest.mark.parametrize("name", sorted(VISIBLE_MESSAGES))
def test_mistakes_lose_their_cells_with_a_message_naming_them(graded, name):
    _, messages = VISIBLE_MESSAGES[name]
    harness.assert_loses_exactly_with_messages(graded, name, ASSIGNMENT, messages)
