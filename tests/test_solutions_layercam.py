"""solutions.layercam against pytorch-grad-cam 1.5.7's LayerCAM, one and several target layers."""

from __future__ import annotations

import copy

import pytest
import torch
from pytorch_grad_cam import LayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from solutions.layercam import fuse_layer_cams, layer_cam
from student_src import checks

TARGETS = [3, 1, 4, 1, 5, 9, 2, 6]


@pytest.fixture(scope="module")
def model(cifar_resnet):
    # The library calls .backward(), which fills parameter.grad: keep that off the shared fixture.
    return copy.deepcopy(cifar_resnet)


def library_layer_cam(model, layer_names, x, targets):
    with LayerCAM(model, [model.get_submodule(name) for name in layer_names]) as cam:
        maps = cam(x, targets=[ClassifierOutputTarget(t) for t in targets])
    model.zero_grad(set_to_none=True)
    return torch.from_numpy(maps)


@pytest.mark.parametrize("layer", ["layer2", "layer3", "layer4", "layer3.0.conv1"])
def test_layer_cam_matches_the_library(model, cifar_batch, layer):
    x = cifar_batch[0][:4]
    maps = layer_cam(model, layer, x, TARGETS[:4])
    checks.assert_map_invariants(maps, (4, 32, 32), "layer_cam")
    assert checks.rel_error(maps, library_layer_cam(model, [layer], x, TARGETS[:4])) < 1e-5


@pytest.mark.parametrize("layers", [["layer2", "layer3", "layer4"], ["layer1", "layer4"], ["layer3"]])
def test_fused_layer_cams_match_the_library_with_several_target_layers(model, cifar_batch, layers):
    x = cifar_batch[0][:3]
    maps = fuse_layer_cams(model, layers, x, TARGETS[:3])
    checks.assert_map_invariants(maps, (3, 32, 32), "fuse_layer_cams")
    assert checks.rel_error(maps, library_layer_cam(model, layers, x, TARGETS[:3])) < 1e-5


def test_fusion_scales_each_layer_before_upsampling(model, cifar_batch):
    """Averaging finished (upsampled, rescaled) Layer-CAMs is *not* the library's fusion."""
    x, layers = cifar_batch[0][:3], ["layer2", "layer3", "layer4"]
    naive = torch.stack([layer_cam(model, name, x, TARGETS[:3]) for name in layers]).mean(dim=0)
    naive = (naive - naive.amin(dim=(1, 2), keepdim=True)) / naive.amax(dim=(1, 2), keepdim=True)
    assert checks.rel_error(naive, fuse_layer_cams(model, layers, x, TARGETS[:3])) > 1e-3


def test_one_layer_fusion_is_layer_cam_and_targets_default_to_predictions(model, cifar_batch):
    x = cifar_batch[0][:2]
    predicted = model(x).argmax(dim=1)
    single = layer_cam(model, "layer3", x)
    # The same operations on the same inputs: measured 0.
    assert checks.rel_error(fuse_layer_cams(model, ["layer3"], x), single) < 1e-6
    assert checks.rel_error(single, layer_cam(model, "layer3", x, predicted)) == 0


def test_layer_cam_differs_from_grad_cam_only_by_the_gradient_relu_at_layer4(model, cifar_batch):
    """At layer4 the gradient is spatially constant: Layer-CAM = Grad-CAM with ReLU'd channel weights."""
    from solutions.gradcam import activations_and_gradients, scale_cams

    x = cifar_batch[0][:4]
    activations, gradients, _ = activations_and_gradients(model, "layer4", x, TARGETS[:4])
    assert torch.allclose(gradients, gradients.mean(dim=(2, 3), keepdim=True).expand_as(gradients), atol=1e-7)
    weights = gradients.mean(dim=(2, 3)).clamp(min=0)
    expected = scale_cams((weights[:, :, None, None] * activations).sum(dim=1), (32, 32))
    assert checks.rel_error(layer_cam(model, "layer4", x, TARGETS[:4]), expected) < 1e-6


def test_layer_cam_leaves_the_model_unchanged(model, cifar_batch):
    snapshot = checks.ModelSnapshot(model)
    layer_cam(model, "layer2", cifar_batch[0][:2], [0, 1])
    fuse_layer_cams(model, ["layer2", "layer4"], cifar_batch[0][:2], [0, 1])
    snapshot.assert_unchanged(model, "Layer-CAM")
