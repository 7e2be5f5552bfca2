"""Known-wrong Assignment 4 implementations. ``<student_name>__<mistake>``; each loses specific checks.

Checks are those of ``autograder/engine/checks/a04_beyond.py``. In a notebook a student function calls
the *student's* other functions, so a mistake in one can fail the checks of another:

- layer_cam__no_gradient_relu: weights positions by the raw gradient G instead of ReLU(G)
  -> fails check_layer_cam_values, check_layer_cam_gradient_relu.
- deletion_curve__argmax_class: records the probability of the class predicted for each
  perturbed image instead of the given target -> fails check_deletion_curve_target_class,
  check_deletion_curve_resnet and (insertion_curve calls deletion_curve)
  check_insertion_curve_resnet. The hand-computed checks keep passing: there the target is
  the predicted class at every step.
- layer_cam__sets_train_mode: calls ``model.train()`` first; the maps are right for a model in
  train mode, but the model's mode and BatchNorm statistics change -> fails check_layer_cam_values
  (the tiny model of check_layer_cam_gradient_relu has no BatchNorm; the notebook's visible check
  names the train mode there).
- cascading_randomization__in_place: randomises the caller's model instead of a deep copy (the
  numbers are right) -> fails check_cascading_randomization_leaves_model only.
"""

import torch
import torch.nn.functional as F

from solutions.gradcam import activations_and_gradients, scale_cams
from solutions.sanity import spearman_rank_correlation


def layer_cam__no_gradient_relu(model, layer_name, x, targets=None):
    activations, gradients, _ = activations_and_gradients(model, layer_name, x, targets)
    cams = (gradients * activations).sum(dim=1)
    return scale_cams(cams, tuple(x.shape[-2:]))


def layer_cam__sets_train_mode(model, layer_name, x, targets=None):
    model.train()
    activations, gradients, _ = activations_and_gradients(model, layer_name, x, targets)
    return scale_cams((F.relu(gradients) * activations).sum(dim=1), tuple(x.shape[-2:]))


def deletion_curve__argmax_class(model, x, saliency, target, steps=16, baseline=0.0):
    batch, _, height, width = x.shape
    n_pixels = height * width
    order = saliency.reshape(batch, n_pixels).argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n_pixels).expand(batch, n_pixels))
    rank = rank.view(batch, 1, height, width)
    baseline = torch.as_tensor(baseline, dtype=x.dtype).expand_as(x)
    probabilities = []
    with torch.no_grad():
        for step in range(steps + 1):
            logits = model(torch.where(rank < (step * n_pixels) // steps, baseline, x))
            probabilities.append(F.softmax(logits, dim=1).amax(dim=1))
    return torch.stack(probabilities, dim=1)


def cascading_randomization__in_place(model, explain_fn, x, targets=None, layer_order=None, seed=0):
    if targets is None:
        with torch.no_grad():
            targets = model(x).argmax(dim=1)
    original = explain_fn(model, x, targets)
    if layer_order is None:
        layer_order = [name for name, child in model.named_children() if len(list(child.parameters())) > 0][::-1]
    generator = torch.Generator().manual_seed(seed)
    correlations = {"original": spearman_rank_correlation(original, explain_fn(model, x, targets)).mean().item()}
    for name in layer_order:
        with torch.no_grad():
            for parameter in model.get_submodule(name).parameters():
                parameter.copy_(parameter.mean() + parameter.std() * torch.randn(parameter.shape, generator=generator))
        correlations[name] = spearman_rank_correlation(original, explain_fn(model, x, targets)).mean().item()
    return correlations


#: mutant -> the checks of ``autograder.engine.checks.a04_beyond`` it must fail (and no other), when it
#: replaces the student function of its name in a notebook whose other functions are right.
# --- the library instead of the student's own code (not in MUTANTS: in this process the libraries
# are there; where graded functions run they cannot be imported: tests/test_grading_a04.py)


def layer_cam__pytorch_grad_cam(model, layer_name, x, targets=None):
    from student_src import library_cams

    return library_cams.library_cam("LayerCAM", model, layer_name, x, targets)


def spearman_rank_correlation__scipy(a, b):
    import torch
    from scipy.stats import spearmanr

    return torch.tensor([spearmanr(u.flatten(), v.flatten()).statistic for u, v in zip(a, b)])


MUTANTS = {
    layer_cam__no_gradient_relu: frozenset({"check_layer_cam_values", "check_layer_cam_gradient_relu"}),
    deletion_curve__argmax_class: frozenset({"check_deletion_curve_target_class", "check_deletion_curve_resnet",
                                             "check_insertion_curve_resnet"}),
    cascading_randomization__in_place: frozenset({"check_cascading_randomization_leaves_model"}),
    layer_cam__sets_train_mode: frozenset({"check_layer_cam_values"}),
}
