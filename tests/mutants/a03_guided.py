"""Known-wrong Assignment 3 implementations. ``<student_name>__<mistake>``; each loses specific checks.

Each one is pasted into the notebook in place of the student function (or class) of that name,
so it refers to the other student pieces by their plain names, and a mistake in one piece
also reaches the pieces that call it. ``FAILS`` (at the end) lists the checks of
``autograder/engine/checks/a03_guided.py`` each must fail, and it must pass all the others;
``tests/test_checks_a03.py`` asserts the exact sets:

- input_gradient__softmax_score: explains the softmax probability, not the raw logit
  -> check_input_gradient, and through the pieces that call it check_vanilla_saliency and
  check_guided_backprop_values.
- GuidedReLUFunction__plain_backprop: gates the gradient by the forward input only (the plain
  ReLU derivative) -> check_guided_relu_rule, check_guided_backprop_values.
- GuidedReLUFunction__deconvnet: gates by the incoming gradient only (Zeiler & Fergus'
  deconvnet rule) -> check_guided_relu_rule, check_guided_backprop_values.
- GuidedReLUFunction__inplace_grad_output: right masks, but zeroes ``grad_output`` in place
  (the seed report's code without its ``clone()``) -> check_guided_relu_rule only: on these
  models autograd happens not to reuse the modified buffer, so the values still agree.
- guided_backprop__relus_left_replaced: swaps the ReLU modules for guided ones and never puts
  them back -> check_guided_backprop_restores_model.
- guided_backprop__new_relus_restored: puts *new* ``nn.ReLU()`` objects back (inplace=False),
  as pytorch-grad-cam's GuidedBackpropReLUModel does -> check_guided_backprop_restores_model.
- guided_backprop__accumulates: ``x.requires_grad_()`` on the caller's tensor and
  ``.backward()``, returning ``x.grad`` (pytorch-grad-cam issue #401)
  -> check_guided_backprop_no_side_effects.
- vanilla_saliency__no_abs: max over channels of the signed gradient -> check_vanilla_saliency.
- gradient_to_image__batch_statistics: one mean and std for the whole batch instead of per image
  -> check_gradient_to_image.
- guided_grad_cam__no_upsampling: multiplies by the CAM as it comes -> check_guided_grad_cam_upsamples.
- guided_grad_cam__ignores_cam_fn: always calls the global ``grad_cam``
  -> check_guided_grad_cam, check_guided_grad_cam_upsamples.
- vanilla_saliency__sets_train_mode: calls ``model.train()`` first ("to get gradients"); the
  saliency is right for a model in train mode, but the model's mode and BatchNorm statistics
  change -> check_vanilla_saliency.
- guided_grad_cam__interpolates_without_channel: ``F.interpolate`` on the (B, h, w) maps, which
  bilinear resizing refuses (it needs (B, 1, h, w)) -> check_guided_grad_cam,
  check_guided_grad_cam_upsamples.
"""

import torch
import torch.nn.functional as F
from torch import nn

from solutions.guided import GuidedReLUFunction, grad_cam, guided_backprop, input_gradient


def input_gradient__softmax_score(model, x, targets=None):
    x = x.detach().clone().requires_grad_(True)
    probabilities = model(x).softmax(dim=1)
    if targets is None:
        targets = probabilities.argmax(dim=1)
    targets = torch.as_tensor(targets).long().reshape(-1).expand(len(x))
    (gradient,) = torch.autograd.grad(probabilities.gather(1, targets[:, None]).sum(), x)
    return gradient


class GuidedReLUFunction__plain_backprop(torch.autograd.Function):  # noqa: N801
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * (x > 0)


class GuidedReLUFunction__deconvnet(torch.autograd.Function):  # noqa: N801
    @staticmethod
    def forward(ctx, x):
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output.clamp(min=0)


class GuidedReLUFunction__inplace_grad_output(torch.autograd.Function):  # noqa: N801
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        grad_output[x <= 0] = 0
        grad_output[grad_output < 0] = 0
        return grad_output


def guided_backprop__relus_left_replaced(model, x, targets=None):
    class GuidedReLU(nn.Module):
        def forward(self, inputs):
            return GuidedReLUFunction.apply(inputs)

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(parent, name, GuidedReLU())
    return input_gradient(model, x, targets)


def guided_backprop__new_relus_restored(model, x, targets=None):
    class GuidedReLU(nn.Module):
        def forward(self, inputs):
            return GuidedReLUFunction.apply(inputs)

    slots = [(parent, name) for parent in model.modules()
             for name, child in parent.named_children() if isinstance(child, nn.ReLU)]
    try:
        for parent, name in slots:
            setattr(parent, name, GuidedReLU())
        return input_gradient(model, x, targets)
    finally:
        for parent, name in slots:
            setattr(parent, name, nn.ReLU())


