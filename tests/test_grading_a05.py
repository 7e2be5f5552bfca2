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


def cohort() -> dict:
    """The notebooks this module grades (with the other assignments' cohorts, tests/conftest.py)."""
    students = {
        "reference": harness.mutated_submission(ASSIGNMENT),
        "blank": harness.blank_submission(ASSIGNMENT),
        "wrong_layer_and_credit": harness.mutated_submission(ASSIGNMENT, *COMBINED_MUTANTS),
    }
    students.update(harness.alternative_submissions(ASSIGNMENT, alternatives.ALTERNATIVES))
    students["captum"] = harness.mutated_submission(ASSIGNMENT, mutants.region_shapley__captum)
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
