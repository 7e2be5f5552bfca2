# Assignment 3 source: input gradients, guided backpropagation, Guided Grad-CAM.
# Edit this file, then rebuild the notebooks with `python -m autograder release` (see README).

# %% [markdown]
# # Assignment 3: guided backpropagation and Guided Grad-CAM
#
# Grad-CAM (Assignment 2) says *where* the evidence for a class is, but only at the resolution of
# a late layer: 4x4 at `layer4` of our CIFAR-10 ResNet-18, upsampled to 32x32. The gradient of
# the class score with respect to the input pixels has full resolution, but it is noisy.
# **Guided backpropagation** (Springenberg et al. 2014, <https://arxiv.org/abs/1412.6806>) changes
# how gradients pass backwards through every ReLU, and gives sharp, edge-like pictures; but, as
# you will measure, they hardly depend on the class you ask about. **Guided Grad-CAM**
# (Selvaraju et al., <https://arxiv.org/abs/1610.02391>, section 3.1) multiplies the two: sharp
# *and* class-discriminative. You build every piece and find out why each behaves as it does.
#
# **You will:** compute input gradients and vanilla saliency maps, and turn signed gradients
# into images (Part 1); write the guided ReLU as a custom `torch.autograd.Function` and
# `guided_backprop`, which swaps it into the model and restores the model exactly (Part 2);
# combine it with Grad-CAM into `guided_grad_cam` (Part 3); compare the methods on the same images,
# measure how much each depends on the class, and look at right and wrong predictions (Part 4);
# answer four questions (Part 5).
#
# **Time:** running the whole notebook takes at most {{runtime}} on a 2-core CPU (measured with the
# untrained stand-in, which does the same work as the real model:
# `benchmarks/bench_student_notebooks.py`).
#
# **Offline:** `python -m student_src.fetch` downloads the model and CIFAR-10 once. Without them
# (no network), start Jupyter with `XAI_KIT_STANDIN=1` (`XAI_KIT_STANDIN=1 jupyter lab`): the
# notebook then runs on an untrained stand-in (random weights, synthetic images) and every figure
# says so. Parts 1 to 3 (your functions and their checks) work the same; what the stand-in cannot
# show is what a trained model's explanations look like: Questions 5.2 and 5.4 need the real model
# (5.1 and 5.3 can be argued from the methods).
#
# **Grading:** the cells marked with points are graded automatically (some checks are hidden:
# they try other models, inputs and targets) or by your instructor (written answers). Do not
# delete or copy cells; write your code where it says `YOUR CODE HERE`. Before you hand in,
# run *Kernel > Restart & Run All* and check that no cell shows an error.

# %% [locked] id=setup
import copy

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from student_src import checks, colour_keys, data, library_cams, models, session, viz

model, test_set = session.start()  # silences library warnings, seeds, loads model and data
DEVICE = next(model.parameters()).device
CLASSES = test_set.classes

# %% [markdown]
# ## Part 1: gradients of the input
#
# For an image `x` and a class `c`, the *score* is the raw logit `model(x)[c]` (before the
# softmax, as in pytorch-grad-cam). Its gradient `dS/dx` has the shape of the image, (3, 32, 32):
# it says how the score changes when each pixel value changes. For a batch we explain one target
# class per image and sum the scores, `S = sum_b logits[b, targets[b]]`; since image `b` only
# influences `logits[b]`, one backward pass gives every image's gradient.
#
# An explanation function must not change anything it is given. Work on a detached copy of the
# input, `x.detach().clone().requires_grad_(True)`, and compute the gradient with
# `torch.autograd.grad(score, x)`, which fills no `.grad` anywhere (`score.backward()` would fill
# the `.grad` of every model parameter, and calling it twice on the caller's tensor *adds* the
# second gradient to the first).
#
# **Task 1.1.** Implement `input_gradient(model, x, targets=None)`: `targets` is `None` (each
# image's predicted class), one `int` for all images, or one class per image.

# %% [solution] id=input_gradient functions=solutions.guided:input_gradient

# %% [tests] id=test_input_gradient points=2
# Compare with captum's Saliency (abs=False returns the plain gradient), batched, on a copy of the model.
# Tolerance 1e-4: far above the float32 round-off between correct implementations (measured: < 1e-6).
from captum.attr import Saliency

x_check, y_check = test_set.batch([0, 1, 2, 3])
x_check, targets_check = x_check.to(DEVICE), y_check.tolist()
test_model = checks.fresh_copy(model)
gradient = checks.call(input_gradient, test_model, x_check, targets_check)
checks.assert_shape(gradient, tuple(x_check.shape), "input_gradient(model, x, targets)")
with checks.quiet_warnings():
    expected = Saliency(copy.deepcopy(model)).attribute(x_check.clone(), target=targets_check, abs=False)
