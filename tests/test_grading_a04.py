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
    return students


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


def test_calling_the_library_instead_of_implementing_fails_the_hidden_checks():
    """LayerCAM from pytorch-grad-cam (through library_cam) or scipy's spearmanr is refused; the
    library-backed Assignment 2 helpers, called by name as the notebook does, are not."""
    import torch

    from autograder.engine import check_server
    from solutions import gradcam, layercam
    from student_src import grading_client as hidden
    from student_src import library_cams
    from tests.grading_harness import notebook_namespace

    check_server.ensure_running()  # the checks run there; this process plays the kernel

    def layer_cam(model, layer_name, x, targets=None):
        return library_cams.library_cam("LayerCAM", model, layer_name, x, targets)

    with pytest.raises(hidden.HiddenCheckFailed, match="layer_cam calls .*library_cam"):
        hidden.run("a04_beyond", "check_layer_cam_gradient_relu", layer_cam)

    def spearman_rank_correlation(a, b):
        from scipy.stats import spearmanr

        return torch.tensor([spearmanr(u.flatten(), v.flatten()).statistic for u, v in zip(a, b)])

    with pytest.raises(hidden.HiddenCheckFailed, match="spearmanr"):
        hidden.run("a04_beyond", "check_spearman_rank_correlation", spearman_rank_correlation)
    honest = notebook_namespace(gradcam, layercam)["layer_cam"]
    hidden.run("a04_beyond", "check_layer_cam_gradient_relu", honest)  # honest code passes


def test_correct_alternatives_get_full_autograded_marks(graded):
    """Independent correct implementations (tests/alternatives/) lose nothing, visible checks included."""
    harness.assert_alternatives_get_full_marks(graded, ASSIGNMENT, alternatives.ALTERNATIVES)


@pytest.mark.parametrize("name", sorted(VISIBLE_MESSAGES))
def test_a_mistake_on_the_way_loses_its_cells_with_a_message_naming_it(graded, name):
    _, messages = VISIBLE_MESSAGES[name]
    harness.assert_loses_exactly_with_messages(graded, name, ASSIGNMENT, messages)
