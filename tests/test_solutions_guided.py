"""The Assignment 3 reference (solutions/guided.py) against captum, pytorch-grad-cam and hand computation."""

from __future__ import annotations

import copy
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from student_src.probe_models import SharedReLUNet
from solutions import guided
from student_src import checks, library_cams

N_IMAGES = 4


@pytest.fixture()
def model(cifar_resnet):
    """A private copy of the session's random-init CIFAR ResNet-18 (libraries below modify models)."""
    return copy.deepcopy(cifar_resnet)


@pytest.fixture()
def batch(cifar_batch):
    images, labels = cifar_batch
    return images[:N_IMAGES], labels[:N_IMAGES]


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def test_guided_backprop_matches_captum_batched(model, batch):
    from captum.attr import GuidedBackprop

    x, labels = batch
    ours = guided.guided_backprop(model, x, labels)
    theirs = _quiet(GuidedBackprop(model).attribute, x.clone(), target=labels)
    assert checks.rel_error(ours, theirs) <= 1e-6  # measured: 0.0 (bit for bit)
    assert checks.rel_error(ours, guided.input_gradient(model, x, labels)) > 0.1  # guiding changes a lot


def test_guided_backprop_matches_pytorch_grad_cam_per_image(model, batch):
    from pytorch_grad_cam import GuidedBackpropReLUModel

    x, _ = batch
    ours = guided.guided_backprop(model, x)  # targets=None: each image's predicted class
    predicted = model(x).argmax(dim=1)
    library = GuidedBackpropReLUModel(copy.deepcopy(model), device="cpu")
    for i in range(2):
        # One image per call, on a fresh tensor: the library accumulates into the input's .grad.
        theirs = _quiet(library, x[i:i + 1].clone(), target_category=int(predicted[i]))
        assert theirs.shape == (32, 32, 3)
        assert checks.rel_error(ours[i].permute(1, 2, 0), torch.from_numpy(theirs)) <= 1e-6  # measured ~1e-7


def test_pytorch_grad_cam_guided_backprop_quirks(model, batch):
    """Why the comparison above is per image on x.clone(): measured library behaviour (1.5.7)."""
    from pytorch_grad_cam import GuidedBackpropReLUModel

    library_model = copy.deepcopy(model)
    original_relu = library_model.layer1[0].relu
    library = GuidedBackpropReLUModel(library_model, device="cpu")
    image = batch[0][:1].clone()
    first = _quiet(library, image, target_category=3)
    first_copy = first.copy()
    second = _quiet(library, image, target_category=3)
    np.testing.assert_allclose(second, 2 * first_copy, rtol=1e-5, atol=1e-9)  # accumulates in image.grad
    np.testing.assert_array_equal(first, second)  # and the first result changed too: a view of image.grad
    relu = library_model.layer1[0].relu
    assert isinstance(relu, nn.ReLU) and relu is not original_relu and relu.inplace is False


def test_guided_relu_rule_by_hand():
    x = torch.tensor([-1.0, 2.0, 3.0, 0.0, -2.0, 0.5], requires_grad=True)
    incoming = torch.tensor([1.0, -1.0, 2.0, 5.0, -3.0, 0.0])
    output = guided.GuidedReLUFunction.apply(x)
    assert output.tolist() == [0.0, 2.0, 3.0, 0.0, 0.0, 0.5]
    (gradient,) = torch.autograd.grad(output, x, incoming)
    # Only position 2 has input > 0 and incoming gradient > 0.
    assert gradient.tolist() == [0.0, 0.0, 2.0, 0.0, 0.0, 0.0]
    assert incoming.tolist() == [1.0, -1.0, 2.0, 5.0, -3.0, 0.0]  # not modified in place


def _by_hand(net: SharedReLUNet, x: torch.Tensor, targets: torch.Tensor, rule: str) -> torch.Tensor:
    """Backpropagate through the tiny net layer by layer, applying ``rule`` at both ReLUs."""
    x = x.clone().requires_grad_(True)
    z1 = net.conv1(x)
    a1 = z1.detach().clamp(min=0).requires_grad_(True)
    z2 = net.conv2(a1)
    a2 = z2.detach().clamp(min=0)

    def through_relu(pre_activation, gradient):
        gates = {"guided": (pre_activation > 0) & (gradient > 0), "plain": pre_activation > 0,
                 "deconvnet": gradient > 0}
        return gradient * gates[rule]

    grad_a2 = net.fc.weight[targets].view_as(a2)  # d logit[b, t_b] / d a2[b]
    (grad_a1,) = torch.autograd.grad(z2, a1, through_relu(z2.detach(), grad_a2))
    (grad_x,) = torch.autograd.grad(z1, x, through_relu(z1.detach(), grad_a1))
    return grad_x


def test_guided_backprop_by_hand_on_a_net_whose_relu_runs_twice():
    net = SharedReLUNet().eval()
    x = torch.randn(3, 3, 4, 4, generator=torch.Generator().manual_seed(61))
    targets = torch.tensor([4, 0, 2])
    expected = _by_hand(net, x, targets, "guided")
    assert checks.rel_error(guided.guided_backprop(net, x, targets), expected) <= 1e-6
    assert checks.rel_error(guided.input_gradient(net, x, targets), _by_hand(net, x, targets, "plain")) <= 1e-6
    # The hidden check's tiny net tells the three rules apart.
    assert checks.rel_error(_by_hand(net, x, targets, "plain"), expected) > 0.05
    assert checks.rel_error(_by_hand(net, x, targets, "deconvnet"), expected) > 0.05


def _structure(model: nn.Module) -> list:
    return [(name, module, getattr(module, "inplace", None), module.training)
            for name, module in model.named_modules()]


