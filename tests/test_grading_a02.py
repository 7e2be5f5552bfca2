"""Assignment 2 (Grad-CAM) through the real nbgrader pipeline: reference, blank, five known mistakes.

Each mistake replaces the student's ``grad_cam`` (tests/mutants/a02_gradcam.py, NOTEBOOK_MUTANTS)
and must lose exactly the test cells whose hidden check it fails according to the ``MUTANTS``
table there (one hidden check per grad_cam test cell), plus the cells whose *visible* checks
catch it on the notebook's own model (listed in ``CAUGHT_BY_VISIBLE_CHECKS``, with the reason).
"""

import pytest

from autograder.engine.checks import a02_gradcam
from tests import grading_harness as harness
from tests.alternatives import a02_gradcam as alternatives
from tests.mutants import a02_gradcam as mutants
from tests.mutants.a02_gradcam import MUTANTS, NOTEBOOK_MUTANTS, activations_and_gradients__library_aliasing

ASSIGNMENT = "02_gradcam"
#: The grad_cam test cells and the hidden check each one runs.
CELL_OF_CHECK = {
    "check_grad_cam_other_layers": "test_grad_cam_layers",
    "check_grad_cam_targets_and_batches": "test_grad_cam_targets",
    "check_grad_cam_tiny_cnn": "test_grad_cam_tiny_cnn",
    "check_grad_cam_side_effects": "test_grad_cam_side_effects",
}
#: What each of the issue's five mistakes must lose, spelled out (and derived below from MUTANTS).
EXPECTED_LOSSES = {
    "grad_cam_without_relu": {"test_grad_cam_layers", "test_grad_cam_targets", "test_grad_cam_tiny_cnn"},
    "grad_cam_max_pooled_gradients": {"test_grad_cam_layers", "test_grad_cam_tiny_cnn"},
    "grad_cam_weights_from_activations": {"test_grad_cam_layers", "test_grad_cam_targets", "test_grad_cam_tiny_cnn"},
    "grad_cam_divide_by_max_only": {"test_grad_cam_layers", "test_grad_cam_targets", "test_grad_cam_tiny_cnn"},
    "grad_cam_hook_never_removed": {"test_grad_cam_side_effects"},
}
#: Cells a mistake loses through a visible check only (its hidden check for that cell passes).
CAUGHT_BY_VISIBLE_CHECKS = {
    # Visible: pytorch-grad-cam at layer3 and layer2 on the notebook's model, whose maps there
    # are positive everywhere (the stand-in's minima after upsampling: 0.06 to 0.22), so dividing
    # by the maximum without subtracting the minimum changes them. The hidden check's random-init
    # model gives maps with zeros at those layers, where the mistake changes nothing.
    "grad_cam_divide_by_max_only": {"test_grad_cam_layers"},
}
MANUAL_ITEMS = {"grad_cam_variant", "q_layers", "q_methods_coincide", "q_classes", "q_right_wrong", "q_ablations",
                "q_model", "q_trust"}

AAG_CELLS = ("test_activations_and_gradients_values", "test_activations_and_gradients_targets",
             "test_activations_and_gradients_cleanup")
GRAD_CAM_CELLS = tuple(CELL_OF_CHECK.values())
SCALE_CELLS = ("test_scale_cams_values", "test_scale_cams_edge_cases")
TRAIN_MODE = harness.TRAIN_MODE
DETACHED = ("raised RuntimeError: torch.autograd.grad was given a tensor that is not part of the autograd graph. "
            "Your forward hook probably kept `output.detach()`")
