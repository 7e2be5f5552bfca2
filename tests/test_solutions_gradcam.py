"""The Assignment 2 reference (solutions/gradcam.py, solutions/cam_variants.py) against
pytorch-grad-cam 1.5.7 and against a Grad-CAM computed by hand."""

from __future__ import annotations

import copy
import inspect

import pytest
import torch
from pytorch_grad_cam import GradCAM, HiResCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from autograder.engine.checks.a02_gradcam import tiny_cnn_inputs
from student_src.probe_models import TinyCNN
from solutions import cam_variants, gradcam
from student_src import checks

STUDENT_FUNCTIONS = ("activations_and_gradients", "gradcam_channel_weights", "scale_cams", "grad_cam")
CAM_TOLERANCE = 5e-5  # 10x the measured float32 noise (<= 2.4e-6 one image at a time; tests/test_tolerances.py)


@pytest.fixture(scope="module")
def model(cifar_resnet):
    """A private copy: pytorch-grad-cam leaves weight gradients on the model it explains."""
    return copy.deepcopy(cifar_resnet).eval()


def library_cams(method, model, layer_name, x, targets=None) -> torch.Tensor:
    """pytorch-grad-cam's maps as a tensor; the model's .grad is cleared afterwards."""
    library_targets = None if targets is None else [ClassifierOutputTarget(int(t)) for t in targets]
    try:
        with method(model, [model.get_submodule(layer_name)]) as cam:
            return torch.from_numpy(cam(x, targets=library_targets))
    finally:
        model.zero_grad(set_to_none=True)


def runner_up(model, x) -> list:
    with torch.no_grad():
        return model(x).topk(2, dim=1).indices[:, 1].tolist()


# --- agreement with pytorch-grad-cam -------------------------------------------------------------

@pytest.mark.parametrize("layer_name", ["layer4.1", "layer3.1", "layer2"])
@pytest.mark.parametrize("explicit_targets", [False, True], ids=["predicted", "runner_up"])
def test_grad_cam_matches_library(model, cifar_batch, layer_name, explicit_targets):
    x, _ = cifar_batch
    targets = runner_up(model, x) if explicit_targets else None
    ours = gradcam.grad_cam(model, layer_name, x, targets)
    checks.assert_map_invariants(ours, (8, 32, 32), "grad_cam")
    checks.assert_close(ours, library_cams(GradCAM, model, layer_name, x, targets), CAM_TOLERANCE, "grad_cam")


def test_grad_cam_matches_library_batch_of_one_and_int_target(model, cifar_batch):
    x, _ = cifar_batch
    single = gradcam.grad_cam(model, "layer4", x[3:4], 6)
    checks.assert_close(single, library_cams(GradCAM, model, "layer4", x[3:4], [6]), CAM_TOLERANCE, "batch of 1")
    batched = gradcam.grad_cam(model, "layer4", x, 6)
    # Batched and single-image convolutions use other CPU kernels: measured 8.0e-7 here, 1.1e-6 on an AMD EPYC.
    checks.assert_close(batched[3:4], single, CAM_TOLERANCE, "image 3 of a batch vs alone")


@pytest.mark.parametrize("layer_name", ["layer4.1", "layer3.1"])
@pytest.mark.parametrize("ours, library", [(cam_variants.hires_cam, HiResCAM), (cam_variants.xgrad_cam, XGradCAM)],
                         ids=["hirescam", "xgradcam"])
def test_hirescam_and_xgradcam_formulas_match_library(model, cifar_batch, layer_name, ours, library):
    x, _ = cifar_batch
    targets = runner_up(model, x)
    checks.assert_close(ours(model, layer_name, x, targets), library_cams(library, model, layer_name, x, targets),
                        CAM_TOLERANCE, library.__name__)


