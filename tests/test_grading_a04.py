"""Assignment 4 through the real nbgrader pipeline: reference, blank, the issue's known-wrong implementations,
and a student whose pasted Assignment 2 helpers are wrong (not punished a second time)."""

import copy

import pytest

from tests import grading_harness as harness
from tests.alternatives import a04_beyond as alternatives
from tests.mutants import a04_beyond as mutants

ASSIGNMENT = "04_beyond"
TOOLS_CELL = "tools_from_assignments_2_and_3"  # the ungraded cell where students paste their A2/A3 helpers
LAYER_CAM, LAYER_CAM_RELU = "test_layer_cam_matches_library", "test_layer_cam_gradient_relu"
DELETION_RESNET, INSERTION = "test_deletion_curve_resnet", "test_insertion_curve"
LEAVES_MODEL = "test_cascading_randomization_leaves_model"
MUTANTS = {
    # Layer-CAM weighted by the raw gradient G instead of ReLU(G): the library comparison and the hand case.
    "no_gradient_relu": (mutants.layer_cam__no_gradient_relu, {LAYER_CAM, LAYER_CAM_RELU}),
    # Records the probability of the class predicted for each perturbed image, not the given target:
    # the hand-computed deletion cases pass (there the target is the predicted class), the explained-class
    # and ResNet cell fails, and insertion_curve (built on deletion_curve, as the hint says) fails with it.
    "argmax_class": (mutants.deletion_curve__argmax_class, {DELETION_RESNET, INSERTION}),
    # Randomises the caller's model (the correlations are right): only the leaves-the-model cell fails.
    "in_place": (mutants.cascading_randomization__in_place, {LEAVES_MODEL}),
}
# A typical Assignment 2 mistake, pasted into the tools cell: nearest-neighbour instead of bilinear upsampling.
WRONG_SCALE_CAMS = '''

def scale_cams(cams, size):
    cams = F.relu(cams)
    cams = cams - cams.amin(dim=(1, 2), keepdim=True)
    cams = cams / (cams.amax(dim=(1, 2), keepdim=True) + 1e-7)
    return F.interpolate(cams[:, None], size=size, mode="nearest")[:, 0]
'''


def with_pasted_helpers(notebook, code: str):
    """A copy of ``notebook`` whose (ungraded) tools cell ends with ``code``."""
    notebook = copy.deepcopy(notebook)
    (cell,) = [cell for cell in notebook.cells if cell.get("id") == TOOLS_CELL]
    cell.source += code
    return notebook


#: A mistake made on the way: the cells it loses, and the start of the visible message of each.
VISIBLE_MESSAGES = {
    "mistake_train_mode": (
        (mutants.layer_cam__sets_train_mode,),
        {"test_layer_cam_matches_library": f"layer_cam(...) {harness.TRAIN_MODE}",
         "test_layer_cam_gradient_relu": f"layer_cam(...) {harness.TRAIN_MODE}"}),
}


def cohort() -> dict:
    """The notebooks this module grades: ``{student: notebook}`` (graded with the other
    assignments' cohorts in one run, tests/conftest.py ``graded_class``)."""
    students = {
        "reference": harness.mutated_submission(ASSIGNMENT),
        "blank": harness.blank_submission(ASSIGNMENT),
        "wrong_a2_helpers": with_pasted_helpers(harness.mutated_submission(ASSIGNMENT), WRONG_SCALE_CAMS),
    }
    for name, (mutant, _) in MUTANTS.items():
        students[name] = harness.mutated_submission(ASSIGNMENT, mutant)
    for name, (functions, _) in VISIBLE_MESSAGES.items():
        students[name] = harness.mutated_submission(ASSIGNMENT, *functions)
    students.update(harness.alternative_submissions(ASSIGNMENT, alternatives.ALTERNATIVES))
    students["library_calls"] = harness.mutated_submission(ASSIGNMENT, *LIBRARY_CALLS)
    return students


#: pytorch-grad-cam's LayerCAM and scipy's spearmanr in place of the student's own code.
LIBRARY_CALLS = (mutants.layer_cam__pytorch_grad_cam, mutants.spearman_rank_correlation__scipy)
#: The cells each loses, and the library its message names (None: a visible check fails first:
#: scipy gives NaN for a constant map). cascading_randomization is the reference's, but it ranks
#: with the student's spearman_rank_correlation, as the notebook asks.
LIBRARY_CALL_LOSSES = {LAYER_CAM: "pytorch_grad_cam", LAYER_CAM_RELU: "pytorch_grad_cam",
                       "test_spearman_rank_correlation": "scipy", "test_spearman_ties": None,
                       "test_cascading_randomization": None, "test_cascading_randomization_leaves_model": "scipy"}


@pytest.fixture(scope="module")
def graded(graded_class):
    return graded_class[ASSIGNMENT]


def test_reference_gets_full_autograded_marks(graded):
    harness.assert_reference_full_marks(graded, ASSIGNMENT, 23, 5)


def test_blank_release_scores_zero(graded):
    harness.assert_blank_scores_zero(graded, ASSIGNMENT, 23)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_known_wrong_implementation_loses_exactly_its_points(graded, name):
    harness.assert_loses_exactly(graded, name, ASSIGNMENT, MUTANTS[name][1])


def test_wrong_assignment_2_helpers_are_not_punished_again(graded):
    """Layer-CAM's tests run the student's layer_cam with known-good helpers (visible: the library's;
    hidden: the reference), so a wrong pasted scale_cams costs nothing here."""
    harness.assert_loses_exactly(graded, "wrong_a2_helpers", ASSIGNMENT, set())


def test_the_pasted_helper_is_really_wrong():
    """Without the substitution the student above would fail Layer-CAM's cells: the helper is far off."""
    import torch
    import torch.nn.functional as F

    from student_src import checks, library_cams

    namespace = {"F": F}
    exec(WRONG_SCALE_CAMS, namespace)
    cams = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(0))
    wrong, right = namespace["scale_cams"](cams, (32, 32)), library_cams.library_scale_cams(cams, (32, 32))
    assert checks.rel_error(wrong, right) > 0.05


def test_calling_the_library_instead_of_implementing_fails_the_hidden_checks(graded):
    """LayerCAM from pytorch-grad-cam (through library_cam) and scipy's spearmanr pass the visible
    checks (the notebook's kernel has the libraries) and fail the hidden ones: where the graded
    functions run the libraries cannot be imported (autograder/engine/check_kernel.py). The
    library-backed Assignment 2 helpers of the tools cell, which the checks replace, cost nothing."""
    harness.assert_loses_exactly(graded, "library_calls", ASSIGNMENT, set(LIBRARY_CALL_LOSSES))
    for cell, library in LIBRARY_CALL_LOSSES.items():
        if library is None:
            continue
        message = graded["library_calls"][cell].message
        assert f"ImportError: {library} is not available where your functions are graded" in message, (cell, message)


def test_correct_alternatives_get_full_autograded_marks(graded):
    """Independent correct implementations (tests/alternatives/) lose nothing, visible checks included."""
    harness.assert_alternatives_get_full_marks(graded, ASSIGNMENT, alternatives.ALTERNATIVES)


@pytest.mark.parametrize("name", sorted(VISIBLE_MESSAGES))
def test_a_mistake_on_the_way_loses_its_cells_with_a_message_naming_it(graded, name):
    _, messages = VISIBLE_MESSAGES[name]
    harness.assert_loses_exactly_with_messages(graded, name, ASSIGNMENT, messages)