def _same_structure(before: list, after: list) -> bool:
    return len(before) == len(after) and all(
        b[0] == a[0] and b[1] is a[1] and b[2:] == a[2:] for b, a in zip(before, after))


def test_model_restored_after_success(model, batch):
    model.layer2.train()  # a mixed-mode model stays mixed
    before = _structure(model)
    guided.guided_backprop(model, batch[0][:2])
    assert _same_structure(before, _structure(model))
    assert checks.count_hooks(model) == 0
    assert all(parameter.grad is None for parameter in model.parameters())


def test_model_restored_after_exception():
    class Explodes(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    shared = nn.ReLU(inplace=True)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), shared, nn.Sequential(shared, Explodes()))
    before = _structure(model)
    with pytest.raises(RuntimeError, match="boom"):
        guided.guided_backprop(model, torch.randn(1, 3, 5, 5))
    assert _same_structure(before, _structure(model))
    assert model[1] is shared and model[2][0] is shared and shared.inplace


def test_no_accumulation_and_the_callers_x_untouched(model, batch):
    x = batch[0][:2].clone().requires_grad_(True)
    x_before = x.detach().clone()
    first = guided.guided_backprop(model, x, 3)
    second = guided.guided_backprop(model, x, 3)
    assert torch.equal(first, second)
    assert x.grad is None and torch.equal(x.detach(), x_before)
    assert all(parameter.grad is None for parameter in model.parameters())
    with torch.no_grad():  # works inside no_grad too
        assert torch.equal(guided.guided_backprop(model, x, 3), first)


def test_input_gradient_target_forms(model, batch):
    x, _ = batch
    predicted = model(x).argmax(dim=1)
    reference = guided.input_gradient(model, x, predicted.tolist())
    assert torch.equal(guided.input_gradient(model, x), reference)
    assert torch.equal(guided.input_gradient(model, x, 5), guided.input_gradient(model, x, [5] * N_IMAGES))
    assert torch.equal(guided.input_gradient(model, x, np.int64(5)), guided.input_gradient(model, x, (5,) * N_IMAGES))
    with pytest.raises(RuntimeError):
        guided.input_gradient(model, x, [1, 2])  # one target per image, or one for all


def test_vanilla_saliency_matches_captum(model, batch):
    from captum.attr import Saliency

    x, labels = batch
    theirs = _quiet(Saliency(model).attribute, x.clone(), target=labels, abs=True).amax(dim=1)
    ours = guided.vanilla_saliency(model, x, labels)
    assert ours.shape == (N_IMAGES, 32, 32)
    assert checks.rel_error(ours, theirs) <= 1e-6  # same kernels in one process: measured 0 to 1e-7


def test_gradient_to_image_matches_deprocess_image(model, batch):
    from pytorch_grad_cam.utils.image import deprocess_image

    gradients = guided.guided_backprop(model, batch[0])
    images = guided.gradient_to_image(gradients)
    assert isinstance(images, np.ndarray) and images.shape == (N_IMAGES, 32, 32, 3) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    for i in range(N_IMAGES):
        theirs = deprocess_image(gradients[i].permute(1, 2, 0).numpy())
        assert np.abs(np.uint8(images[i] * 255).astype(int) - theirs.astype(int)).max() <= 1
        np.testing.assert_array_equal(guided.gradient_to_image(gradients[i]), images[i])
    np.testing.assert_array_equal(guided.gradient_to_image(np.zeros((3, 2, 2))), np.full((2, 2, 3), 0.5, np.float32))


def test_guided_grad_cam_is_the_elementwise_product(model, batch):
    x, labels = batch
    product = guided.guided_backprop(model, x, labels) * guided.grad_cam(model, "layer3", x, labels)[:, None]
    assert torch.equal(guided.guided_grad_cam(model, "layer3", x, labels), product)

    library = guided.guided_grad_cam(model, "layer4", x, None, cam_fn=library_cams.library_grad_cam)
    expected = guided.guided_backprop(model, x) * library_cams.library_grad_cam(model, "layer4", x)[:, None]
    assert checks.rel_error(library, expected) <= 1e-7

    coarse = torch.rand(N_IMAGES, 8, 8)
    upsampled = guided.guided_grad_cam(model, "layer3", x, labels, cam_fn=lambda *args, **kwargs: coarse)
    expected = guided.guided_backprop(model, x, labels) * torch.nn.functional.interpolate(
        coarse[:, None], size=(32, 32), mode="bilinear", align_corners=False)
    assert checks.rel_error(upsampled, expected) <= 1e-7


def test_library_grad_cam_wrapper_leaves_the_model_alone(model, batch):
    from pytorch_grad_cam import GradCAM

    x, labels = batch
    model.train()
    ours = library_cams.library_grad_cam(model, "layer3", x, labels)
    assert all(module.training for module in model.modules())
    assert checks.count_hooks(model) == 0 and all(p.grad is None for p in model.parameters())
    model.eval()
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with GradCAM(model=model, target_layers=[model.layer3]) as cam:
        theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in labels])
    assert ours.shape == (N_IMAGES, 32, 32) and torch.equal(ours, torch.from_numpy(theirs))
    checks.assert_map_invariants(ours, (N_IMAGES, 32, 32), "library_grad_cam")


def test_solution_markers_and_no_library_in_solutions():
    source = Path(guided.__file__).read_text()
    assert "pytorch_grad_cam" not in source and "captum" not in source
    # One marked body per student function, two for the autograd Function (forward, backward).
    assert len(re.findall(r"^ {4,8}### BEGIN SOLUTION$", source, re.M)) == 7
    assert len(re.findall(r"^ {4,8}### END SOLUTION$", source, re.M)) == 7
