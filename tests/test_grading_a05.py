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


def test_calling_captum_instead_of_implementing_fails_the_hidden_checks():
    """captum's ShapleyValueSampling is refused by name; honest code passes."""
    from autograder.engine import check_server
    from solutions import shapley
    from student_src import grading_client as hidden
    from tests.grading_harness import notebook_namespace

    check_server.ensure_running()

    def region_shapley(model, x, target, regions, n_permutations=16, baseline=0.0, seed=0, batch_size=32):
        from captum.attr import ShapleyValueSampling

        attributions = ShapleyValueSampling(model).attribute(x, baselines=baseline, target=target,
                                                             feature_mask=regions[None, None],
                                                             n_samples=n_permutations)
        return attributions

    with pytest.raises(hidden.HiddenCheckFailed, match="ShapleyValueSampling|captum"):
        hidden.run("a05_imagenet", "check_region_shapley_additive", region_shapley)
    honest = notebook_namespace(shapley)["region_shapley"]
    hidden.run("a05_imagenet", "check_region_shapley_additive", honest)