def guided_backprop__accumulates(model, x, targets=None):
    handles = [module.register_forward_hook(lambda module, inputs, output: GuidedReLUFunction.apply(output))
               for module in model.modules() if isinstance(module, nn.ReLU)]
    try:
        x.requires_grad_(True)
        logits = model(x)
        if targets is None:
            targets = logits.argmax(dim=1)
        targets = torch.as_tensor(targets).long().reshape(-1).expand(len(x))
        logits.gather(1, targets[:, None]).sum().backward()
        return x.grad
    finally:
        for handle in handles:
            handle.remove()


def vanilla_saliency__no_abs(model, x, targets=None):
    return input_gradient(model, x, targets).amax(dim=1)


def gradient_to_image__batch_statistics(gradients):
    g = torch.as_tensor(gradients).detach().double().cpu()
    g = (g - g.mean()) / (g.std(unbiased=False) + 1e-5)
    return (0.5 + 0.1 * g).clamp(0, 1).movedim(-3, -1).float().numpy()


def guided_grad_cam__no_upsampling(model, layer_name, x, targets=None, cam_fn=None):
    cam_fn = grad_cam if cam_fn is None else cam_fn
    maps = cam_fn(model, layer_name, x, targets=targets)
    return guided_backprop(model, x, targets) * maps[:, None]


def guided_grad_cam__ignores_cam_fn(model, layer_name, x, targets=None, cam_fn=None):
    maps = F.interpolate(grad_cam(model, layer_name, x, targets)[:, None], size=x.shape[-2:],
                         mode="bilinear", align_corners=False)
    return guided_backprop(model, x, targets) * maps


def vanilla_saliency__sets_train_mode(model, x, targets=None):
    model.train()
    return input_gradient(model, x, targets).abs().amax(dim=1)


def guided_grad_cam__interpolates_without_channel(model, layer_name, x, targets=None, cam_fn=None):
    cam_fn = grad_cam if cam_fn is None else cam_fn
    maps = F.interpolate(cam_fn(model, layer_name, x, targets=targets), size=x.shape[-2:], mode="bilinear",
                         align_corners=False)
    return guided_backprop(model, x, targets) * maps[:, None]


RULE, VALUES = "check_guided_relu_rule", "check_guided_backprop_values"
RESTORES, SIDE_EFFECTS = "check_guided_backprop_restores_model", "check_guided_backprop_no_side_effects"
GGC, UPSAMPLES = "check_guided_grad_cam", "check_guided_grad_cam_upsamples"

#: The checks each mutant must fail; it must pass all the others.
FAILS = {
    input_gradient__softmax_score: {"check_input_gradient", "check_vanilla_saliency", VALUES},
    GuidedReLUFunction__plain_backprop: {RULE, VALUES},
    GuidedReLUFunction__deconvnet: {RULE, VALUES},
    GuidedReLUFunction__inplace_grad_output: {RULE},
    guided_backprop__relus_left_replaced: {RESTORES},
    guided_backprop__new_relus_restored: {RESTORES},
    guided_backprop__accumulates: {SIDE_EFFECTS},
    vanilla_saliency__no_abs: {"check_vanilla_saliency"},
    gradient_to_image__batch_statistics: {"check_gradient_to_image"},
    guided_grad_cam__no_upsampling: {UPSAMPLES},
    guided_grad_cam__ignores_cam_fn: {GGC, UPSAMPLES},
    vanilla_saliency__sets_train_mode: {"check_vanilla_saliency"},
    guided_grad_cam__interpolates_without_channel: {GGC, UPSAMPLES},
}


# --- second round (issue 26): a bare number and a silent pass, now named ---------------------------


def guided_backprop__top_level_relus_only(model, x, targets=None):
    class GuidedReLU(nn.Module):
        def forward(self, inputs):
            return GuidedReLUFunction.apply(inputs)

    replaced = {name: child for name, child in model.named_children() if isinstance(child, nn.ReLU)}
    try:  # wrong: named_children() misses the ReLUs inside the blocks (layer1.0.relu, ...)
        for name in replaced:
            setattr(model, name, GuidedReLU())
        return input_gradient(model, x, targets)
    finally:
        for name, relu in replaced.items():
            setattr(model, name, relu)


def guided_grad_cam__targets_not_passed(model, layer_name, x, targets=None, cam_fn=None):
    cam_fn = grad_cam if cam_fn is None else cam_fn
    maps = cam_fn(model, layer_name, x)  # wrong: explains each image's predicted class, not the targets
    if maps.shape[-2:] != x.shape[-2:]:
        maps = F.interpolate(maps[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return guided_backprop(model, x, targets) * maps[:, None]
