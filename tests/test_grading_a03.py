"""Assignment 3 through the real nbgrader pipeline: reference, blank, and the issue's wrong guided rules."""

import pytest

from tests import grading_harness as harness
from tests.alternatives import a03_guided as alternatives
from tests.mutants import a03_guided as mutants

ASSIGNMENT = "03_guided"
RULE, VALUES = "test_guided_relu_rule", "test_guided_backprop_values"
RESTORES = "test_guided_backprop_restores_model"
#: The issue's three wrong guided rules; each must lose exactly these cells' points.
MUTANTS = {
    # gradient gated only by the forward input (the plain ReLU derivative)
    "plain_backprop": (mutants.GuidedReLUFunction__plain_backprop, {RULE, VALUES}),
    # gradient gated only by the incoming gradient (Zeiler & Fergus' deconvnet)
    "deconvnet": (mutants.GuidedReLUFunction__deconvnet, {RULE, VALUES}),
    # right rule, but the guided ReLUs are never taken out of the model again
    "relus_left_replaced": (mutants.guided_backprop__relus_left_replaced, {RESTORES}),
}
#: Mistakes made on the way, two in one notebook: the cells it loses, and the start of the
#: visible message each of them shows (the row's message: the first error in the cell).
VISIBLE_MESSAGES = {
    "mistakes_train_mode_interpolate": (
        (mutants.vanilla_saliency__sets_train_mode, mutants.guided_grad_cam__interpolates_without_channel),
        {"test_vanilla_saliency": f"vanilla_saliency(...) {harness.TRAIN_MODE}",
         "test_guided_grad_cam": f"guided_grad_cam(...) raised ValueError: {harness.INTERPOLATE}",
         "test_guided_grad_cam_upsamples": f"guided_grad_cam(...) raised ValueError: {harness.INTERPOLATE}"}),
    # Issue 26: only the top-level ReLUs guided (a bare number before), and a guided_grad_cam that does
    # not pass its targets on to cam_fn (silent before: only the hidden check failed). The
    # upsampling cell's cam_fn ignores targets: there only the hidden check sees it.
    "mistakes_top_level_relus_targets": (
        (mutants.guided_backprop__top_level_relus_only, mutants.guided_grad_cam__targets_not_passed),
        {VALUES: "guided_backprop vs captum's GuidedBackprop: yours matches a known mistake: only the model's "
                 "top-level ReLUs are guided",
         "test_guided_grad_cam": "guided_grad_cam called cam_fn with targets=None, not the targets it was given",
         "test_guided_grad_cam_upsamples": None}),
}
AUTOGRADED_POINTS = 15
MANUAL_CELLS = {"q_why_sharper", "q_class_sensitivity", "q_faithfulness", "q_right_wrong"}


def cohort() -> dict:
    """The notebooks this module grades: ``{student: notebook}`` (graded with the other
    assignments' cohorts in one run, tests/conftest.py ``graded_class``)."""
    students = {
        "reference": harness.mutated_submission(ASSIGNMENT),
        "blank": harness.blank_submission(ASSIGNMENT),
    }
    for name, (mutant, _) in MUTANTS.items():
        students[name] = harness.mutated_submission(ASSIGNMENT, mutant)
    for name, (functions, _) in VISIBLE_MESSAGES.items():
        students[name] = harness.mutated_submission(ASSIGNMENT, *functions)
    students.update(harness.alternative_submissions(ASSIGNMENT, alternatives.ALTERNATIVES))
    return students


@pytest.fixture(scope="module")
def graded(graded_class):
    return graded_class[ASSIGNMENT]


def test_points_are_as_designed():
    points = harness.points_of(ASSIGNMENT)
    assert sum(points.values()) == AUTOGRADED_POINTS
    assert points[RULE] == 2 and points[VALUES] == 3 and points[RESTORES] == 2


def test_reference_gets_full_autograded_marks(graded):
    harness.assert_reference_full_marks(graded, ASSIGNMENT, AUTOGRADED_POINTS, MANUAL_CELLS)


def test_blank_release_scores_zero(graded):
    harness.assert_blank_scores_zero(graded, ASSIGNMENT, AUTOGRADED_POINTS)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_wrong_guided_rule_loses_exactly_its_points(graded, name):
    harness.assert_loses_exactly(graded, name, ASSIGNMENT, MUTANTS[name][1])


def test_correct_alternatives_get_full_autograded_marks(graded):
    """Independent correct implementations (tests/alternatives/) lose nothing, visible checks included."""
    harness.assert_alternatives_get_full_marks(graded, ASSIGNMENT, alternatives.ALTERNATIVES)


@pytest.mark.parametrize("name", sorted(VISIBLE_MESSAGES))
def test_mistakes_on_the_way_lose_their_cells_with_a_message_naming_them(graded, name):
    _, messages = VISIBLE_MESSAGES[name]
    harness.assert_loses_exactly_with_messages(graded, name, ASSIGNMENT, messages)