checks.assert_close(gradient, expected, 1e-4, "input_gradient vs captum's Saliency(abs=False)")
with torch.no_grad():
    predicted = test_model(x_check).argmax(dim=1).tolist()
checks.assert_close(checks.call(input_gradient, test_model, x_check),
                    checks.call(input_gradient, test_model, x_check, predicted), 1e-6,
                    "targets=None must explain each image's predicted class")
checks.assert_close(checks.call(input_gradient, test_model, x_check, 7),
                    checks.call(input_gradient, test_model, x_check, [7] * 4), 1e-6,
                    "one int target means that class for every image")
assert not x_check.requires_grad and x_check.grad is None, "the caller's x must not get requires_grad or a .grad"
assert all(p.grad is None for p in test_model.parameters()), \
    "the model's parameters got a .grad: use torch.autograd.grad(score, x), not score.backward()"
print("input_gradient agrees with captum.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a03_guided", "check_input_gradient", input_gradient)
### END HIDDEN TESTS

# %% [markdown]
# **Task 1.2.** The *vanilla saliency map* of Simonyan et al. (2013,
# <https://arxiv.org/abs/1312.6034>) is the largest magnitude of the gradient over the colour
# channels, `M[b, h, w] = max_c |dS/dx[b, c, h, w]|`. Implement `vanilla_saliency` with your
# `input_gradient`.

# %% [solution] id=vanilla_saliency functions=solutions.guided:vanilla_saliency

# %% [tests] id=test_vanilla_saliency points=1
from captum.attr import Saliency

x_check, y_check = test_set.batch([0, 1, 2, 3])
x_check, targets_check = x_check.to(DEVICE), y_check.tolist()
test_model = checks.fresh_copy(model)
saliency = checks.call(vanilla_saliency, test_model, x_check, targets_check)
checks.assert_shape(saliency, (4, 32, 32), "vanilla_saliency(model, x, targets)")
assert saliency.min() >= 0, "a saliency map is a magnitude: it cannot be negative"
with checks.quiet_warnings():
    expected = Saliency(copy.deepcopy(model)).attribute(x_check.clone(), target=targets_check, abs=True)
checks.assert_close(saliency, expected.amax(dim=1), 1e-4, "vanilla_saliency vs captum's Saliency, max over channels")
print("vanilla_saliency agrees with captum.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a03_guided", "check_vanilla_saliency", vanilla_saliency)
### END HIDDEN TESTS

# %% [markdown]
# **Task 1.3.** Gradients are tiny, signed and centred near zero: `plt.imshow` cannot show them
# as they are. Implement `gradient_to_image`, which standardises each image on its own and maps
# it around mid-grey, `clip(0.5 + 0.1 * (g - mean(g)) / (std(g) + 1e-5), 0, 1)` (the docstring
# has the details). Grey then means "no gradient"; bright and dark are positive and negative.

# %% [solution] id=gradient_to_image functions=solutions.guided:gradient_to_image

# %% [tests] id=test_gradient_to_image points=1
# Compare with pytorch-grad-cam's deprocess_image (which returns uint8: within one grey level).
from pytorch_grad_cam.utils.image import deprocess_image

fake_gradients = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
fake_gradients *= torch.tensor([1e-3, 10.0]).view(2, 1, 1, 1)  # two very different scales
pictures = checks.call(gradient_to_image, fake_gradients)
assert isinstance(pictures, np.ndarray), f"return a numpy array, not {type(pictures).__name__}"
assert pictures.shape == (2, 32, 32, 3), f"expected shape (2, 32, 32, 3), got {pictures.shape}"
assert pictures.min() >= 0 and pictures.max() <= 1, "values must lie in [0, 1]"
for i in range(2):
    theirs = deprocess_image(fake_gradients[i].permute(1, 2, 0).numpy()).astype(int)
    assert np.abs(np.uint8(pictures[i] * 255).astype(int) - theirs).max() <= 1, \
        f"image {i} differs from deprocess_image (standardise each image with its own mean and std)"
single = checks.call(gradient_to_image, fake_gradients[0])
assert isinstance(single, np.ndarray) and single.shape == (32, 32, 3), "one (3, H, W) gradient gives one (H, W, 3) image"
assert np.allclose(checks.call(gradient_to_image, torch.zeros(1, 3, 4, 4)), 0.5), \
    "an all-zero gradient must become uniform grey"