def test_methods_coincide_at_layer4_and_differ_at_layer3(model, cifar_batch):
    """layer4 is followed by global average pooling and fc: its gradient is spatially constant."""
    x, _ = cifar_batch
    _, gradients, _ = gradcam.activations_and_gradients(model, "layer4", x)
    # fc.weight / 16 broadcast over the positions: equal up to the average pool's rounding (measured 0).
    assert torch.allclose(gradients, gradients[:, :, :1, :1].expand_as(gradients), rtol=1e-5, atol=0)
    for layer_name, same in (("layer4", True), ("layer3", False)):
        grad = gradcam.grad_cam(model, layer_name, x)
        for other in (cam_variants.hires_cam, cam_variants.xgrad_cam):
            error = checks.rel_error(grad, other(model, layer_name, x))
            assert (error < 1e-5) if same else (error > 1e-2), (layer_name, other.__name__, error)


# --- the tiny CNN, by hand -----------------------------------------------------------------------

# TinyCNN: A = (relu(m), relu(-m)) for the 2x2 block means m; logits = W @ A.flatten().
BLOCK_MEANS = torch.tensor([[[2.0, -1.0], [0.5, -3.0]], [[-1.0, 4.0], [1.0, 0.5]]])
FC_WEIGHT = torch.tensor([[1.0, 0.0, 2.0, 1.0, -1.0, 0.0, 1.0, -2.0],
                          [0.0, 1.0, 1.0, 0.0, 2.0, 2.0, 2.0, 2.0]])
# logits by hand: image 0: class 0 = 2 + 2*0.5 - 2*3 = -3, class 1 = 0.5 + 2*(1 + 3) = 8.5;
#                 image 1: class 0 = 2*1 + 0.5 - 1 = 1.5, class 1 = 4 + 1 + 2*1 = 7.  Predicted: 1, 1.
LOGITS = torch.tensor([[-3.0, 8.5], [1.5, 7.0]])
# Grad-CAM weights = mean of each channel's fc weights: class 0 -> (1, -0.5), class 1 -> (0.5, 2).
WEIGHTS = torch.tensor([[1.0, -0.5], [0.5, 2.0]])
# Raw maps sum_k w_k A_k, for [image][class]:
RAW_MAPS = torch.tensor([
    [[[2.0, -0.5], [0.5, -1.5]], [[1.0, 2.0], [0.25, 6.0]]],
    [[[-0.5, 4.0], [1.0, 0.5]], [[2.0, 2.0], [0.5, 0.25]]],
])
# Bilinear 2 -> 4 with align_corners=False samples the source at -0.25 (clamped to 0), 0.25, 0.75, 1.25 (to 1).
UPSAMPLE = torch.tensor([[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]])


def hand_heatmap(raw: torch.Tensor) -> torch.Tensor:
    """ReLU, min-max (+1e-7), bilinear 2x2 -> 4x4; the corners keep min and max, so the second
    min-max only divides by (max + 1e-7) once more."""
    rectified = raw.clamp(min=0)
    shifted = rectified - rectified.min()
    normalized = shifted / (shifted.max() + 1e-7)
    upsampled = UPSAMPLE @ normalized @ UPSAMPLE.T
    return upsampled / (upsampled.max() + 1e-7)


def test_tiny_cnn_activations_gradients_and_weights_by_hand():
    model, x = TinyCNN().eval(), tiny_cnn_inputs()
    for target in (0, 1):
        activations, gradients, logits = gradcam.activations_and_gradients(model, "relu", x, target)
        assert torch.equal(activations, torch.stack([BLOCK_MEANS.clamp(min=0), (-BLOCK_MEANS).clamp(min=0)], 1))
        assert torch.equal(gradients, FC_WEIGHT[target].view(1, 2, 2, 2).expand(2, 2, 2, 2))
        assert torch.equal(logits, LOGITS)
        assert torch.equal(gradcam.gradcam_channel_weights(gradients), WEIGHTS[target].expand(2, 2))


@pytest.mark.parametrize("targets, classes", [(None, [1, 1]), (0, [0, 0]), ([1, 0], [1, 0])],
                         ids=["predicted", "class0", "mixed"])