INTERPOLATE = f"raised ValueError: {harness.INTERPOLATE}"
#: Mistakes made on the way, grouped into notebooks whose failing cells are disjoint: the
#: functions pasted in, and the start of the visible message of every cell the notebook loses.
#: (The first error of a cell is its row's message.)
VISIBLE_MESSAGES = {
    "mistakes_train_mode_no_epsilon": (
        (mutants.activations_and_gradients__sets_train_mode, mutants.scale_cams__without_epsilon),
        {"test_activations_and_gradients_values": f"activations_and_gradients(...) {TRAIN_MODE}",
         "test_activations_and_gradients_targets": f"activations_and_gradients with targets=7 {TRAIN_MODE}",
         "test_activations_and_gradients_cleanup": f"activations_and_gradients(...) {TRAIN_MODE}",
         "test_grad_cam_layers": f"grad_cam(model, 'layer3', x) {TRAIN_MODE}",
         "test_grad_cam_targets": f"grad_cam at layer4 for the predicted classes {TRAIN_MODE}",
         "test_grad_cam_tiny_cnn": f"grad_cam(...) {TRAIN_MODE}",
         "test_grad_cam_side_effects": f"grad_cam(...) {TRAIN_MODE}",
         "test_scale_cams_edge_cases": "scale_cams of constant maps: contains NaN or infinite values: a division by "
                                       "zero? A constant map has max - min = 0"}),
    "mistake_detached_output": (
        (mutants.activations_and_gradients__detached_output,),
        {**{cell: f"activations_and_gradients(...) {DETACHED}" for cell in AAG_CELLS[::2]},
         "test_activations_and_gradients_targets": f"activations_and_gradients with targets=7 {DETACHED}",
         "test_grad_cam_layers": f"grad_cam(model, 'layer3', x) {DETACHED}",
         "test_grad_cam_targets": f"grad_cam at layer4 for the predicted classes {DETACHED}",
         "test_grad_cam_tiny_cnn": f"grad_cam(...) {DETACHED}",
         "test_grad_cam_side_effects": f"grad_cam(...) {DETACHED}"}),
    "mistake_interpolate_without_channel_dim": (
        (mutants.scale_cams__interpolate_without_channel_dim,),
        {"test_scale_cams_values": f"scale_cams(...) {INTERPOLATE}",
         "test_scale_cams_edge_cases": f"scale_cams(...) {INTERPOLATE}",
         "test_grad_cam_layers": f"grad_cam(model, 'layer3', x) {INTERPOLATE}",
         "test_grad_cam_targets": f"grad_cam at layer4 for the predicted classes {INTERPOLATE}",
         "test_grad_cam_tiny_cnn": f"grad_cam(...) {INTERPOLATE}",
         "test_grad_cam_side_effects": f"grad_cam(...) {INTERPOLATE}"}),
    # Issue 26: three bare numbers and a raw traceback, now sentences naming the mistake (the grad_cam
    # cells, built on the wrong helpers, fail too: their first message is not asserted).
    "mistakes_sign_batch_int_target": (
        (mutants.gradcam_channel_weights__flipped_sign, mutants.scale_cams__normalised_over_batch,
         mutants.activations_and_gradients__int_target_not_expanded),
        {"test_gradcam_channel_weights": "gradcam_channel_weights by hand: yours is minus the expected values: a "
                                         "flipped sign",
         "test_scale_cams_values": "scale_cams vs pytorch-grad-cam: yours was min-max scaled over the whole batch, "
                                   "not per image",
         "test_scale_cams_edge_cases": "scale_cams of constant maps: yours was min-max scaled over the whole batch",
         "test_activations_and_gradients_targets": "activations_and_gradients with targets=7 raised IndexError: a "
                                                   "tensor without dimensions was indexed: one int target",
         **dict.fromkeys(GRAD_CAM_CELLS[:3])}),
    "mistake_log_softmax_score": (
        (mutants.activations_and_gradients__log_softmax_score,),
        {"test_activations_and_gradients_values": "gradients of the predicted classes at layer4: yours matches a "
                                                  "known mistake: a log_softmax score instead of the raw logit",
         "test_activations_and_gradients_targets": None, **dict.fromkeys(GRAD_CAM_CELLS[:3])}),
    # ... and the blame case: this notebook's grad_cam_variant is right, its grad_cam is not; the
    # variant's check cell (ungraded) compares with the library (tests/test_visible_checks.py).
    "mistake_relu_on_weights": (
        (mutants.grad_cam__relu_on_weights,),
        {"test_grad_cam_layers": "grad_cam at 'layer3' vs pytorch-grad-cam: yours matches a known mistake: a ReLU "
                                 "on the channel weights instead of on the weighted sum",
         "test_grad_cam_targets": None,
         "test_grad_cam_tiny_cnn": "tiny CNN, class 0: yours matches a known mistake: a ReLU on the channel weights"}),
    "mistake_fixed_size_32": (
        (mutants.grad_cam__fixed_size_32,),
        {"test_grad_cam_tiny_cnn": "tiny CNN, class 0: expected shape (1, 2, 2), got (1, 32, 32): that is CIFAR's "
                                   "image size; take the size from the input (`x.shape[-2:]`)"}),
}


