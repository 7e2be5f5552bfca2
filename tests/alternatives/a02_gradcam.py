"""Correct Assignment 2 implementations (Grad-CAM) a good student might write, other than the reference.

Each ``<student_name>__<approach>`` has the student function's signature and gives the
reference's result up to float32 round-off, by another valid route: ``backward()`` with a
tensor hook (cleaned up afterwards) instead of ``torch.autograd.grad``, one image at a time
instead of a batch, ``einsum`` instead of broadcasting, a Grad-CAM that uses none of the
helpers. Every one must get full marks, visible and hidden checks alike (tests/test_alternatives.py,
and the grading tests through nbgrader). A check that fails one of these is a bug in the check.
Their source runs when pasted alone into notebook 02: only ``torch``, ``F``, ``nn`` and the
notebook's own functions (``activations_and_gradients``, ``gradcam_channel_weights``, ``scale_cams``).
"""

import torch
import torch.nn.functional as F

from solutions.gradcam import activations_and_gradients, gradcam_channel_weights, scale_cams


# --- activations_and_gradients -------------------------------------------------------------------

def activations_and_gradients__tensor_hook_and_backward(model, layer_name, x, targets=None):
    """pytorch-grad-cam's design done right: the forward hook keeps a *copy* of A and registers
    a tensor hook (called with the gradient of A's value before any later in-place change);
    ``backward()`` runs from the score of a detached copy of x, and every parameter's ``.grad``
    is put back as it was afterwards."""
    kept = {}

    def forward_hook(module, inputs, output):
        kept["A"] = output.detach().clone()
        output.register_hook(lambda grad: kept.__setitem__("G", grad.detach().clone()))

    saved_grads = [(parameter, parameter.grad) for parameter in model.parameters()]
    handle = model.get_submodule(layer_name).register_forward_hook(forward_hook)
    try:
        with torch.set_grad_enabled(True):
            logits = model(x.detach().clone().requires_grad_(True))
            if targets is None:
                chosen = logits.argmax(dim=1).tolist()
            elif isinstance(targets, int):
                chosen = [targets] * len(logits)
            else:
                chosen = [int(t) for t in targets]
            score = sum(logits[b, c] for b, c in enumerate(chosen))
            score.backward()
    finally:
        handle.remove()
        for parameter, grad in saved_grads:
            parameter.grad = grad
    return kept["A"], kept["G"], logits.detach()


def activations_and_gradients__one_hot_score(model, layer_name, x, targets=None):
    """The hook returns a copy; the score is ``(logits * one_hot(targets)).sum()``."""
    kept = []

    def forward_hook(module, inputs, output):
        kept.append(output)
        return output.clone()

    handle = model.get_submodule(layer_name).register_forward_hook(forward_hook)
    try:
        with torch.enable_grad():
            logits = model(x)
            if targets is None:
                targets = logits.argmax(dim=1)
            targets = torch.as_tensor(targets, device=logits.device).long()
            if targets.dim() == 0:
                targets = targets.repeat(logits.shape[0])
            one_hot = F.one_hot(targets, num_classes=logits.shape[1]).to(logits.dtype)
            A = kept[-1]
            G = torch.autograd.grad((logits * one_hot).sum(), A)[0]
    finally:
        handle.remove()
    return A.detach(), G.detach(), logits.detach()


def activations_and_gradients__per_image_loop(model, layer_name, x, targets=None):
    """One forward and one gradient per image (a batch of one each), stacked at the end."""
    all_a, all_g, all_logits = [], [], []
    if targets is not None and not isinstance(targets, int):
        targets = [int(t) for t in targets]
    for b in range(x.shape[0]):
        kept = {}

        def forward_hook(module, inputs, output):
            kept["A"] = output
            return output.clone()

        handle = model.get_submodule(layer_name).register_forward_hook(forward_hook)
        try:
            with torch.enable_grad():
                logits = model(x[b:b + 1])
                if targets is None:
                    target = int(logits[0].argmax())
                elif isinstance(targets, int):
                    target = targets
                else:
                    target = targets[b]
                (gradient,) = torch.autograd.grad(logits[0, target], kept["A"])
        finally:
            handle.remove()
        all_a.append(kept["A"].detach())
        all_g.append(gradient.detach())
        all_logits.append(logits.detach())
    return torch.cat(all_a), torch.cat(all_g), torch.cat(all_logits)


# --- gradcam_channel_weights ---------------------------------------------------------------------

def gradcam_channel_weights__sum_over_count(gradients):
    """Sum over the positions divided by their number."""
    return gradients.sum(dim=(2, 3)) / (gradients.shape[2] * gradients.shape[3])


def gradcam_channel_weights__adaptive_avg_pool(gradients):
    """A global average pool layer, flattened."""
    return F.adaptive_avg_pool2d(gradients, 1).flatten(1)