def test_tiny_cnn_grad_cam_by_hand(targets, classes):
    model, x = TinyCNN().eval(), tiny_cnn_inputs()
    expected = torch.stack([hand_heatmap(RAW_MAPS[image, target]) for image, target in enumerate(classes)])
    ours = gradcam.grad_cam(model, "relu", x, targets)
    # Hand-computed maps in [0, 1]: a few float32 roundings, measured < 1e-7.
    assert torch.allclose(ours, expected, atol=1e-6, rtol=0)
    checks.assert_close(ours, library_cams(GradCAM, model, "relu", x, classes), 1e-6, "tiny CNN vs library")


def test_tiny_cnn_variants_differ_as_taught():
    """Each ablation changes the tiny CNN's maps; HiResCAM differs from Grad-CAM there."""
    model, x = TinyCNN().eval(), tiny_cnn_inputs()
    reference = gradcam.grad_cam(model, "relu", x, 0)
    for options in ({"relu": False}, {"pooling": "max"}):
        assert checks.rel_error(cam_variants.grad_cam_variant(model, "relu", x, 0, **options), reference) > 0.05
    assert checks.rel_error(cam_variants.hires_cam(model, "relu", x, 0), reference) > 0.05
    raw = cam_variants.grad_cam_variant(model, "relu", x, 0, normalize=False)
    assert torch.allclose(raw, (UPSAMPLE @ RAW_MAPS[:, 0].clamp(min=0) @ UPSAMPLE.T), atol=1e-6)


# --- side effects --------------------------------------------------------------------------------

class FailsAfterLayer(nn.Module):
    def forward(self, x):
        raise ValueError("forward failed on purpose")


@pytest.mark.parametrize("function", [gradcam.activations_and_gradients, gradcam.grad_cam],
                         ids=lambda f: f.__name__)
def test_no_hook_left_after_success_or_exception(model, cifar_batch, function):
    x, _ = cifar_batch
    function(model, "layer3", x[:2])
    assert checks.count_hooks(model) == 0
    failing = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), FailsAfterLayer())
    with pytest.raises(ValueError, match="on purpose"):
        function(failing, "1", x[:1])
    assert checks.count_hooks(failing) == 0


@pytest.mark.parametrize("train_mode", [False, True])
def test_model_unchanged_and_no_parameter_grads(train_mode):
    torch.manual_seed(3)
    small = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).train(train_mode)
    snapshot = checks.ModelSnapshot(small)
    x = torch.randn(3, 3, 8, 8)
    gradcam.grad_cam(small, "2", x)
    snapshot.assert_unchanged(small, "grad_cam")
    assert all(parameter.grad is None for parameter in small.parameters())
    assert not x.requires_grad and x.grad is None


def test_resnet_unchanged(model, cifar_batch):
    snapshot = checks.ModelSnapshot(model)
    gradcam.grad_cam(model, "layer3", cifar_batch[0][:4], [1, 2, 3, 4])
    snapshot.assert_unchanged(model, "grad_cam")
    assert all(parameter.grad is None for parameter in model.parameters())


# --- targets, inputs, contexts -------------------------------------------------------------------

def test_target_forms_agree(model, cifar_batch):
    x = cifar_batch[0][:4]
    _, _, logits = gradcam.activations_and_gradients(model, "layer4", x)
    predicted = logits.argmax(dim=1).tolist()
    by_none = gradcam.activations_and_gradients(model, "layer4", x)[1]
    for same in (predicted, tuple(predicted), torch.tensor(predicted)):
        assert torch.equal(gradcam.activations_and_gradients(model, "layer4", x, same)[1], by_none)
    by_int = gradcam.activations_and_gradients(model, "layer4", x, 5)[1]
    assert torch.equal(by_int, gradcam.activations_and_gradients(model, "layer4", x, [5] * 4)[1])
    assert torch.equal(by_int, gradcam.activations_and_gradients(model, "layer4", x, torch.tensor(5))[1])
    with pytest.raises(ValueError, match="one target per image"):
        gradcam.activations_and_gradients(model, "layer4", x, [1, 2])


def test_outputs_detached_and_shaped(model, cifar_batch):
    x = cifar_batch[0][:3]
    activations, gradients, logits = gradcam.activations_and_gradients(model, "layer2", x)
    assert activations.shape == gradients.shape == (3, 128, 16, 16) and logits.shape == (3, 10)
    assert not any(t.requires_grad for t in (activations, gradients, logits))