def cohort() -> dict:
    """The notebooks this module grades: ``{student: notebook}`` (graded with the other
    assignments' cohorts in one run, tests/conftest.py ``graded_class``)."""
    students = {"reference": harness.mutated_submission(ASSIGNMENT), "blank": harness.blank_submission(ASSIGNMENT)}
    for name, mutant in NOTEBOOK_MUTANTS.items():
        students[name] = harness.mutated_submission(ASSIGNMENT, mutant)
    students["aliasing_hook"] = harness.mutated_submission(ASSIGNMENT, activations_and_gradients__library_aliasing)
    for name, (functions, _) in VISIBLE_MESSAGES.items():
        students[name] = harness.mutated_submission(ASSIGNMENT, *functions)
    students.update(harness.alternative_submissions(ASSIGNMENT, alternatives.ALTERNATIVES))
    students["library_aliases"] = library_aliases_submission()
    students["library_by_path"] = harness.edit_cell(harness.mutated_submission(ASSIGNMENT), "grad_cam",
                                                    LIBRARY_BY_PATH)
    return students


#: The blank release plus one-line aliases of the library (no library name in the code that the
#: hidden checks call): the functions are pytorch-grad-cam's, reached through ``getattr``.
LIBRARY_ALIASES = {
    "activations_and_gradients": 'activations_and_gradients = getattr(library_cams, "library_" + "activations_and_gradients")',
    "scale_cams": 'scale_cams = getattr(library_cams, "library_" + "scale_cams")',
    "grad_cam": 'grad_cam = getattr(__import__("student_src.library_cams", fromlist=["x"]), "library_grad_cam")',
}


#: A grad_cam that looks for pytorch-grad-cam's files itself: its folder put first on sys.path again,
#: then its module files loaded by path. Where graded functions run, that folder holds only the stub.
LIBRARY_BY_PATH = '''
def grad_cam(model, layer_name, x, targets=None):
    import glob, importlib, importlib.util, sys, sysconfig
    site = sysconfig.get_paths()["purelib"]
    sys.path.insert(0, site)
    for name in [n for n in sys.modules if n.startswith("pytorch_grad_cam")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    try:
        from pytorch_grad_cam import GradCAM
    except ImportError:
        files = glob.glob(site + "/pytorch_grad_cam/**/grad_cam.py", recursive=True)
        spec = importlib.util.spec_from_file_location("found_grad_cam", files[0])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        GradCAM = module.GradCAM
    from student_src import library_cams
    return library_cams.library_grad_cam(model, layer_name, x, targets)
'''


def library_aliases_submission():
    notebook = harness.blank_submission(ASSIGNMENT)
    for grade_id, alias in LIBRARY_ALIASES.items():
        notebook = harness.edit_cell(notebook, grade_id, alias)
    return notebook


@pytest.fixture(scope="module")
def graded(graded_class):
    return graded_class[ASSIGNMENT]


def test_expected_losses_are_the_cells_of_the_checks_each_mistake_fails():
    assert set(NOTEBOOK_MUTANTS) == set(EXPECTED_LOSSES)
    assert set(CELL_OF_CHECK) == {c.__name__ for c in a02_gradcam.CHECKS if c.__name__.startswith("check_grad_cam_")}
    points = harness.points_of(ASSIGNMENT)
    assert set(CELL_OF_CHECK.values()) <= set(points)
    for name, cells in EXPECTED_LOSSES.items():
        assert MUTANTS[name].replaces == "grad_cam"
        from_checks = {CELL_OF_CHECK[check] for check in MUTANTS[name].fails}
        assert from_checks | CAUGHT_BY_VISIBLE_CHECKS.get(name, set()) == cells, name


