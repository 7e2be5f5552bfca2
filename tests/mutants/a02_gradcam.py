"""Known-wrong versions of Assignment 2's student functions (Grad-CAM), for testing the hidden checks.

Each mutant has a student function's signature and makes one known mistake. ``MUTANTS`` says
which student function it replaces and exactly which checks of
``autograder.engine.checks.a02_gradcam`` it must fail (it must pass the other checks of that function);
``tests/test_checks_a02.py`` asserts the exact sets.

The mutants are built from the reference pieces (``solutions.gradcam``,
``solutions.cam_variants``) with one step changed, so each differs from the reference only in
its mistake.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F

from solutions import cam_variants
from solutions import gradcam as reference


# --- activations_and_gradients -------------------------------------------------------------------

def _activations_and_gradients(model, layer_name, x, targets=None, *, score="sum", ignore_targets=False,
                               enable_grad=True, full_backward=False, remove_hook="finally", copy_output=True):
    """The reference algorithm with switches for the mistakes below (the defaults are correct).

    ``score``: "sum" of raw logits (right), "mean" over the batch, or "softmax" probabilities.
    ``remove_hook``: "finally" (right), "after_forward" (not when the forward raises) or "never".
    ``full_backward``: ``score.backward()`` instead of ``torch.autograd.grad`` (leaves ``.grad``).
    ``copy_output``: the hook hands the rest of the network a copy (right); without it, an
    in-place ReLU after the layer overwrites ``A`` and the gradient is taken after that ReLU.
    """
    recorded = {}

    def save_output(module, inputs, output):
        if full_backward:
            output.retain_grad()
        recorded["activations"] = output
        return output.clone() if copy_output else None

    handle = model.get_submodule(layer_name).register_forward_hook(save_output)
    try:
        with torch.enable_grad() if enable_grad else nullcontext():
            logits = model(x)
            if remove_hook == "after_forward":
                handle.remove()
            activations = recorded["activations"]
            if targets is None or ignore_targets:
                targets = logits.argmax(dim=1)
            targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1).expand(len(logits))
            scores = torch.softmax(logits, dim=1) if score == "softmax" else logits
            picked = scores.gather(1, targets[:, None])
            total = picked.mean() if score == "mean" else picked.sum()
            if full_backward:
                total.backward()
                gradients = activations.grad
            else:
                (gradients,) = torch.autograd.grad(total, activations)
    finally:
        if remove_hook == "finally":
            handle.remove()
    return activations.detach(), gradients.detach(), logits.detach()


aag_softmax_score = partial(_activations_and_gradients, score="softmax")
aag_softmax_score.__doc__ = "Differentiates the softmax probability instead of the raw logit."
aag_mean_score = partial(_activations_and_gradients, score="mean")
aag_mean_score.__doc__ = "Averages the scores over the batch instead of summing: gradients 1/B too small."
aag_ignores_targets = partial(_activations_and_gradients, ignore_targets=True)
aag_ignores_targets.__doc__ = "Always explains the predicted class, whatever targets say."
aag_without_enable_grad = partial(_activations_and_gradients, enable_grad=False)
aag_without_enable_grad.__doc__ = "No torch.enable_grad(): fails when called inside torch.no_grad()."
aag_full_backward = partial(_activations_and_gradients, full_backward=True)
aag_full_backward.__doc__ = "score.backward(): every weight's .grad is computed and left behind."
aag_hook_not_in_finally = partial(_activations_and_gradients, remove_hook="after_forward")
aag_hook_not_in_finally.__doc__ = "Removes the hook after the forward pass, not in finally."
aag_hook_never_removed = partial(_activations_and_gradients, remove_hook="never")
aag_hook_never_removed.__doc__ = "Never removes the forward hook."
aag_overwritten_output = partial(_activations_and_gradients, copy_output=False)
aag_overwritten_output.__doc__ = ("Keeps the layer's output tensor itself: an in-place ReLU after the layer "
                                  "overwrites A, and autograd.grad then differentiates after that ReLU.")


def activations_and_gradients__library_aliasing(model, layer_name, x, targets=None):
    """pytorch-grad-cam's recipe on the CPU: A = output.detach() (shares storage, so an in-place
    ReLU after the layer overwrites it) and G from a tensor hook (the gradient before that ReLU)."""
    recorded = {}

    def save_output(module, inputs, output):
        recorded["activations"] = output.detach()
        output.register_hook(lambda grad: recorded.__setitem__("gradients", grad))

    handle = model.get_submodule(layer_name).register_forward_hook(save_output)
    try:
        with torch.enable_grad():
            leaf = x.detach().clone().requires_grad_(True)
            logits = model(leaf)
            if targets is None:
                targets = logits.argmax(dim=1)
            targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1).expand(len(logits))
            torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), leaf)
    finally:
        handle.remove()
    return recorded["activations"], recorded["gradients"].detach(), logits.detach()


aag_library_aliasing = activations_and_gradients__library_aliasing


# --- gradcam_channel_weights ---------------------------------------------------------------------

def weights_max_pooled(gradients):
    """Max- instead of average-pooled gradients."""
    return gradients.amax(dim=(2, 3))


def weights_summed(gradients):
    """Sum instead of mean over the positions (scaled by h*w)."""
    return gradients.sum(dim=(2, 3))


# --- scale_cams ----------------------------------------------------------------------------------

def _scale_cams(cams, size, *, divide_by_max_only=False, over_whole_batch=False, once_after_upsampling=False,
                mode="bilinear"):
    """The reference post-processing with switches for the mistakes below (the defaults are correct)."""
    dims = (0, 1, 2) if over_whole_batch else (1, 2)

    def normalize(maps):
        shifted = maps if divide_by_max_only else maps - maps.amin(dim=dims, keepdim=True)
        return shifted / (shifted.amax(dim=dims, keepdim=True) + cam_variants.EPSILON)

    maps = F.relu(cams)
    if not once_after_upsampling:
        maps = normalize(maps)
    extra = {} if mode == "nearest" else {"align_corners": False}
    maps = F.interpolate(maps[:, None], size=size, mode=mode, **extra)[:, 0]
    return normalize(F.relu(maps))


scale_cams_divide_by_max_only = partial(_scale_cams, divide_by_max_only=True)
scale_cams_divide_by_max_only.__doc__ = "Divides by the maximum without subtracting the minimum."
scale_cams_over_whole_batch = partial(_scale_cams, over_whole_batch=True)
scale_cams_over_whole_batch.__doc__ = "Min and max of the whole batch instead of per image."
scale_cams_once_after_upsampling = partial(_scale_cams, once_after_upsampling=True)
scale_cams_once_after_upsampling.__doc__ = "One min-max after upsampling only (differs through the 1e-7)."
scale_cams_nearest_upsampling = partial(_scale_cams, mode="nearest")
scale_cams_nearest_upsampling.__doc__ = "F.interpolate's default mode (nearest) instead of bilinear."


# --- grad_cam ------------------------------------------------------------------------------------

def _grad_cam(model, layer_name, x, targets=None, *, activations_and_gradients=reference.activations_and_gradients,
              scale_cams=reference.scale_cams, weights_from="gradients", set_eval=False):
    """The reference Grad-CAM from exchangeable pieces (the defaults are correct)."""
    if set_eval:
        model.eval()
    activations, gradients, _ = activations_and_gradients(model, layer_name, x, targets)
    source = gradients if weights_from == "gradients" else activations
    weights = reference.gradcam_channel_weights(source)
    cams = cam_variants.weighted_channel_sum(weights, activations)
    return scale_cams(cams, tuple(x.shape[-2:]))


grad_cam_without_relu = partial(cam_variants.grad_cam_variant, relu=False)
grad_cam_without_relu.__doc__ = "No ReLU: negative evidence is kept and shifts the min-max."
grad_cam_max_pooled_gradients = partial(cam_variants.grad_cam_variant, pooling="max")
grad_cam_max_pooled_gradients.__doc__ = "Max- instead of average-pooled gradients."
grad_cam_weights_from_activations = partial(_grad_cam, weights_from="activations")
grad_cam_weights_from_activations.__doc__ = "Channel weights from the activations instead of the gradients."
grad_cam_divide_by_max_only = partial(_grad_cam, scale_cams=scale_cams_divide_by_max_only)
grad_cam_divide_by_max_only.__doc__ = "Normalises by dividing by the maximum, without subtracting the minimum."
grad_cam_ignores_targets = partial(_grad_cam, activations_and_gradients=aag_ignores_targets)
grad_cam_ignores_targets.__doc__ = "Always explains the predicted class."
grad_cam_overwritten_output = partial(_grad_cam, activations_and_gradients=aag_overwritten_output)
grad_cam_overwritten_output.__doc__ = "Grad-CAM of an overwritten output (no copy before an in-place ReLU)."
grad_cam_library_aliasing = partial(_grad_cam, activations_and_gradients=aag_library_aliasing)
grad_cam_library_aliasing.__doc__ = "pytorch-grad-cam's CPU aliasing: A after the in-place ReLU, G before it."
grad_cam_hook_never_removed = partial(_grad_cam, activations_and_gradients=aag_hook_never_removed)
grad_cam_hook_never_removed.__doc__ = "Leaves the forward hook registered."
grad_cam_hook_not_in_finally = partial(_grad_cam, activations_and_gradients=aag_hook_not_in_finally)
grad_cam_hook_not_in_finally.__doc__ = "Leaves the hook registered when the forward pass raises."
grad_cam_full_backward = partial(_grad_cam, activations_and_gradients=aag_full_backward)
grad_cam_full_backward.__doc__ = "Uses score.backward(): weight gradients left in .grad."
grad_cam_sets_eval_mode = partial(_grad_cam, set_eval=True)
grad_cam_sets_eval_mode.__doc__ = "Calls model.eval() (as pytorch-grad-cam does): changes the caller's model."


# --- what each mutant must fail ------------------------------------------------------------------

@dataclass(frozen=True)
class Mutant:
    replaces: str          # the student function it stands in for
    function: object
    fails: frozenset       # names of the checks it must fail; it must pass that function's others


def _mutant(replaces, function, *fails):
    return Mutant(replaces, function, frozenset(f"check_{name}" for name in fails))


MUTANTS = {
    "aag_softmax_score": _mutant("activations_and_gradients", aag_softmax_score,
                                 "activations_and_gradients_values", "activations_and_gradients_targets"),
    "aag_mean_score": _mutant("activations_and_gradients", aag_mean_score,
                              "activations_and_gradients_values", "activations_and_gradients_targets"),
    "aag_ignores_targets": _mutant("activations_and_gradients", aag_ignores_targets,
                                   "activations_and_gradients_targets"),
    "aag_without_enable_grad": _mutant("activations_and_gradients", aag_without_enable_grad,
                                       "activations_and_gradients_values"),
    "aag_full_backward": _mutant("activations_and_gradients", aag_full_backward,
                                 "activations_and_gradients_cleanup"),
    "aag_hook_not_in_finally": _mutant("activations_and_gradients", aag_hook_not_in_finally,
                                       "activations_and_gradients_cleanup"),
    "aag_hook_never_removed": _mutant("activations_and_gradients", aag_hook_never_removed,
                                      "activations_and_gradients_cleanup"),
    "aag_overwritten_output": _mutant("activations_and_gradients", aag_overwritten_output,
                                      "activations_and_gradients_values"),
    "aag_library_aliasing": _mutant("activations_and_gradients", aag_library_aliasing,
                                    "activations_and_gradients_values"),
    "weights_max_pooled": _mutant("gradcam_channel_weights", weights_max_pooled, "gradcam_channel_weights"),
    "weights_summed": _mutant("gradcam_channel_weights", weights_summed, "gradcam_channel_weights"),
    "scale_cams_divide_by_max_only": _mutant("scale_cams", scale_cams_divide_by_max_only,
                                             "scale_cams_values", "scale_cams_edge_cases"),
    "scale_cams_over_whole_batch": _mutant("scale_cams", scale_cams_over_whole_batch,
                                           "scale_cams_values", "scale_cams_edge_cases"),
    "scale_cams_once_after_upsampling": _mutant("scale_cams", scale_cams_once_after_upsampling,
                                                "scale_cams_edge_cases"),
    "scale_cams_nearest_upsampling": _mutant("scale_cams", scale_cams_nearest_upsampling,
                                             "scale_cams_values", "scale_cams_edge_cases"),
    "grad_cam_without_relu": _mutant("grad_cam", grad_cam_without_relu,
                                     "grad_cam_other_layers", "grad_cam_targets_and_batches", "grad_cam_tiny_cnn"),
    "grad_cam_max_pooled_gradients": _mutant("grad_cam", grad_cam_max_pooled_gradients,
                                             "grad_cam_other_layers", "grad_cam_tiny_cnn"),
    "grad_cam_weights_from_activations": _mutant("grad_cam", grad_cam_weights_from_activations,
                                                 "grad_cam_other_layers", "grad_cam_targets_and_batches",
                                                 "grad_cam_tiny_cnn"),
    "grad_cam_divide_by_max_only": _mutant("grad_cam", grad_cam_divide_by_max_only,
                                           "grad_cam_targets_and_batches", "grad_cam_tiny_cnn"),
    "grad_cam_ignores_targets": _mutant("grad_cam", grad_cam_ignores_targets,
                                        "grad_cam_targets_and_batches", "grad_cam_tiny_cnn"),
    "grad_cam_overwritten_output": _mutant("grad_cam", grad_cam_overwritten_output, "grad_cam_other_layers"),
    "grad_cam_library_aliasing": _mutant("grad_cam", grad_cam_library_aliasing, "grad_cam_other_layers"),
    "grad_cam_hook_never_removed": _mutant("grad_cam", grad_cam_hook_never_removed, "grad_cam_side_effects"),
    "grad_cam_hook_not_in_finally": _mutant("grad_cam", grad_cam_hook_not_in_finally, "grad_cam_side_effects"),
    "grad_cam_full_backward": _mutant("grad_cam", grad_cam_full_backward, "grad_cam_side_effects"),
    "grad_cam_sets_eval_mode": _mutant("grad_cam", grad_cam_sets_eval_mode, "grad_cam_side_effects"),
}


# --- the same mistakes as a student writes them in notebook 02 -----------------------------------
#
# tests/test_grading_a02.py pastes these into the solved notebook in place of the student's
# ``grad_cam`` (``<student function>__<mistake>``, see tests/grading_harness.py). Their source
# must run in the notebook: it uses only ``torch``, ``F`` and the student's own (here correct)
# helpers ``activations_and_gradients``, ``gradcam_channel_weights`` and ``scale_cams``.
# ``NOTEBOOK_MUTANTS`` ties each to its entry of ``MUTANTS``: it fails exactly the same checks.

from solutions.gradcam import activations_and_gradients, gradcam_channel_weights, scale_cams  # noqa: E402


def grad_cam__without_relu(model, layer_name, x, targets=None):
    activations, gradients, _ = activations_and_gradients(model, layer_name, x, targets)
    weights = gradcam_channel_weights(gradients)
    cams = (weights[:, :, None, None] * activations).sum(dim=1)

    def min_max(maps):
        maps = maps - maps.amin(dim=(1, 2), keepdim=True)
        return maps / (maps.amax(dim=(1, 2), keepdim=True) + 1e-7)

    upsampled = F.interpolate(min_max(cams)[:, None], size=tuple(x.shape[-2:]), mode="bilinear",
                              align_corners=False)[:, 0]
    return min_max(upsampled)


def grad_cam__max_pooled_gradients(model, layer_name, x, targets=None):
    activations, gradients, _ = activations_and_gradients(model, layer_name, x, targets)
    weights = gradients.amax(dim=(2, 3))
    cams = (weights[:, :, None, None] * activations).sum(dim=1)
    return scale_cams(cams, tuple(x.shape[-2:]))


def grad_cam__weights_from_activations(model, layer_name, x, targets=None):
    activations, gradients, _ = activations_and_gradients(model, layer_name, x, targets)
    weights = gradcam_channel_weights(activations)
    cams = (weights[:, :, None, None] * activations).sum(dim=1)
    return scale_cams(cams, tuple(x.shape[-2:]))


def grad_cam__divide_by_max_only(model, layer_name, x, targets=None):
    activations, gradients, _ = activations_and_gradients(model, layer_name, x, targets)
    weights = gradcam_channel_weights(gradients)
    cams = F.relu((weights[:, :, None, None] * activations).sum(dim=1))
    cams = cams / (cams.amax(dim=(1, 2), keepdim=True) + 1e-7)
    upsampled = F.relu(F.interpolate(cams[:, None], size=tuple(x.shape[-2:]), mode="bilinear",
                                     align_corners=False)[:, 0])
    return upsampled / (upsampled.amax(dim=(1, 2), keepdim=True) + 1e-7)


def grad_cam__hook_never_removed(model, layer_name, x, targets=None):
    recorded = {}

    def save_output(module, inputs, output):
        recorded["activations"] = output
        return output.clone()  # right: later in-place operations change the copy

    model.get_submodule(layer_name).register_forward_hook(save_output)
    with torch.enable_grad():
        logits = model(x)
        activations = recorded["activations"]
        if targets is None:
            targets = logits.argmax(dim=1)
        targets = torch.as_tensor(targets, dtype=torch.long, device=logits.device).reshape(-1).expand(len(logits))
        score = logits.gather(1, targets[:, None]).sum()
        (gradients,) = torch.autograd.grad(score, activations)
    weights = gradcam_channel_weights(gradients)
    cams = (weights[:, :, None, None] * activations.detach()).sum(dim=1)
    return scale_cams(cams, tuple(x.shape[-2:]))


#: The issue's five known mistakes as notebook code: ``{MUTANTS key: function}``.
NOTEBOOK_MUTANTS = {
    "grad_cam_without_relu": grad_cam__without_relu,
    "grad_cam_max_pooled_gradients": grad_cam__max_pooled_gradients,
    "grad_cam_weights_from_activations": grad_cam__weights_from_activations,
    "grad_cam_divide_by_max_only": grad_cam__divide_by_max_only,
    "grad_cam_hook_never_removed": grad_cam__hook_never_removed,
}


# --- mistakes a student makes on the way: each must fail with a visible message naming it -------
#
# tests/test_grading_a02.py grades them (grouped into notebooks whose failing cells are disjoint)
# and asserts both the points lost and the message of each failing cell.


def activations_and_gradients__sets_train_mode(model, layer_name, x, targets=None):
    model.train()  # wrong: the caller's model stays in train mode; BatchNorm statistics change
    recorded = {}

    def save_output(module, inputs, output):
        recorded["activations"] = output
        return output.clone()

    handle = model.get_submodule(layer_name).register_forward_hook(save_output)
    try:
        with torch.enable_grad():
            logits = model(x)
            activations = recorded["activations"]
            if targets is None:
                targets = logits.argmax(dim=1)
            targets = torch.as_tensor(targets, dtype=torch.long, device=logits.device).reshape(-1).expand(len(logits))
            (gradients,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), activations)
    finally:
        handle.remove()
    return activations.detach(), gradients.detach(), logits.detach()


def activations_and_gradients__detached_output(model, layer_name, x, targets=None):
    recorded = {}

    def save_output(module, inputs, output):
        recorded["activations"] = output.detach()  # wrong: autograd.grad needs the graph

    handle = model.get_submodule(layer_name).register_forward_hook(save_output)
    try:
        with torch.enable_grad():
            logits = model(x)
            activations = recorded["activations"]
            if targets is None:
                targets = logits.argmax(dim=1)
            targets = torch.as_tensor(targets, dtype=torch.long, device=logits.device).reshape(-1).expand(len(logits))
            (gradients,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), activations)
    finally:
        handle.remove()
    return activations.detach(), gradients.detach(), logits.detach()


def scale_cams__without_epsilon(cams, size):
    def min_max(maps):
        shifted = maps - maps.amin(dim=(1, 2), keepdim=True)
        return shifted / shifted.amax(dim=(1, 2), keepdim=True)  # wrong: 0 / 0 for a constant map

    scaled = min_max(F.relu(cams))
    upsampled = F.interpolate(scaled[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return min_max(F.relu(upsampled))


def scale_cams__interpolate_without_channel_dim(cams, size):
    def min_max(maps):
        shifted = maps - maps.amin(dim=(1, 2), keepdim=True)
        return shifted / (shifted.amax(dim=(1, 2), keepdim=True) + 1e-7)

    scaled = min_max(F.relu(cams))
    upsampled = F.interpolate(scaled, size=size, mode="bilinear", align_corners=False)  # wrong: (B, h, w)
    return min_max(F.relu(upsampled))


def grad_cam__fixed_size_32(model, layer_name, x, targets=None):
    activations, gradients, _ = activations_and_gradients(model, layer_name, x, targets)
    weights = gradcam_channel_weights(gradients)
    cams = (weights[:, :, None, None] * activations).sum(dim=1)
    return scale_cams(cams, (32, 32))  # wrong: the input's size is x.shape[-2:]


def grad_cam_variant__ignores_switches(model, layer_name, x, targets=None, relu=True, normalize=True,
                                       normalize_after_upsampling=False, pooling="mean"):
    """Only the defaults are right: every switch is ignored."""
    activations, gradients, _ = activations_and_gradients(model, layer_name, x, targets)
    weights = gradcam_channel_weights(gradients)
    cams = (weights[:, :, None, None] * activations).sum(dim=1)
    return scale_cams(cams, tuple(x.shape[-2:]))


# --- second round (issue 26): a bare number became a message naming the mistake ------------------


def gradcam_channel_weights__flipped_sign(gradients):
    return -gradients.mean(dim=(2, 3))  # wrong: the sign


def scale_cams__normalised_over_batch(cams, size):
    def min_max(maps):  # wrong: the min and max of the whole batch, not of each image
        shifted = maps - maps.min()
        return shifted / (shifted.max() + 1e-7)

    scaled = min_max(F.relu(cams))
    upsampled = F.interpolate(scaled[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return min_max(F.relu(upsampled))


def activations_and_gradients__int_target_not_expanded(model, layer_name, x, targets=None):
    recorded = {}

    def save_output(module, inputs, output):
        recorded["activations"] = output
        return output.clone()

    handle = model.get_submodule(layer_name).register_forward_hook(save_output)
    try:
        with torch.enable_grad():
            logits = model(x)
            activations = recorded["activations"]
            if targets is None:
                targets = logits.argmax(dim=1)
            targets = torch.as_tensor(targets, dtype=torch.long, device=logits.device)  # wrong: an int stays 0-d
            (gradients,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), activations)
    finally:
        handle.remove()
    return activations.detach(), gradients.detach(), logits.detach()


def activations_and_gradients__log_softmax_score(model, layer_name, x, targets=None):
    recorded = {}

    def save_output(module, inputs, output):
        recorded["activations"] = output
        return output.clone()

    handle = model.get_submodule(layer_name).register_forward_hook(save_output)
    try:
        with torch.enable_grad():
            logits = model(x)
            activations = recorded["activations"]
            if targets is None:
                targets = logits.argmax(dim=1)
            targets = torch.as_tensor(targets, dtype=torch.long, device=logits.device).reshape(-1).expand(len(logits))
            scores = torch.log_softmax(logits, dim=1)  # wrong: Grad-CAM explains the raw logit
            (gradients,) = torch.autograd.grad(scores.gather(1, targets[:, None]).sum(), activations)
    finally:
        handle.remove()
    return activations.detach(), gradients.detach(), logits.detach()


def grad_cam__relu_on_weights(model, layer_name, x, targets=None):
    activations, gradients, _ = activations_and_gradients(model, layer_name, x, targets)
    weights = F.relu(gradcam_channel_weights(gradients))  # wrong: the ReLU belongs on the weighted sum
    cams = (weights[:, :, None, None] * activations).sum(dim=1)
    return scale_cams(cams, tuple(x.shape[-2:]))
