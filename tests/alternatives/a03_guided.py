"""Correct Assignment 3 implementations that a good student might write. Each must get full marks.

``tests/mutants/a03_guided.py`` holds known-*wrong* versions of the student pieces; this file
holds known-*right* ones. Each is called ``<student_name>__<approach>`` (a class:
``GuidedReLUFunction__<approach>``), has exactly the signature of the reference in
``solutions/guided.py`` and differs from it in approach (``.backward(inputs=...)`` instead of
``torch.autograd.grad``, hooks instead of swapped modules, numpy instead of torch, another order
of the float operations, ...), not in result: the same values up to float32 round-off, the same
side-effect rules (the caller's ``x`` untouched, no parameter ``.grad``, hooks removed and
modules put back in ``finally``, works inside ``torch.no_grad()``), the same target forms.

Each one is pasted into the notebook in place of the student piece of its name, renamed (see
``tests.grading_harness.mutant_source``), so its body uses only what the notebook has: ``torch``,
``nn``, ``F``, ``np``, the notebook's ``grad_cam`` and the other student pieces by their plain
names (``input_gradient``, ``GuidedReLUFunction``, ``guided_backprop``). Anything else is
imported inside the body. The imports below only make the plain names resolvable when this
module is imported on its own. ``ALTERNATIVES`` (at the end) lists them by student piece; every
hidden check of ``autograder/engine/checks/a03_guided.py`` must pass with each.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from solutions.guided import GuidedReLUFunction, grad_cam, guided_backprop, input_gradient


# --------------------------------------------------------------------------------- input_gradient


def input_gradient__backward_and_grad_attribute(model, x, targets=None):
    # .backward() restricted to the input (inputs=[x]): no parameter gets a .grad; the gradient
    # lands in the .grad of a fresh leaf that nobody else sees.
    leaf = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(leaf)
        if targets is None:
            targets = logits.argmax(dim=1)
        elif isinstance(targets, int):
            targets = [targets] * len(logits)
        targets = torch.as_tensor(targets, device=logits.device).long().flatten()
        if targets.numel() == 1:
            targets = targets.repeat(len(logits))
        score = logits[torch.arange(len(logits), device=logits.device), targets].sum()
        score.backward(inputs=[leaf])
    return leaf.grad.detach()


def input_gradient__one_hot_vector_jacobian(model, x, targets=None):
    # The gradient of sum_b logits[b, t_b] is the vector-Jacobian product with a one-hot seed.
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        batch, num_classes = logits.shape
        if targets is None:
            targets = logits.detach().argmax(dim=1)
        targets = torch.as_tensor(targets, dtype=torch.long, device=logits.device)
        if targets.ndim == 0:
            targets = targets.expand(batch)
        seed = F.one_hot(targets.reshape(batch), num_classes).to(logits.dtype)
        (gradient,) = torch.autograd.grad(logits, x, grad_outputs=seed)
    return gradient.detach()


def input_gradient__backward_parameters_frozen(model, x, targets=None):
    # Plain .backward(), with the parameters' requires_grad switched off for the call (and put
    # back in finally): only the input copy receives a gradient.
    parameters = list(model.parameters())
    flags = [parameter.requires_grad for parameter in parameters]
    x = x.detach().clone().requires_grad_(True)
    try:
        for parameter in parameters:
            parameter.requires_grad_(False)
        with torch.enable_grad():
            logits = model(x)
            if targets is None:
                chosen = logits.max(dim=1).indices
            else:
                chosen = torch.as_tensor(targets, device=logits.device).long().reshape(-1)
                chosen = chosen.expand(logits.shape[0])
            logits.gather(1, chosen.unsqueeze(1)).sum().backward()
    finally:
        for parameter, flag in zip(parameters, flags):
            parameter.requires_grad_(flag)
    return x.grad.detach()


# ------------------------------------------------------------------------------- vanilla_saliency


def vanilla_saliency__max_values(model, x, targets=None):
    return input_gradient(model, x, targets).abs().max(dim=1).values


def vanilla_saliency__max_of_both_signs(model, x, targets=None):
    # max_c |g| = max(max_c g, max_c -g): no abs needed.
    gradient = input_gradient(model, x, targets)
    return torch.maximum(gradient.amax(dim=1), (-gradient).amax(dim=1))


def vanilla_saliency__numpy(model, x, targets=None):
    gradient = input_gradient(model, x, targets)
    saliency = np.abs(gradient.detach().cpu().numpy()).max(axis=1)
    return torch.from_numpy(saliency).to(gradient.device)


# ------------------------------------------------------------------------------ gradient_to_image


def gradient_to_image__torch_statistics(gradients):
    g = torch.as_tensor(gradients).detach().cpu().double()
    single = g.dim() == 3
    if single:
        g = g.unsqueeze(0)
    mean = g.mean(dim=(1, 2, 3), keepdim=True)
    std = g.std(dim=(1, 2, 3), keepdim=True, unbiased=False)
    images = (0.5 + 0.1 * (g - mean) / (std + 1e-5)).clamp(0.0, 1.0).permute(0, 2, 3, 1)
    images = images.float().numpy()
    return images[0] if single else images


def gradient_to_image__numpy_per_image_loop(gradients):
    def one_image(g):  # (3, H, W) -> (H, W, 3)
        g = (g - g.mean()) / (g.std() + 1e-5)
        return np.clip(0.5 + 0.1 * g, 0.0, 1.0).transpose(1, 2, 0).astype(np.float32)

    if isinstance(gradients, torch.Tensor):
        gradients = gradients.detach().cpu().numpy()
    batch = np.asarray(gradients, dtype=np.float64)
    if batch.ndim == 3:
        return one_image(batch)
    return np.stack([one_image(image) for image in batch])


def gradient_to_image__float32_flattened(gradients):
    # Statistics of each flattened image, computed in float32 with the population std by hand.
    if isinstance(gradients, torch.Tensor):
        array = gradients.detach().cpu().numpy()
    else:
        array = np.asarray(gradients)
    array = np.array(array, dtype=np.float32)  # a copy: the caller's array is never touched
    shape = array.shape
    flat = array.reshape(-1, int(np.prod(shape[-3:])))
    centred = flat - flat.mean(axis=1, keepdims=True)
    std = np.sqrt((centred ** 2).mean(axis=1, keepdims=True))
    scaled = np.clip(0.5 + 0.1 * centred / (std + 1e-5), 0.0, 1.0).reshape(shape)
    return np.moveaxis(scaled, -3, -1).astype(np.float32)


# ----------------------------------------------------------------------------- GuidedReLUFunction


class GuidedReLUFunction__mask_from_output(torch.autograd.Function):  # noqa: N801
    # Saves the output: y > 0 exactly where x > 0. The backward multiplies by a 0/1 mask.
    @staticmethod
    def forward(ctx, x):
        output = torch.relu(x)
        ctx.save_for_backward(output)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        (output,) = ctx.saved_tensors
        mask = (output > 0) & (grad_output > 0)
        return grad_output * mask.to(grad_output.dtype)


class GuidedReLUFunction__masked_fill(torch.autograd.Function):  # noqa: N801
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output.masked_fill((x <= 0) | (grad_output <= 0), 0.0)  # out of place


class GuidedReLUFunction__setup_context_clamp(torch.autograd.Function):  # noqa: N801
    # The PyTorch 2 style: forward without ctx, setup_context saves what backward needs.
    @staticmethod
    def forward(x):
        return torch.where(x > 0, x, torch.zeros_like(x))

    @staticmethod
    def setup_context(ctx, inputs, output):
        (x,) = inputs
        ctx.save_for_backward(x > 0)

    @staticmethod
    def backward(ctx, grad_output):
        (active,) = ctx.saved_tensors
        return grad_output.clamp(min=0) * active


# -------------------------------------------------------------------------------- guided_backprop


def guided_backprop__forward_hooks(model, x, targets=None):
    # A forward hook on every ReLU module passes its output through the guided function: its
    # backward gates by [y > 0][R > 0], the ReLU's own backward by [x > 0] (the same gate again).
    def guide(module, inputs, output):
        return GuidedReLUFunction.apply(output)

    handles = []
    try:
        for module in model.modules():
            if isinstance(module, nn.ReLU):
                handles.append(module.register_forward_hook(guide))
        return input_gradient(model, x, targets)
    finally:
        for handle in handles:
            handle.remove()


def guided_backprop__tensor_hooks(model, x, targets=None):
    # No autograd.Function: a forward hook puts a tensor hook on each ReLU output that drops
    # the negative incoming gradient; the ReLU's own backward then applies the [x > 0] gate.
    def drop_negative(gradient):
        return gradient.clamp(min=0)

    def on_output(module, inputs, output):
        if output.requires_grad:
            output.register_hook(drop_negative)

    relus = [module for module in model.modules() if isinstance(module, nn.ReLU)]
    handles = []
    try:
        for relu in relus:
            handles.append(relu.register_forward_hook(on_output))
        return input_gradient(model, x, targets)
    finally:
        while handles:
            handles.pop().remove()


def guided_backprop__swap_by_dotted_name(model, x, targets=None):
    # One new guided module per slot, found by dotted name (duplicates included: a module
    # registered in two places is swapped in both); the input gradient computed right here. The
    # module's class happens to carry pytorch-grad-cam's name: a name is no evidence of library use.
    class GuidedBackpropReLU(nn.Module):
        def forward(self, inputs):
            return GuidedReLUFunction.apply(inputs)

    slots = []
    for name, module in model.named_modules(remove_duplicate=False):
        if isinstance(module, nn.ReLU) and name:
            parent_name, _, child_name = name.rpartition(".")
            slots.append((model.get_submodule(parent_name), child_name, module))
    try:
        for parent, child_name, _ in slots:
            setattr(parent, child_name, GuidedBackpropReLU())
        inputs = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            logits = model(inputs)
            if targets is None:
                targets = logits.argmax(dim=1)
            targets = torch.as_tensor(targets, device=logits.device).long().reshape(-1).expand(len(logits))
            score = logits.gather(1, targets[:, None]).sum()
            return torch.autograd.grad(score, inputs)[0]
    finally:
        for parent, child_name, original in reversed(slots):
            setattr(parent, child_name, original)


def guided_backprop__full_backward_hooks(model, x, targets=None):
    # register_full_backward_hook on every ReLU: its grad_input is R * [x > 0], and clamping it
    # at 0 drops where R < 0. Full backward hooks refuse in-place modules, so the ReLUs compute
    # out of place during the call; their inplace flags are put back in finally.
    def clamp_grad_input(module, grad_input, grad_output):
        return tuple(None if g is None else g.clamp(min=0) for g in grad_input)

    relus = [module for module in model.modules() if isinstance(module, nn.ReLU)]
    flags = [relu.inplace for relu in relus]
    handles = []
    try:
        for relu in relus:
            relu.inplace = False
            handles.append(relu.register_full_backward_hook(clamp_grad_input))
        return input_gradient(model, x, targets)
    finally:
        for handle in handles:
            handle.remove()
        for relu, flag in zip(relus, flags):
            relu.inplace = flag


# -------------------------------------------------------------------------------- guided_grad_cam


def guided_grad_cam__unsqueeze_when_smaller(model, layer_name, x, targets=None, cam_fn=None):
    if cam_fn is None:
        cam_fn = grad_cam
    maps = cam_fn(model, layer_name, x, targets=targets)
    if not isinstance(maps, torch.Tensor):
        maps = torch.as_tensor(np.asarray(maps))
    gradients = guided_backprop(model, x, targets)
    maps = maps.to(device=gradients.device, dtype=gradients.dtype)
    if tuple(maps.shape[-2:]) != tuple(x.shape[-2:]):
        maps = F.interpolate(maps.unsqueeze(1), size=tuple(x.shape[-2:]), mode="bilinear",
                             align_corners=False).squeeze(1)
    return gradients * maps.unsqueeze(1)


def guided_grad_cam__targets_first_einsum(model, layer_name, x, targets=None, cam_fn=None):
    # Resolve targets=None to the predicted classes once, so both parts get the same list.
    cam_fn = cam_fn or grad_cam
    if targets is None:
        with torch.no_grad():
            targets = model(x).argmax(dim=1).tolist()
    gradients = guided_backprop(model, x, targets)
    maps = torch.as_tensor(cam_fn(model, layer_name, x, targets=targets)).float()
    height, width = x.shape[-2:]
    upsampled = F.interpolate(maps[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    return torch.einsum("bchw,bhw->bchw", gradients, upsampled.to(gradients))


ALTERNATIVES = {
    "input_gradient": [input_gradient__backward_and_grad_attribute, input_gradient__one_hot_vector_jacobian,
                       input_gradient__backward_parameters_frozen],
    "vanilla_saliency": [vanilla_saliency__max_values, vanilla_saliency__max_of_both_signs, vanilla_saliency__numpy],
    "gradient_to_image": [gradient_to_image__torch_statistics, gradient_to_image__numpy_per_image_loop,
                          gradient_to_image__float32_flattened],
    "GuidedReLUFunction": [GuidedReLUFunction__mask_from_output, GuidedReLUFunction__masked_fill,
                           GuidedReLUFunction__setup_context_clamp],
    "guided_backprop": [guided_backprop__forward_hooks, guided_backprop__tensor_hooks,
                        guided_backprop__swap_by_dotted_name, guided_backprop__full_backward_hooks],
    "guided_grad_cam": [guided_grad_cam__unsqueeze_when_smaller, guided_grad_cam__targets_first_einsum],
}