def test_works_inside_no_grad(model, cifar_batch):
    x = cifar_batch[0][:2]
    with torch.no_grad():
        inside = gradcam.grad_cam(model, "layer3", x)
    assert torch.equal(inside, gradcam.grad_cam(model, "layer3", x))


def test_layer_that_does_not_run_is_an_error():
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.Flatten(), nn.Linear(2 * 16, 2))
    model[0].unused = nn.ReLU()  # a submodule that Conv2d.forward never calls
    with pytest.raises(RuntimeError, match="did not run"):
        gradcam.activations_and_gradients(model, "0.unused", torch.randn(1, 3, 4, 4))
    assert checks.count_hooks(model) == 0


# --- scale_cams ----------------------------------------------------------------------------------

def test_scale_cams_constant_maps_become_zeros():
    cams = torch.tensor([0.0, 3.0, -1.0]).view(3, 1, 1).expand(3, 4, 4)
    scaled = gradcam.scale_cams(cams, (32, 32))
    assert torch.equal(scaled, torch.zeros(3, 32, 32))


def test_scale_cams_range_shape_and_extremes():
    scales = torch.tensor([1e-6, 1.0, 10.0, 1e3]).view(4, 1, 1)
    cams = torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(0)) * scales
    scaled = gradcam.scale_cams(cams, (20, 12))
    checks.assert_map_invariants(scaled, (4, 20, 12), "scale_cams")
    assert torch.all(scaled.flatten(1).amin(dim=1) == 0)
    assert torch.all(scaled.flatten(1).amax(dim=1) > 0.999)


# --- the variants --------------------------------------------------------------------------------

def test_variant_defaults_are_grad_cam(model, cifar_batch):
    x = cifar_batch[0]
    assert torch.equal(cam_variants.grad_cam_variant(model, "layer3", x), gradcam.grad_cam(model, "layer3", x))


def test_variant_normalize_once_differs_only_slightly(model, cifar_batch):
    """One min-max after upsampling differs from the library's two stages only through the 1e-7."""
    x = cifar_batch[0]
    once = cam_variants.grad_cam_variant(model, "layer1", x, normalize_after_upsampling=True)
    assert 0 < checks.rel_error(once, gradcam.grad_cam(model, "layer1", x)) < 2e-3


def test_variant_max_pooling_equals_mean_at_layer4_only(model, cifar_batch):
    x = cifar_batch[0]
    for layer_name, same in (("layer4", True), ("layer3", False)):
        error = checks.rel_error(cam_variants.grad_cam_variant(model, layer_name, x, pooling="max"),
                                 gradcam.grad_cam(model, layer_name, x))
        assert (error < 1e-5) if same else (error > 1e-2), (layer_name, error)


def test_variant_without_normalisation_keeps_scale(model, cifar_batch):
    raw = cam_variants.grad_cam_variant(model, "layer4", cifar_batch[0], normalize=False)
    assert raw.shape == (8, 32, 32) and raw.min() >= 0 and raw.max() < 1  # raw maps of a random-init model are tiny
    with pytest.raises(ValueError, match="pooling"):
        cam_variants.grad_cam_variant(model, "layer4", cifar_batch[0], pooling="median")


# --- the solution-marker convention --------------------------------------------------------------

@pytest.mark.parametrize("name", STUDENT_FUNCTIONS)
def test_student_functions_are_marked_and_self_contained(name):
    """Each student function has one marked body and uses only torch, F, nn and the others."""
    function = getattr(gradcam, name)
    lines = inspect.getsource(function).splitlines()
    assert sum(line == "    ### BEGIN SOLUTION" for line in lines) == 1
    assert sum(line == "    ### END SOLUTION" for line in lines) == 1
    assert lines.index("    ### BEGIN SOLUTION") < lines.index("    ### END SOLUTION")
    docstring = inspect.getdoc(function)
    assert "(B," in docstring and "arxiv.org/abs/1610.02391" in docstring
    used = set(inspect.getclosurevars(function).globals)
    assert used <= {"torch", "F", "nn", *STUDENT_FUNCTIONS} - {name}, used