print("gradient_to_image agrees with deprocess_image.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a03_guided", "check_gradient_to_image", gradient_to_image)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2: guided backpropagation
#
# Backwards through a ReLU `y = max(x, 0)`, with `R = dS/dy` the gradient arriving from above,
# three rules have been used to make pictures (Springenberg et al. 2014, figure 1):
#
# | rule | `dS/dx` | gated by |
# |---|---|---|
# | plain backpropagation (the true derivative) | `R * [x > 0]` | the forward input |
# | "deconvnet" (Zeiler and Fergus 2014) | `R * [R > 0]` | the incoming gradient |
# | **guided backpropagation** | `R * [x > 0] * [R > 0]` | both |
#
# A guided ReLU passes gradient back only where the unit was active in the forward pass *and*
# the gradient is positive: only evidence *for* the class flows towards the pixels.
#
# PyTorch lets you define both directions of an operation yourself with a
# [`torch.autograd.Function`](https://pytorch.org/docs/stable/notes/extending.html): a `forward`
# and a `backward` static method; `forward` keeps what `backward` needs with
# `ctx.save_for_backward(...)`, and `backward` reads it from `ctx.saved_tensors`. You call it as
# `GuidedReLUFunction.apply(x)`.
#
# **Task 2.1.** Implement `GuidedReLUFunction`. `backward` must return a *new* tensor and never
# modify `grad_output` in place (autograd may hand the same gradient to both sides of a skip
# connection).

# %% [solution] id=guided_relu functions=solutions.guided:GuidedReLUFunction

# %% [tests] id=test_guided_relu_rule points=2
# A hand-made case: every sign combination of the forward input and the incoming gradient.
x_rule = torch.tensor([-1.0, 2.0, 3.0, 0.0, -2.0, 0.5], requires_grad=True)
incoming = torch.tensor([1.0, -1.0, 2.0, 5.0, -3.0, 0.0])
output = GuidedReLUFunction.apply(x_rule)
assert output.tolist() == [0.0, 2.0, 3.0, 0.0, 0.0, 0.5], f"forward must be the ReLU, got {output.tolist()}"
incoming_copy = incoming.clone()
(gradient_rule,) = torch.autograd.grad(output, x_rule, incoming_copy)
got = gradient_rule.tolist()
assert got != [0.0, -1.0, 2.0, 0.0, 0.0, 0.0], \
    "backward is the plain ReLU derivative (gated by the input only): also drop negative incoming gradients"
assert got != [1.0, 0.0, 2.0, 5.0, 0.0, 0.0], \
    "backward is the deconvnet rule (gated by the incoming gradient only): also drop where the input is <= 0"
assert got == [0.0, 0.0, 2.0, 0.0, 0.0, 0.0], \
    f"backward gave {got}; only position 2 has input > 0 and gradient > 0 (an input of exactly 0 is inactive)"
assert torch.equal(incoming_copy, incoming), "backward modified grad_output in place: return a new tensor"
print("The guided rule is right on the hand-made case.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a03_guided", "check_guided_relu_rule", GuidedReLUFunction)
### END HIDDEN TESTS

# %% [markdown]
# **Task 2.2.** Implement `guided_backprop(model, x, targets=None)`: the input gradient of
# Task 1.1, computed while every `nn.ReLU` module of the model follows the guided rule.
#
# For the duration of the call, put a small module whose `forward` returns
# `GuidedReLUFunction.apply(x)` in the place of every `nn.ReLU` module, then call your
# `input_gradient`. A module sits in its parent under a name: `parent.named_children()` lists
# them, `setattr(parent, name, new_module)` swaps one, and `model.modules()` walks every parent.
# In a `finally:` block put the *original* ReLU objects back, so that afterwards the model is
# exactly as before (same module objects, same `inplace` flags), also when the forward pass
# raises.
#
# Two traps: torchvision's `BasicBlock` calls its single `nn.ReLU(inplace=True)` module *twice*
# (swapping the module swaps both uses; a backward hook on it fails), and pytorch-grad-cam's
# `GuidedBackpropReLUModel` puts *new* `nn.ReLU()` objects back (with `inplace=False`) and
# accumulates gradients in the caller's tensor between calls. The tests below compare with it
# anyway, one image at a time, on a fresh tensor and a copy of the model.

# %% [solution] id=guided_backprop functions=solutions.guided:guided_backprop

# %% [tests] id=test_guided_backprop_values points=3
# Compare with captum's GuidedBackprop (batched) and pytorch-grad-cam's GuidedBackpropReLUModel (per image).
from captum.attr import GuidedBackprop
from pytorch_grad_cam import GuidedBackpropReLUModel

x_check, y_check = test_set.batch([0, 1, 2, 3])
x_check, targets_check = x_check.to(DEVICE), y_check.tolist()
test_model = checks.fresh_copy(model)
guided = checks.call(guided_backprop, test_model, x_check, targets_check)
checks.assert_shape(guided, tuple(x_check.shape), "guided_backprop(model, x, targets)")
with checks.quiet_warnings():
    expected = GuidedBackprop(copy.deepcopy(model)).attribute(x_check.clone(), target=targets_check)