def gradcam_channel_weights__flatten_mean(gradients):
    """Positions flattened into one axis, then the mean over it."""
    return gradients.flatten(start_dim=2).mean(dim=-1)


# --- scale_cams ----------------------------------------------------------------------------------

def scale_cams__per_image_loop(cams, size):
    """Each map on its own with ``.min()``/``.max()``, interpolated as a (1, 1, h, w) batch."""
    if isinstance(size, int):
        size = (size, size)
    out = []
    for cam in cams:
        cam = torch.clamp(cam, min=0)
        cam = (cam - cam.min()) / (cam.max() - cam.min() + 1e-7)
        cam = F.interpolate(cam[None, None], size=tuple(size), mode="bilinear", align_corners=False)[0, 0]
        cam = torch.clamp(cam, min=0)
        out.append((cam - cam.min()) / (cam.max() - cam.min() + 1e-7))
    return torch.stack(out)


def scale_cams__flattened_views(cams, size):
    """Min and max over a flattened view, ``.relu()`` as a method, ``unsqueeze``/``squeeze`` by axis."""
    size = (size, size) if isinstance(size, int) else tuple(size)

    def normalise(maps):
        flat = maps.reshape(maps.shape[0], -1)
        low = flat.min(dim=1).values.view(-1, 1, 1)
        high = flat.max(dim=1).values.view(-1, 1, 1)
        return (maps - low) / (high - low + 1e-7)

    maps = normalise(cams.relu())
    maps = F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
    return normalise(maps.relu())


# --- grad_cam ------------------------------------------------------------------------------------

def grad_cam__einsum(model, layer_name, x, targets=None):
    """The helpers, with the weighted channel sum as an ``einsum``."""
    activations, gradients, _ = activations_and_gradients(model, layer_name, x, targets)
    weights = gradcam_channel_weights(gradients)
    cams = torch.einsum("bk,bkhw->bhw", weights, activations)
    return scale_cams(cams, x.shape[2:])


def grad_cam__per_image_loop(model, layer_name, x, targets=None):
    """The helpers on one image at a time, maps concatenated."""
    maps = []
    for b in range(len(x)):
        if targets is None or isinstance(targets, int):
            target = targets
        else:
            target = [int(targets[b])]
        activations, gradients, _ = activations_and_gradients(model, layer_name, x[b:b + 1], target)
        cam = (gradcam_channel_weights(gradients)[:, :, None, None] * activations).sum(dim=1)
        maps.append(scale_cams(cam, (x.shape[2], x.shape[3])))
    return torch.cat(maps)


def grad_cam__self_contained(model, layer_name, x, targets=None):
    """No helpers at all: tensor hook on a copied output, ``backward()`` with the parameters'
    ``.grad`` restored, ``clamp`` and min-max written out, ``F.interpolate`` on (B, 1, h, w)."""
    kept = {}

    def forward_hook(module, inputs, output):
        kept["A"] = output.detach().clone()
        output.register_hook(lambda grad: kept.__setitem__("G", grad))

    saved_grads = [(parameter, parameter.grad) for parameter in model.parameters()]
    handle = model.get_submodule(layer_name).register_forward_hook(forward_hook)
    try:
        with torch.enable_grad():
            logits = model(x.detach().requires_grad_(True))
            if targets is None:
                classes = logits.argmax(dim=1)
            else:
                classes = torch.as_tensor(targets, device=logits.device).long().reshape(-1).expand(len(logits))
            logits[torch.arange(len(logits)), classes].sum().backward()
    finally:
        handle.remove()
        for parameter, grad in saved_grads:
            parameter.grad = grad
    A, G = kept["A"], kept["G"].detach()
    cam = torch.clamp((G.mean(dim=(2, 3), keepdim=True) * A).sum(dim=1, keepdim=True), min=0)

    def min_max(maps):
        low = maps.amin(dim=(2, 3), keepdim=True)
        high = maps.amax(dim=(2, 3), keepdim=True)
        return (maps - low) / (high - low + 1e-7)

    cam = F.interpolate(min_max(cam), size=x.shape[-2:], mode="bilinear", align_corners=False)
    return min_max(torch.clamp(cam, min=0))[:, 0]


#: Every alternative, by the student function it stands in for.
ALTERNATIVES = {
    "activations_and_gradients": [activations_and_gradients__tensor_hook_and_backward,
                                  activations_and_gradients__one_hot_score,
                                  activations_and_gradients__per_image_loop],
    "gradcam_channel_weights": [gradcam_channel_weights__sum_over_count, gradcam_channel_weights__adaptive_avg_pool,
                                gradcam_channel_weights__flatten_mean],
    "scale_cams": [scale_cams__per_image_loop, scale_cams__flattened_views],
    "grad_cam": [grad_cam__einsum, grad_cam__per_image_loop, grad_cam__self_contained],
}