@pytest.mark.parametrize("name", sorted(NOTEBOOK_MUTANTS))
def test_notebook_mutant_fails_the_same_hidden_checks_as_its_table_entry(name):
    """The code pasted into the notebook makes the mistake the MUTANTS table describes."""
    failed = set()
    for check in a02_gradcam.CHECKS:
        if check.__name__ in CELL_OF_CHECK:
            try:
                check(NOTEBOOK_MUTANTS[name])
            except AssertionError:
                failed.add(check.__name__)
    assert failed == MUTANTS[name].fails


def test_reference_gets_full_autograded_marks(graded):
    harness.assert_reference_full_marks(graded, ASSIGNMENT, 18, MANUAL_ITEMS)


def test_blank_release_scores_zero(graded):
    harness.assert_blank_scores_zero(graded, ASSIGNMENT, 18)


@pytest.mark.parametrize("name", sorted(NOTEBOOK_MUTANTS))
def test_known_mistake_loses_exactly_its_cells(graded, name):
    harness.assert_loses_exactly(graded, name, ASSIGNMENT, EXPECTED_LOSSES[name])


def test_correct_alternatives_get_full_autograded_marks(graded):
    """Independent correct implementations (tests/alternatives/) lose nothing, visible checks included."""
    harness.assert_alternatives_get_full_marks(graded, ASSIGNMENT, alternatives.ALTERNATIVES)


def test_a_hook_that_keeps_an_overwritten_output_loses_its_cells(graded):
    """pytorch-grad-cam's CPU recipe (A aliased, then overwritten by an in-place ReLU; G from before
    it): the activations_and_gradients values cell and, through grad_cam at an AlexNet-shaped
    network's last convolution, the grad_cam layers cell. The visible checks (at layer4, where no
    in-place operation follows) pass, as the library does there."""
    harness.assert_loses_exactly(graded, "aliasing_hook", ASSIGNMENT,
                                 {"test_activations_and_gradients_values", "test_grad_cam_layers"})


@pytest.mark.parametrize("name", sorted(VISIBLE_MESSAGES))
def test_mistakes_on_the_way_lose_their_cells_with_a_message_naming_them(graded, name):
    _, messages = VISIBLE_MESSAGES[name]
    harness.assert_loses_exactly_with_messages(graded, name, ASSIGNMENT, messages)


def test_library_aliases_score_nothing(graded):
    """Functions that are the library's under another name (the visible checks, which run in the
    notebook's kernel, are fooled) fail every hidden check: where the graded functions run
    (autograder/engine/check_kernel.py) pytorch-grad-cam cannot be imported. (The channel weights
    stay the release's stub.)"""
    harness.assert_loses_exactly(graded, "library_aliases", ASSIGNMENT, set(harness.points_of(ASSIGNMENT)))
    rows = graded["library_aliases"]
    assert rows[harness.TOTAL_ITEM].score == 0
    for cell in (*AAG_CELLS, *SCALE_CELLS, *GRAD_CAM_CELLS):
        assert "ImportError: pytorch_grad_cam is not available where your functions are graded" in rows[cell].message, \
            (cell, rows[cell].message)


def test_library_files_cannot_be_reached_by_path(graded):
    """Putting the library's folder first on sys.path again, or loading its files by path, finds
    the stub the check kernel's sandbox mounts over the library: every grad_cam cell fails, the
    other functions (the reference's) keep theirs."""
    harness.assert_loses_exactly(graded, "library_by_path", ASSIGNMENT, set(GRAD_CAM_CELLS))
    for cell in GRAD_CAM_CELLS:
        assert "grad_cam" in graded["library_by_path"][cell].message, graded["library_by_path"][cell].message