def top_level_relus_guided(network, x, targets):
    """What guided backprop gives when only the model's top-level ReLUs are guided: captum guides
    every nn.ReLU module, so the ReLUs inside the blocks become plain nn.Threshold(0, 0) modules."""
    network = copy.deepcopy(network)
    for name, module in list(network.named_modules()):
        if "." in name and isinstance(module, nn.ReLU):
            parent, _, child = name.rpartition(".")
            setattr(network.get_submodule(parent), child, nn.Threshold(0.0, 0.0))
    with checks.quiet_warnings():
        return GuidedBackprop(network).attribute(x.clone(), target=targets)


checks.assert_close(guided, expected, 1e-4, "guided_backprop vs captum's GuidedBackprop", known_mistakes={
    "only the model's top-level ReLUs are guided, those inside its blocks (`layer1.0.relu`, ...) stay plain: "
    "find them with `model.named_modules()`, not `named_children()`":
        lambda: top_level_relus_guided(model, x_check, targets_check)})

guided_predicted = checks.call(guided_backprop, test_model, x_check[:2])  # targets=None: the predicted classes
with torch.no_grad():
    predicted = model(x_check[:2]).argmax(dim=1).tolist()
library = GuidedBackpropReLUModel(copy.deepcopy(model))
for i in range(2):
    with checks.quiet_warnings():
        theirs = library(x_check[i:i + 1].clone(), target_category=predicted[i])  # (H, W, 3) numpy
    checks.assert_close(guided_predicted[i].permute(1, 2, 0), torch.from_numpy(theirs), 1e-4,
                        f"guided_backprop (targets=None) vs pytorch-grad-cam's GuidedBackpropReLUModel, image {i}")
print("guided_backprop agrees with captum and pytorch-grad-cam.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a03_guided", "check_guided_backprop_values", guided_backprop)
### END HIDDEN TESTS

# %% [tests] id=test_guided_backprop_restores_model points=2
# Afterwards the model is exactly as before: same modules, inplace flags, hooks; plain ReLUs again.
x_check, y_check = test_set.batch([0, 1, 2, 3])
x_check, targets_check = x_check.to(DEVICE), y_check.tolist()
test_model = checks.fresh_copy(model)
snapshot = checks.ModelSnapshot(test_model)
checks.call(guided_backprop, test_model, x_check[:2], 3)
test_model.zero_grad(set_to_none=True)  # .grad is the next cell's business
snapshot.assert_unchanged(test_model, "guided_backprop")


def plain_gradient(network, x, target=3):
    x = x.clone().requires_grad_(True)
    return torch.autograd.grad(network(x)[:, target].sum(), x)[0]


checks.assert_close(plain_gradient(test_model, x_check[:2]), plain_gradient(model, x_check[:2]), 1e-6,
                    "after guided_backprop, the model's plain gradient (its ReLUs must be plain again)")


class Exploding(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


shared_relu = nn.ReLU(inplace=True)  # one module used twice, as in BasicBlock
exploding = nn.Sequential(nn.Conv2d(3, 4, 3), shared_relu, nn.Sequential(shared_relu, Exploding()))
try:
    checks.call(guided_backprop, exploding, torch.zeros(1, 3, 5, 5))
except RuntimeError as error:
    assert "boom" in str(error), f"expected the model's own error to come through, got {error!r}"
else:
    raise AssertionError("the forward pass raised, but guided_backprop did not let the exception through")
assert exploding[1] is shared_relu and exploding[2][0] is shared_relu and shared_relu.inplace, \
    "put the original ReLU modules back in `finally`, also when the forward pass raises"
print("The model is restored.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a03_guided", "check_guided_backprop_restores_model", guided_backprop)
### END HIDDEN TESTS

# %% [tests] id=test_guided_backprop_no_accumulation points=1
# Two calls on the same tensor give the same result; nothing gets a .grad.
x_check, y_check = test_set.batch([0, 1, 2, 3])
x_check, targets_check = x_check.to(DEVICE), y_check.tolist()
test_model = checks.fresh_copy(model)
x_leaf = x_check[:2].clone().requires_grad_(True)
first = checks.call(guided_backprop, test_model, x_leaf, 3)
first_copy = first.detach().clone()
second = checks.call(guided_backprop, test_model, x_leaf, 3)
assert x_leaf.grad is None, "the caller's x got a .grad: work on x.detach().clone().requires_grad_(True)"
checks.assert_close(second, first_copy, 1e-6, "a second call on the same x (do gradients accumulate?)")
assert torch.equal(first.detach(), first_copy), "the first result changed during the second call"
assert all(p.grad is None or not p.grad.any() for p in test_model.parameters()), \
    "the model's parameters got a .grad: compute the input gradient with torch.autograd.grad"
print("No gradient accumulates.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a03_guided", "check_guided_backprop_no_side_effects", guided_backprop)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 3: Guided Grad-CAM
#
# Guided Grad-CAM (Selvaraju et al., section 3.1) multiplies, pixel by pixel, the guided
# backpropagation image by the Grad-CAM map of the same class, upsampled to the input size
# (the same map for the three colour channels):
#
# `G[b, c, h, w] = guided_backprop(x)[b, c, h, w] * up(L_GradCAM)[b, h, w]`
#
# You need Grad-CAM for it. **Paste your own `grad_cam` from Assignment 2 into the next cell**
# (the whole function, with anything it calls), in place of the import. If you leave the import,
# the library's Grad-CAM (pytorch-grad-cam, through `student_src.library_cams`) is used: this
# cell is not graded, and the tests below give `guided_grad_cam` its Grad-CAM through `cam_fn`,
# so a mistake in Assignment 2 does not cost points here again.

# %% [code] id=tools_from_assignment_2
# Your Assignment 2 grad_cam(model, layer_name, x, targets=None) -> maps (B, H, W) in [0, 1],
# or the library's:
from student_src.library_cams import library_grad_cam as grad_cam

# %% [markdown]
# **Task 3.1.** Implement `guided_grad_cam(model, layer_name, x, targets=None, cam_fn=None)`
# with your `guided_backprop`. `cam_fn` is the Grad-CAM function to use (default: the `grad_cam`
# above). If its maps are smaller than the image, upsample them first with
# `F.interpolate(..., mode="bilinear", align_corners=False)`.

# %% [solution] id=guided_grad_cam functions=solutions.guided:guided_grad_cam

# %% [tests] id=test_guided_grad_cam points=2
# The product of YOUR guided_backprop and the maps cam_fn returned (a Grad-CAM that remembers them).
x_check, y_check = test_set.batch([0, 1, 2, 3])
x_check, targets_check = x_check.to(DEVICE), y_check.tolist()
test_model = checks.fresh_copy(model)
returned_maps, cam_calls = [], []


def recording_grad_cam(model, layer_name, x, targets=None):
    maps = library_cams.library_grad_cam(model, layer_name, x, targets)
    returned_maps.append(maps)
    cam_calls.append((layer_name, targets))
    return maps


combined = checks.call(guided_grad_cam, test_model, "layer3", x_check, targets_check, cam_fn=recording_grad_cam)
checks.assert_shape(combined, tuple(x_check.shape), "guided_grad_cam(model, 'layer3', x, targets, cam_fn=...)")
assert returned_maps, "guided_grad_cam must take its Grad-CAM maps from cam_fn when one is given"
layer_used, targets_used = cam_calls[-1]
assert layer_used == "layer3", f"guided_grad_cam called cam_fn with layer_name={layer_used!r}: pass its own layer_name on"
assert targets_used is not None and torch.as_tensor(targets_used).reshape(-1).tolist() == targets_check, (
    f"guided_grad_cam called cam_fn with targets={targets_used!r}, not the targets it was given: pass them on "
    "(`cam_fn(model, layer_name, x, targets)`), or the map explains another class than guided_backprop")
expected = checks.call(guided_backprop, test_model, x_check, targets_check) * returned_maps[-1][:, None]
checks.assert_close(combined, expected, 1e-4, "guided_grad_cam vs guided_backprop * Grad-CAM map")
print("guided_grad_cam combines the two.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a03_guided", "check_guided_grad_cam", guided_grad_cam, guided_backprop)
### END HIDDEN TESTS

# %% [tests] id=test_guided_grad_cam_upsamples points=1
# A cam_fn returning 4x4 maps (as layer4's would be before upsampling) for 32x32 images.
x_check, y_check = test_set.batch([0, 1, 2, 3])
x_check, targets_check = x_check.to(DEVICE), y_check.tolist()
test_model = checks.fresh_copy(model)
coarse_maps = torch.rand(4, 4, 4, generator=torch.Generator().manual_seed(0)).to(DEVICE)
combined = checks.call(guided_grad_cam, test_model, "layer4", x_check, targets_check,
                       cam_fn=lambda *args, **kwargs: coarse_maps.clone())
checks.assert_shape(combined, tuple(x_check.shape), "guided_grad_cam with 4x4 maps")
upsampled = F.interpolate(coarse_maps[:, None], size=(32, 32), mode="bilinear", align_corners=False)
expected = checks.call(guided_backprop, test_model, x_check, targets_check) * upsampled
checks.assert_close(combined, expected, 1e-4, "guided_grad_cam with 4x4 maps (bilinear, align_corners=False)")
print("guided_grad_cam upsamples coarse maps.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a03_guided", "check_guided_grad_cam_upsamples", guided_grad_cam, guided_backprop)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 4: exploring the three methods
#
# The cells below use your functions. They classify a part of the test split (the first 1000
# images; a fixed subset of 128 when the autograder runs the notebook) and explain the predicted
# classes, with Grad-CAM at `CAM_LAYER`. Change the layer to `"layer3"` (8x8 maps) and compare.

# %% [code] id=explore_setup
CAM_LAYER = "layer4"
GRADING = data.grading_mode()  # fewer images when the autograder runs the notebook
pool = data.evaluation_indices(test_set)[:128 if GRADING else 1000]
probabilities = data.predict(model, test_set, pool)
confidences, predictions = probabilities.max(dim=1)
labels = test_set.labels[pool]
print(f"Accuracy on these {len(pool)} images: {100 * float((predictions.numpy() == labels).mean()):.1f}%")


def title_of(position):
    """'true: cat / pred: dog (87%)' for the image at this position of `pool`."""
    return viz.prediction_title(CLASSES, int(labels[position]), int(predictions[position]),
                                float(confidences[position]))


def scaled(maps):
    """Each map of a (B, H, W) batch divided by its maximum, for display."""
    maps = maps.detach().cpu()
    return maps / (maps.flatten(1).amax(dim=1).view(-1, 1, 1) + 1e-12)

# %% [markdown]
# ### 4.1 Vanilla gradient, guided backpropagation, Grad-CAM and Guided Grad-CAM
# One row per image, each explaining the predicted class.

# %% [code] id=fig_saliency_guided_gradcam
positions = np.arange(3 if GRADING else 6)
x_some = test_set.batch(pool[positions])[0].to(DEVICE)
targets_some = predictions[positions].tolist()
images_some = data.denormalize(x_some)
saliency_some = scaled(vanilla_saliency(model, x_some, targets_some))
guided_some = guided_backprop(model, x_some, targets_some)
cams_some = grad_cam(model, CAM_LAYER, x_some, targets=targets_some).detach().cpu()
guided_cam_some = guided_grad_cam(model, CAM_LAYER, x_some, targets_some)

SALIENCY_KEY = colour_keys.normalised("each map divided by its maximum", what="saliency max |dS/dx|", cmap="gray")
PICTURE_KEY = colour_keys.gradient_pictures("guided gradient")  # gradient_to_image's pictures
viz.show_explanations(images_some, {
    "vanilla gradient\n(saliency, max |dS/dx|)": viz.Column(saliency_some, SALIENCY_KEY, overlay=False),
    "guided backprop": viz.Column(gradient_to_image(guided_some), PICTURE_KEY, overlay=False),
    f"Grad-CAM ({CAM_LAYER})": cams_some,
    "Guided Grad-CAM": viz.Column(gradient_to_image(guided_cam_some), PICTURE_KEY, overlay=False),
}, [title_of(position) for position in positions], suptitle="Four explanations of the predicted class")
plt.show()

# %% [markdown]
# ### 4.2 Does the picture depend on the class?
# An explanation *of a class* should change when you ask about another class. Below, one image
# is explained for its predicted class and for the class the model ranks second.

# %% [code] id=fig_class_sensitivity
position = 0
x_one = test_set.batch(pool[[position]])[0].to(DEVICE)
image_one = data.denormalize(x_one)[0]
first_class, second_class = probabilities[position].topk(2).indices.tolist()

targets_one = [first_class, second_class]  # one row per class, the same image in both
x_twice, images_twice = x_one.repeat(2, 1, 1, 1), np.stack([image_one, image_one])
viz.show_explanations(images_twice, {
    "Grad-CAM": grad_cam(model, CAM_LAYER, x_twice, targets=targets_one).detach().cpu(),
    "guided backprop": viz.Column(gradient_to_image(guided_backprop(model, x_twice, targets_one)), PICTURE_KEY,
                                  overlay=False),
    "Guided Grad-CAM": viz.Column(gradient_to_image(guided_grad_cam(model, CAM_LAYER, x_twice, targets_one)),
                                  PICTURE_KEY, overlay=False),
}, [f"{title_of(position)}\nexplained: {CLASSES[target]} ({100 * float(probabilities[position, target]):.0f}%)"
    for target in targets_one], suptitle="The same image explained for two classes (one row each)")
plt.show()

# %% [markdown]
# Looking is not measuring. The next cell explains several images for their first and second
# class and computes, for each image, Pearson's correlation between the two explanations
# (flattened to vectors): of the signed values, and of their magnitudes `|values|` (which asks
# only whether the same pixels matter, whatever the sign). A correlation near 1 means the
# explanation barely depends on the class asked about. (Assignment 4 compares maps with a rank
# correlation instead, which you will build there.)

# %% [code] id=fig_class_correlation
def pearson(a, b):
    """Correlation of each row of a with the same row of b: a, b (B, N) -> (B,)."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-12)


positions = np.arange(4 if GRADING else 16)
x_many = test_set.batch(pool[positions])[0].to(DEVICE)
top_two = probabilities[positions].topk(2, dim=1).indices
methods = {
    "vanilla gradient": lambda targets: input_gradient(model, x_many, targets),
    "guided backprop": lambda targets: guided_backprop(model, x_many, targets),
    "Guided Grad-CAM": lambda targets: guided_grad_cam(model, CAM_LAYER, x_many, targets),
}
correlations = {}
for method, explain in methods.items():
    first_maps = explain(top_two[:, 0].tolist()).detach().flatten(1).double().cpu()
    second_maps = explain(top_two[:, 1].tolist()).detach().flatten(1).double().cpu()
    correlations[method] = (pearson(first_maps, second_maps), pearson(first_maps.abs(), second_maps.abs()))

print(f"{'image':>5}  {'1st class':>10}  {'2nd class':>10}  " + "  ".join(f"{m:>22}" for m in methods))
print(f"{'':>5}  {'':>10}  {'':>10}  " + "  ".join(f"{'values  |values|':>22}" for _ in methods))
for row, position in enumerate(positions):
    cells = "  ".join(f"{float(p[row]):>13.2f}{float(s[row]):>9.2f}" for p, s in correlations.values())
    print(f"{position:>5}  {CLASSES[top_two[row, 0]]:>10}  {CLASSES[top_two[row, 1]]:>10}  {cells}")
means = "  ".join(f"{float(p.mean()):>13.2f}{float(s.mean()):>9.2f}" for p, s in correlations.values())
print(f"{'mean':>5}  {'':>10}  {'':>10}  {means}")

fig, ax = plt.subplots(figsize=(9, 3), layout="constrained")
width = 0.8 / len(methods)
for k, (method, (pearson_values, _)) in enumerate(correlations.items()):
    ax.bar(np.arange(len(positions)) + (k - 1) * width, pearson_values.numpy(), width, label=method)
ax.axhline(0, color="black", linewidth=0.5)
ax.set_xticks(np.arange(len(positions)), [str(p) for p in positions])
ax.set_xlabel("image")
ax.set_ylabel("Pearson correlation")
ax.set_ylim(-1, 1.05)
ax.set_title("Explanation for the 1st class vs the 2nd class: correlation per image")
viz.legend_outside(ax)
viz.stamp_standin(fig)
plt.show()
session.standin_note("these correlations")

# %% [markdown]
# ### 4.3 Right and wrong predictions
# As in Assignment 2: where is the evidence when the model is right, and when it is wrong? For a
# misclassified image, compare the evidence for the class the model predicted with the evidence
# for the true class. Is it on the object, or on the background?

# %% [code] id=fig_right_and_wrong_guided_gradcam
n_each = 2 if GRADING else 4
right = data.select_examples(predictions.numpy(), labels, n_each, correct=True, seed=1)
wrong = data.select_examples(predictions.numpy(), labels, n_each, correct=False, seed=1)


def show_evidence(chosen, targets_by_name, suptitle):
    """One row per image: the image, then Grad-CAM and Guided Grad-CAM for each named list of targets."""
    x_chosen = test_set.batch(pool[chosen])[0].to(DEVICE)
    columns = {}
    for name, targets in targets_by_name.items():
        columns[f"Grad-CAM\n{name} class"] = grad_cam(model, CAM_LAYER, x_chosen, targets=targets).detach().cpu()
        columns[f"Guided Grad-CAM\n{name} class"] = viz.Column(
            gradient_to_image(guided_grad_cam(model, CAM_LAYER, x_chosen, targets)), PICTURE_KEY, overlay=False)
    viz.show_explanations(data.denormalize(x_chosen), columns, [title_of(position) for position in chosen],
                          suptitle=suptitle)
    plt.show()


if len(right):
    show_evidence(right, {"predicted": predictions[right].tolist()}, "Correctly classified")
if len(wrong):
    show_evidence(wrong, {"predicted": predictions[wrong].tolist(), "true": [int(label) for label in labels[wrong]]},
                  "Misclassified: evidence for the predicted and the true class")

# %% [markdown]
# ## Part 5: questions
#
# **Question 5.1 (2 points).** Compare the vanilla gradient and guided backpropagation columns
# of Part 4.1. Why does the guided rule make the pictures so much sharper and cleaner?

# %% [answer] id=q_why_sharper points=2
# The vanilla gradient is the sum over every path from the pixel to the score, with positive
# and negative contributions: at each ReLU a negative gradient passes wherever the unit was
# active, so the contributions of neighbouring pixels alternate in sign and largely cancel,
# which looks like high-frequency noise. The guided rule drops every negative gradient at every
# ReLU, so nothing cancels: what reaches the pixels is a sum of non-negative contributions along
# the paths through units that were active in the forward pass. Those forward masks (the [x > 0]
# gate at every layer) follow the image's own structure, so the result is close to a
# reconstruction of the image's edges and textures: sharp and clean (Nie et al. 2018,
# https://arxiv.org/abs/1805.07039, show guided backpropagation does partial image recovery).
# RUBRIC: 1 point: the vanilla gradient mixes positive and negative contributions that cancel
#   between neighbouring pixels
# RUBRIC: 1 point: the guided rule drops negative gradients at every ReLU and the forward masks
#   follow the image's edges

# %% [markdown]
# **Question 5.2 (2 points, needs the real model).** Report the mean correlations of Part 4.2 for the three methods.
# Why does guided backpropagation give almost the same picture for two different classes, and
# why does Guided Grad-CAM not?

# %% [answer] id=q_class_sensitivity points=2
# (With the trained model the guided backprop correlation between the two classes is close to 1,
# the Guided Grad-CAM one clearly lower, the vanilla gradient in between or low.) The class only
# enters guided backpropagation through the last layer: the gradient at the fc input is the row
# of fc weights of that class. Going down, each guided ReLU zeroes the negative part and the
# forward gates [x > 0], which do not depend on the class, decide where anything passes; after a
# few layers what is left is dominated by those gates, the same for every class. Grad-CAM's map
# is computed at a late layer from class-specific channel weights, so for the second class it
# lights up other places; multiplying by it keeps only the sharp detail in the region that is
# evidence for that class.
# RUBRIC: 1 point: reports the three mean correlations of Part 4.2
# RUBRIC: 1 point: the class enters guided backprop only at fc and the class-independent gates
#   dominate; Grad-CAM's class-specific map makes Guided Grad-CAM differ

# %% [markdown]
# **Question 5.3 (3 points).** Sharp pictures are convincing. Why is that sharpness *not*
# evidence that guided backpropagation (or Guided Grad-CAM) shows what the model relies on?
# Argue from this notebook: what makes the guided pictures sharp (Question 5.1), and how much
# they change when you ask about another class (Part 4.2). Then describe an experiment, with the
# tools of this notebook, that would show whether the pictures depend on the model's learned
# weights at all, and what result would make you distrust them.

# %% [answer] id=q_faithfulness points=3
# Sharpness comes from the method, not from the model's reasoning: the guided rule drops every
# negative gradient and lets the forward masks [x > 0] decide where anything passes, and those
# masks follow the image's own edges (Question 5.1), so the picture is close to a reconstruction
# of the input. Part 4.2 shows the same thing from the other side: guided backpropagation gives
# nearly the same picture for the first and the second class (correlation close to 1), so it
# says little about what the model uses for *this* class. The experiment: make a copy of the
# model, re-initialise its weights (all of them, or layer by layer from `fc` down) and run
# `guided_backprop` on the same images; compare the pictures with the trained model's (e.g. the
# Pearson correlation of Part 4.2). If the pictures of the randomised copy look the same (high
# correlation, still sharp edges), they do not depend on what the model learned and cannot
# explain it; a method that passes must change. (This is the sanity check of Adebayo et al.,
# NeurIPS 2018, https://arxiv.org/abs/1810.03292: guided backpropagation fails it, gradients and
# Grad-CAM pass. The untrained stand-in of this kit already gives sharp guided pictures.)
# RUBRIC: 1 point: sharpness comes from the method (the forward masks reconstruct the image's
#   edges), not from what the model uses
# RUBRIC: 1 point: uses Part 4.2: guided backprop barely changes with the class asked about
# RUBRIC: 1 point: an experiment that randomises the weights (a copy of the model) and compares the
#   pictures, and says that unchanged pictures mean they cannot explain what the model learned

# %% [markdown]
# **Question 5.4 (2 points, needs the real model).** Pick one misclassified image of Part 4.3. Compare Guided
# Grad-CAM for the predicted and for the true class: where is the evidence for each, and does
# the evidence sit on the object or on the background? What does that suggest about the mistake?

# %% [answer] id=q_right_wrong points=2
# (Depends on the image.) A good answer names the image and both classes, says where each
# Guided Grad-CAM puts its evidence (for example: the "ship" evidence is on the blue background
# of a bird in the sky, the "bird" evidence on the wings), notes whether the evidence is on the
# object or on the background (a model may rely on the background, just as an MNIST model can
# look at the black around a digit), and draws a careful conclusion: the map shows what raised the
# score of that class, a hypothesis about the mistake (context, a confusable shape), not a proof.
# RUBRIC: 1 point: names the image and both classes, and where each class's Guided Grad-CAM puts
#   its evidence
# RUBRIC: 1 point: object vs background, and a careful conclusion about the mistake (a hypothesis,
#   not a proof)

# %% [markdown]
# ## Handing in
# 1. *Kernel > Restart & Run All*; check that every cell ran without an error.
# 2. Save, and hand in this notebook file (`03_guided.ipynb`) only, with its name unchanged.
