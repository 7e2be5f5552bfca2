# Assignment 4 source: beyond Grad-CAM (Layer-CAM, faithfulness metrics, sanity checks, transformers).
# Edit this file, then rebuild the notebooks with `python -m autograder release` (see README).

# %% [markdown]
# # Assignment 4: beyond Grad-CAM
#
# Grad-CAM gives one weight per channel, so its maps are as coarse as the layer it reads, and a
# map that *looks* right is not yet evidence that it explains the model. This assignment builds
# three tools that go further and turns them on the methods you know:
#
# - **Layer-CAM** (Jiang et al., IEEE TIP 2021, <https://ieeexplore.ieee.org/document/9462463>)
#   weights every *position* by its own positive gradient, which gives useful maps at early,
#   high-resolution layers, and fuses the maps of several layers into one.
# - **Faithfulness**: the deletion and insertion curves of Petsiuk et al. (RISE, BMVC 2018,
#   <https://arxiv.org/abs/1806.07421>) ask the *model* whether the pixels a map calls important
#   are the ones its decision rests on.
# - **Sanity checks** (Adebayo et al., NeurIPS 2018, <https://arxiv.org/abs/1810.03292>): an
#   explanation of what a model learned must change when the learned weights are destroyed.
#
# **You will:** implement `layer_cam` and `fuse_layer_cams` and compare them with Grad-CAM at
# `layer2`, `layer3` and `layer4` (Part 1); implement `deletion_curve`, `insertion_curve` and
# `area_under_curve`, and rank six methods, a random map among them, by faithfulness (Part 2);
# implement `spearman_rank_correlation` and `cascading_randomization` and see which methods
# depend on the weights (Part 3); explain a `transformers` image classifier (Part 4); answer
# questions (Part 5).
#
# **Grading:** the cells marked with points are graded automatically (some checks are hidden:
# they try other layers, inputs, targets and small models you can compute by hand) or by your
# instructor (written answers). Do not delete or copy cells; write your code where it says
# `YOUR CODE HERE`. Before you hand in, run *Kernel > Restart & Run All* and check that no cell
# shows an error. When the autograder runs the notebook, the exploration cells use a few images
# only.
#
# **Time:** running the whole notebook takes at most {{runtime}} on a 2-core CPU (measured with the
# untrained stand-in, which does the same work as the real model:
# `benchmarks/bench_student_notebooks.py`).
#
# **Offline:** `python -m student_src.fetch` downloads the model and CIFAR-10 once (and
# `python -m student_src.fetch --hf microsoft/resnet-18` the transformers model of Part 4). Without
# them (no network), start Jupyter with `XAI_KIT_STANDIN=1` (`XAI_KIT_STANDIN=1 jupyter lab`): the
# notebook then runs on an untrained stand-in (random weights, synthetic images) and every figure
# says so. Your functions and their checks work the same; what the stand-in cannot show is how
# the methods behave on a trained model: which is faithful, which passes the sanity check.
# Questions 1.4, 2.5 and 3.4 need the real model (4.1 and 5.1 do not).

# %% [locked] id=setup
import copy

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from student_src import (assets, checks, colour_keys, data, evaluation, library_cams, library_metrics, models,
                         session, viz)

model, test_set = session.start()  # silences library warnings, seeds, loads model and data
DEVICE = next(model.parameters()).device
CLASSES = test_set.classes
GRADING = data.grading_mode()  # True while the autograder runs the notebook: fewer images, fewer steps

# %% [markdown]
# ## Your tools from Assignments 2 and 3
#
# Layer-CAM is built from the same two pieces as your Grad-CAM: `activations_and_gradients`
# (one forward pass, the layer's activations `A` and the gradient `G = dS/dA`) and `scale_cams`
# (ReLU, min-max, bilinear upsampling, ReLU, min-max). The explorations also use `grad_cam`
# (Assignment 2) and `guided_backprop` (Assignment 3).
#
# **Paste your own functions from Assignments 2 and 3 into the next cell** (whole functions, with
# anything they call), below the imports, to use them here. Until you do, the imports give you
# library-backed versions with the same signatures (pytorch-grad-cam and captum, through
# `student_src.library_cams`). This cell is not graded, and the tests of Part 1 check your
# Layer-CAM with known-good helpers, so a mistake in Assignment 2 does not cost points again.

# %% [code] id=tools_from_assignments_2_and_3
# activations_and_gradients(model, layer_name, x, targets=None) -> (A, G, logits)
# scale_cams(cams, size) -> maps (B, H, W) in [0, 1]
# grad_cam(model, layer_name, x, targets=None) -> maps (B, H, W) in [0, 1]
# guided_backprop(model, x, targets=None) -> gradients (B, 3, H, W)
from student_src.library_cams import library_activations_and_gradients as activations_and_gradients
from student_src.library_cams import library_grad_cam as grad_cam
from student_src.library_cams import library_guided_backprop as guided_backprop
from student_src.library_cams import library_scale_cams as scale_cams

# %% [markdown]
# ## Part 1: Layer-CAM
#
# Grad-CAM weights each channel `k` of a layer's activations `A` by the *average* of its
# gradient, `alpha_k = mean_ij G[k, i, j]`, and sums the channels. Layer-CAM keeps a weight per
# position: the positive part of the gradient at that position,
#
# `cam[b, i, j] = sum_k ReLU(G[b, k, i, j]) * A[b, k, i, j]`
#
# followed by the same post-processing as Grad-CAM (`scale_cams`). The ReLU on the gradient keeps
# only the positions where *more* of the activation would *raise* the class score.
#
# **Task 1.1.** Implement `layer_cam(model, layer_name, x, targets=None)` with
# `activations_and_gradients` and `scale_cams`. Same conventions as `grad_cam`: maps (B, H, W) in
# [0, 1] at the input's size; `targets` is `None` (the predicted class), an `int` or one class
# per image; the model is left as it was.

# %% [solution] id=layer_cam functions=solutions.layercam:layer_cam

# %% [tests] id=test_layer_cam_matches_library points=3
# Compare with pytorch-grad-cam's LayerCAM at three layers, on a copy of the model (tolerance 1e-5: 10x
# the float32 round-off between correct implementations, measured at most about 1e-6). Your layer_cam
# runs here with the library's Assignment 2 helpers (known good), so a mistake in helpers you pasted
# above is not counted twice; everywhere else in the notebook your own helpers are used.
x_check, y_check = test_set.batch([0, 1])
x_check, targets_check = x_check.to(DEVICE), y_check.tolist()
test_model = checks.fresh_copy(model)
snapshot = checks.ModelSnapshot(test_model)
known_good = {"activations_and_gradients": library_cams.library_activations_and_gradients,
              "scale_cams": library_cams.library_scale_cams}
for layer_name, targets in (("layer4", targets_check), ("layer3", None), ("layer2", 3)):
    with checks.globals_replaced(layer_cam, **known_good):
        maps = checks.call(layer_cam, test_model, layer_name, x_check, targets)
    what = f"layer_cam(model, {layer_name!r}, x, targets={targets})"
    checks.assert_map_invariants(maps, (2, 32, 32), what)
    snapshot.assert_unchanged(test_model, what)
    expected = library_cams.library_cam("LayerCAM", test_model, layer_name, x_check, targets)
    checks.assert_close(maps, expected, 1e-5, f"{what} vs pytorch_grad_cam.LayerCAM")
print("layer_cam agrees with pytorch-grad-cam's LayerCAM.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a04_beyond", "check_layer_cam_values", layer_cam)
### END HIDDEN TESTS

# %% [tests] id=test_layer_cam_gradient_relu points=2
# A model small enough to compute by hand: a 1x1 convolution that copies its 2-channel 2x2 input
# (so the activations A of layer "0" are the image), then a linear layer. The gradient G of class
# 0 at that layer is the first row of the linear weights: negative at some positions.
tiny = nn.Sequential(nn.Conv2d(2, 2, 1, bias=False), nn.Flatten(), nn.Linear(8, 2, bias=False)).eval()
with torch.no_grad():
    tiny[0].weight.copy_(torch.eye(2).view(2, 2, 1, 1))
    tiny[2].weight.copy_(torch.tensor([[1.0, -2.0, 0.5, 3.0, -1.0, 2.0, -0.5, 1.0],
                                       [-1.0, 1.0, 2.0, -3.0, 1.0, 1.0, -2.0, 0.5]]))
x_tiny = torch.tensor([[[[1.0, 2.0], [0.5, 1.5]], [[2.0, 0.5], [1.0, 3.0]]]])
# G = [[1, -2], [0.5, 3]] and [[-1, 2], [-0.5, 1]]; sum_k ReLU(G) * A = [[1, 1], [0.25, 7.5]];
# min-max: ([[1, 1], [0.25, 7.5]] - 0.25) / 7.25 = [[3/29, 3/29], [0, 1]] (the size stays 2x2).
known_good = {"activations_and_gradients": library_cams.library_activations_and_gradients,
              "scale_cams": library_cams.library_scale_cams}
with checks.globals_replaced(layer_cam, **known_good):
    maps = checks.call(layer_cam, tiny, "0", x_tiny, targets=[0])
checks.assert_map_invariants(maps, (1, 2, 2), "layer_cam(tiny, '0', x_tiny, targets=[0])")
checks.assert_close(maps, torch.tensor([[[3 / 29, 3 / 29], [0.0, 1.0]]]), 1e-5,
                    "layer_cam on the small model (each position weighted by ReLU of its own gradient)")
print("layer_cam keeps only the positive gradients.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a04_beyond", "check_layer_cam_gradient_relu", layer_cam)
### END HIDDEN TESTS

# %% [markdown]
# **Task 1.2.** Deep layers locate the object coarsely; shallow layers have fine detail and more
# noise. Implement `fuse_layer_cams(model, layer_names, x, targets=None)`, which combines the
# Layer-CAMs of several layers as pytorch-grad-cam does when `LayerCAM` gets several target
# layers: each layer's raw map scaled *at its own resolution*, upsampled to the input size,
# averaged over the layers, and scaled again (the docstring has the steps).

# %% [solution] id=fuse_layer_cams functions=solutions.layercam:fuse_layer_cams

# %% [tests] id=test_fuse_layer_cams points=2
# Compare with pytorch-grad-cam's LayerCAM given several target layers (and one), on a copy of the model.
from pytorch_grad_cam import LayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

x_check, y_check = test_set.batch([0, 1])
x_check, targets_check = x_check.to(DEVICE), y_check.tolist()
test_model = checks.fresh_copy(model)
known_good = {"activations_and_gradients": library_cams.library_activations_and_gradients,
              "scale_cams": library_cams.library_scale_cams}
for layer_names in (["layer2", "layer3", "layer4"], ["layer3"]):
    snapshot = checks.ModelSnapshot(test_model)
    with checks.globals_replaced(fuse_layer_cams, **known_good):
        fused = checks.call(fuse_layer_cams, test_model, layer_names, x_check, targets_check)
    what = f"fuse_layer_cams(model, {layer_names}, x, targets)"
    checks.assert_map_invariants(fused, (2, 32, 32), what)
    snapshot.assert_unchanged(test_model, what)
    library_model = copy.deepcopy(model)  # the library leaves .grad on the parameters: give it its own copy
    with checks.quiet_warnings(), LayerCAM(model=library_model,
                                           target_layers=[library_model.get_submodule(n) for n in layer_names]) as cam:
        expected = cam(input_tensor=x_check, targets=[ClassifierOutputTarget(t) for t in targets_check])
    checks.assert_close(fused, torch.from_numpy(expected).to(fused.device), 1e-5,
                        f"{what} vs pytorch_grad_cam.LayerCAM")
print("fuse_layer_cams agrees with pytorch-grad-cam's multi-layer LayerCAM.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a04_beyond", "check_fuse_layer_cams", fuse_layer_cams)
### END HIDDEN TESTS

# %% [markdown]
# ### 1.3 Layer-CAM and Grad-CAM at three depths
# One row per image; every map explains the predicted class. `layer2` is 16x16, `layer3` 8x8,
# `layer4` 4x4. At `layer4` the gradient is the same at every position (global average pooling,
# then `fc`), so there Layer-CAM differs from Grad-CAM only by the ReLU on the gradient. Below
# the figure: the share of each map above 0.5, a rough measure of how concentrated it is.

# %% [code] id=fig_layercam_vs_gradcam
n_show = 1 if GRADING else 4
x_show, y_show = test_set.batch(data.evaluation_indices(test_set)[:n_show])
x_show = x_show.to(DEVICE)
with torch.no_grad():
    confidence_show, predicted_show = torch.softmax(model(x_show), dim=1).max(dim=1)
targets_show = predicted_show.tolist()
titles_show = [viz.prediction_title(CLASSES, int(label), int(predicted), float(confidence))
               for label, predicted, confidence in zip(y_show, predicted_show, confidence_show)]

depth_maps = {}
for layer_name in ("layer2", "layer3", "layer4"):
    depth_maps[f"Grad-CAM {layer_name}"] = grad_cam(model, layer_name, x_show, targets_show).cpu()
    depth_maps[f"Layer-CAM {layer_name}"] = layer_cam(model, layer_name, x_show, targets_show).cpu()
depth_maps["Layer-CAM fused\nlayer2+3+4"] = fuse_layer_cams(model, ["layer2", "layer3", "layer4"], x_show,
                                                             targets_show).cpu()
viz.show_explanations(data.denormalize(x_show), depth_maps, titles_show,
                      suptitle="Grad-CAM and Layer-CAM at three depths (predicted class)")
plt.show()
for method, maps in depth_maps.items():
    print(f"{' '.join(method.split()):>28}: {100 * float((maps > 0.5).float().mean()):5.1f}% of pixels above 0.5")

# %% [markdown]
# **Question 1.4 (2 points, needs the real model).** Compare Grad-CAM and Layer-CAM at `layer2`, `layer3` and `layer4`
# in the figure above. Where does Layer-CAM's finer map help, and where does it not differ? Why is
# Grad-CAM at `layer2` so much less useful than Layer-CAM there?

# %% [answer] id=q_layercam_depths points=2
# At layer4 the two are nearly the same (the gradient is spatially constant after global average
# pooling, so Layer-CAM only drops the channels whose weight is negative): coarse 4x4 blobs. At
# layer2 (and layer3) Layer-CAM gives a sharper map that follows the object's outline and parts,
# and separates two nearby regions that layer4 merges into one blob. Grad-CAM at layer2 averages
# each channel's gradient over the whole 16x16 map: early channels are generic (edges, colours)
# and fire everywhere, positive and negative position-wise contributions cancel in the mean, so
# the channel weights carry little class information and the map lights up texture or background
# everywhere. Layer-CAM keeps the gradient's position, so only the places that actually raise the
# score count. The fused map combines layer4's localisation with layer2's detail; where the
# shallow maps are noisy, fusion also passes some of that noise on.
# RUBRIC: 1 point: at layer4 the two are nearly the same (constant gradient); at layer2/layer3
#   Layer-CAM is finer
# RUBRIC: 1 point: Grad-CAM at layer2 averages the gradient over the map: contributions cancel and
#   the weights carry little class information

# %% [markdown]
# ## Part 2: is a map faithful to the model?
#
# **Deletion** (Petsiuk et al. 2018): remove the pixels in order of decreasing importance,
# according to the map, and record the probability of the explained class after each step. If
# the map names the pixels the decision rests on, the probability falls fast: a *low* area under
# the curve is good. **Insertion** starts from an image with the information removed (a blurred
# copy) and puts the pixels back in the same order: a *high* area is good.
#
# Conventions (the docstrings have the details): a pixel is a position (h, w), all channels
# change together; the order is the saliency, largest first, ties kept in the order of
# `saliency.flatten()` (a *stable* sort); after step `k` of `steps`, the first `(k * N) // steps`
# of the N pixels are changed, so a curve has `steps + 1` points; the recorded value is the
# softmax probability of the *given* target class; `baseline=0.0` is the dataset's mean colour
# (the images are normalised).
#
# **Task 2.1.** Implement `deletion_curve`. **Task 2.2.** Implement `insertion_curve` (hint: it is
# a deletion curve that starts from the baseline image). **Task 2.3.** Implement
# `area_under_curve` (the trapezoidal rule with the x-axis running from 0 to 1).

# %% [solution] id=deletion_curve functions=solutions.faithfulness:deletion_curve

# %% [tests] id=test_deletion_curve_hand points=2
# A model you can compute by hand: one-channel 2x2 images, logit 0 = the sum of the pixels and
# logit 1 = 0, so p(class 0) = sigmoid(sum of the pixels).
sum_model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False)).eval()
with torch.no_grad():
    sum_model[1].weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]))
x_hand = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
saliency_hand = torch.tensor([[[0.5, 0.9], [0.5, 0.1]]])  # order: the 2, then the 1 and the 3 (tied), then the 4
cases = [  # (steps, baseline, the sum of the pixels after each step)
    (4, 0.0, [10.0, 8.0, 7.0, 4.0, 0.0]),
    (2, 0.0, [10.0, 7.0, 0.0]),             # two pixels per step
    (3, 0.0, [10.0, 8.0, 7.0, 0.0]),        # (k * 4) // 3 = 0, 1, 2, 4 pixels removed
    (4, 1.0, [10.0, 9.0, 9.0, 7.0, 4.0]),   # removed pixels become 1
]
for steps, baseline, sums in cases:
    curve = checks.call(deletion_curve, sum_model, x_hand, saliency_hand, [0], steps=steps, baseline=baseline)
    what = f"deletion_curve on the 2x2 image (steps={steps}, baseline={baseline})"
    checks.assert_shape(curve, (1, steps + 1), what)
    checks.assert_close(curve, torch.sigmoid(torch.tensor([sums])), 1e-5, what)
print("deletion_curve is right on the hand-computed cases.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a04_beyond", "check_deletion_curve_hand", deletion_curve)
### END HIDDEN TESTS

# %% [tests] id=test_deletion_curve_resnet points=3
# The explained class is the one given, also when the model predicts another: on the hand-made
# model, p(class 1) = 1 - sigmoid(sum) = sigmoid(-sum) at every step.
sum_model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False)).eval()
with torch.no_grad():
    sum_model[1].weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]))
x_hand = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
saliency_hand = torch.tensor([[[0.5, 0.9], [0.5, 0.1]]])
curve = checks.call(deletion_curve, sum_model, x_hand, saliency_hand, [1], steps=4)
checks.assert_close(curve, torch.sigmoid(-torch.tensor([[10.0, 8.0, 7.0, 4.0, 0.0]])), 1e-5,
                    "deletion_curve must record the probability of the GIVEN target class (here class 1)")
# The ResNet: a batch with one target per image, a tensor baseline (a blurred copy of the images).
x_check, _ = test_set.batch([0, 1])
x_check = x_check.to(DEVICE)
test_model = checks.fresh_copy(model)
snapshot = checks.ModelSnapshot(test_model)
saliency = torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(0)).to(DEVICE)
targets = torch.tensor([3, 9], device=DEVICE)
blurred = evaluation.blurred_baseline(x_check)
curve = checks.call(deletion_curve, test_model, x_check, saliency, targets, steps=4, baseline=blurred)
checks.assert_shape(curve, (2, 5), "deletion_curve(model, x, saliency, targets, steps=4, baseline=blurred)")
snapshot.assert_unchanged(test_model, "deletion_curve")
with torch.no_grad():
    p_untouched = torch.softmax(test_model(x_check), dim=1)[torch.arange(2), targets]
    p_baseline = torch.softmax(test_model(blurred), dim=1)[torch.arange(2), targets]
checks.assert_close(curve[:, 0], p_untouched, 1e-5, "step 0: the target probability on the untouched images")
checks.assert_close(curve[:, -1], p_baseline, 1e-5, "the last step: the target probability on the baseline images")
print("deletion_curve explains the given classes, in a batch, with a tensor baseline.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a04_beyond", "check_deletion_curve_target_class", deletion_curve)
hidden.run("a04_beyond", "check_deletion_curve_resnet", deletion_curve)
### END HIDDEN TESTS

# %% [solution] id=insertion_curve functions=solutions.faithfulness:insertion_curve

# %% [tests] id=test_insertion_curve points=2
# The hand-made model again: pixels of x go into a black (0) image, the 2 first, then the 1 and the 3, then the 4.
sum_model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False)).eval()
with torch.no_grad():
    sum_model[1].weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]))
x_hand = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
saliency_hand = torch.tensor([[[0.5, 0.9], [0.5, 0.1]]])
curve = checks.call(insertion_curve, sum_model, x_hand, saliency_hand, [0], steps=4, baseline=0.0)
checks.assert_shape(curve, (1, 5), "insertion_curve(model, x, saliency, [0], steps=4)")
checks.assert_close(curve, torch.sigmoid(torch.tensor([[0.0, 2.0, 3.0, 6.0, 10.0]])), 1e-5,
                    "insertion_curve on the 2x2 image (baseline 0)")
# The ResNet, from a blurred copy: the first column is the baseline image, the last the image itself.
x_check, _ = test_set.batch([0, 1])
x_check = x_check.to(DEVICE)
test_model = checks.fresh_copy(model)
saliency = torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(1)).to(DEVICE)
targets = torch.tensor([4, 8], device=DEVICE)
blurred = evaluation.blurred_baseline(x_check)
curve = checks.call(insertion_curve, test_model, x_check, saliency, targets, steps=4, baseline=blurred)
checks.assert_shape(curve, (2, 5), "insertion_curve(model, x, saliency, targets, steps=4, baseline=blurred)")
with torch.no_grad():
    p_untouched = torch.softmax(test_model(x_check), dim=1)[torch.arange(2), targets]
    p_baseline = torch.softmax(test_model(blurred), dim=1)[torch.arange(2), targets]
checks.assert_close(curve[:, 0], p_baseline, 1e-5, "step 0: the target probability on the baseline images")
checks.assert_close(curve[:, -1], p_untouched, 1e-5, "the last step: the target probability on the images themselves")
print("insertion_curve looks right.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a04_beyond", "check_insertion_curve_hand", insertion_curve)
hidden.run("a04_beyond", "check_insertion_curve_resnet", insertion_curve)
### END HIDDEN TESTS

# %% [solution] id=area_under_curve functions=solutions.faithfulness:area_under_curve

# %% [tests] id=test_area_under_curve points=1
constant = torch.full((2, 9), 0.3)
checks.assert_close(checks.call(area_under_curve, constant), torch.full((2,), 0.3), 1e-6,
                    "a constant curve p has area p (the x-axis runs from 0 to 1)")
checks.assert_close(checks.call(area_under_curve, torch.linspace(0, 1, 5)[None]), torch.tensor([0.5]), 1e-6,
                    "a straight line from 0 to 1 has area 1/2")
# Three points at x = 0, 1/2, 1: 1/2 * (1 + 0.5) / 2 + 1/2 * (0.5 + 0.25) / 2 = 0.5625
checks.assert_close(checks.call(area_under_curve, torch.tensor([[1.0, 0.5, 0.25]])), torch.tensor([0.5625]), 1e-6,
                    "area_under_curve by the trapezoidal rule")
print("area_under_curve looks right.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a04_beyond", "check_area_under_curve", area_under_curve)
### END HIDDEN TESTS

# %% [markdown]
# ### 2.4 Six methods ranked by faithfulness
# The same test images, each explained for its predicted class at `layer3` (8x8: at `layer4`
# Grad-CAM and XGradCAM give identical maps) by your Grad-CAM and Layer-CAM, pytorch-grad-cam's
# Grad-CAM++, XGradCAM and ScoreCAM, and a **random map**: the baseline every method must beat.
# Deletion replaces pixels by the mean colour; insertion starts from a blurred copy. Next to them
# two of pytorch-grad-cam's metrics on the same maps: **ROAD** (Rong et al., ICML 2022,
# <https://arxiv.org/abs/2202.00449>; it fills removed pixels from their neighbours so the model
# does not see holes; higher is better) and the **confidence change** when the image is
# multiplied by the map (higher is better).
#
# ScoreCAM runs one forward pass per channel of the layer (256 per image at `layer3`): it is left
# out when the autograder runs the notebook, and so is ROAD. The ranking uses 8 images on a CPU
# (on a 2-core CPU the maps take at most {{runtime faithfulness_maps}}, the curves at most
# {{runtime fig_faithfulness_curves}}), 16 on a GPU; raise `n_ranked` for a more reliable ranking
# if you can wait (the time grows in proportion).

# %% [code] id=faithfulness_maps
RANK_LAYER = "layer3"
n_ranked = 2 if GRADING else (16 if DEVICE.type == "cuda" else 8)  # raise it if you can wait
steps = 4 if GRADING else 12
x_rank, y_rank = test_set.batch(data.evaluation_indices(test_set)[:n_ranked])
x_rank = x_rank.to(DEVICE)
with torch.no_grad():
    confidence_rank, predicted_rank = torch.softmax(model(x_rank), dim=1).max(dim=1)
targets_rank = predicted_rank.tolist()

ranked_maps = {
    "Grad-CAM": grad_cam(model, RANK_LAYER, x_rank, targets_rank),
    "Grad-CAM++": library_cams.library_cam("GradCAM++", model, RANK_LAYER, x_rank, targets_rank),
    "XGradCAM": library_cams.library_cam("XGradCAM", model, RANK_LAYER, x_rank, targets_rank),
    "Layer-CAM": layer_cam(model, RANK_LAYER, x_rank, targets_rank),
}
if GRADING:
    print("ScoreCAM is left out while the autograder runs the notebook (256 forward passes per image).")
else:
    ranked_maps["ScoreCAM"] = library_cams.library_cam("ScoreCAM", model, RANK_LAYER, x_rank, targets_rank,
                                                       batch_size=64)
ranked_maps["random"] = evaluation.random_saliency_maps(x_rank, seed=0)
print(f"{len(ranked_maps)} methods, {n_ranked} images, {steps} steps per curve")

# %% [code] id=fig_ranked_methods_maps
n_rows = min(n_ranked, 3)
titles_rank = [viz.prediction_title(CLASSES, int(y_rank[i]), int(predicted_rank[i]), float(confidence_rank[i]))
               for i in range(n_rows)]
shown_maps = {m: maps[:n_rows].cpu() for m, maps in ranked_maps.items()}
shown_maps["random"] = viz.Column(shown_maps["random"], colour_keys.real_range(shown_maps["random"], "uniform random value"))
viz.show_explanations(data.denormalize(x_rank[:n_rows]), shown_maps, titles_rank,
                      suptitle=f"The maps being ranked ({RANK_LAYER}, predicted class)")
plt.show()

# %% [code] id=fig_faithfulness_curves
blurred_rank = evaluation.blurred_baseline(x_rank)
curves, rows = {}, []
for method, maps in ranked_maps.items():
    deletion = deletion_curve(model, x_rank, maps, targets_rank, steps=steps, baseline=0.0)
    insertion = insertion_curve(model, x_rank, maps, targets_rank, steps=steps, baseline=blurred_rank)
    curves[method] = (deletion.mean(dim=0).cpu(), insertion.mean(dim=0).cpu())
    row = {"method": method, "deletion_auc": area_under_curve(deletion).mean().item(),
           "insertion_auc": area_under_curve(insertion).mean().item()}
    row["difference"] = row["insertion_auc"] - row["deletion_auc"]
    # ROAD imputes the removed pixels by solving a sparse linear system per image: left out under the autograder.
    row["ROAD"] = np.nan if GRADING else library_metrics.road_combined(model, x_rank, maps, targets_rank,
                                                                       percentiles=(20, 50, 80)).mean().item()
    row["conf_change"] = library_metrics.cam_mult_image_confidence_change(model, x_rank, maps,
                                                                          targets_rank).mean().item()
    rows.append(row)
rows.sort(key=lambda row: row["difference"], reverse=True)

fractions = np.linspace(0, 1, steps + 1)
fig, axes = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
for method, (deletion, insertion) in curves.items():
    style = {"color": "black", "linestyle": "--"} if method == "random" else {}
    axes[0].plot(fractions, deletion.numpy(), label=method, **style)
    axes[1].plot(fractions, insertion.numpy(), label=method, **style)
axes[0].set_title("Deletion (mean colour): lower area is better")
axes[1].set_title("Insertion (from a blurred copy): higher area is better")
for ax, verb in zip(axes, ("removed", "inserted")):
    ax.set_xlabel(f"fraction of pixels {verb}, most important first")
    ax.set_ylabel("p(explained class), mean over images")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
viz.legend_outside(axes[1])
fig.suptitle(f"Faithfulness of {len(curves)} methods at {RANK_LAYER} ({n_ranked} images)")
viz.stamp_standin(fig)
plt.show()

# %% [code] id=fig_faithfulness_ranking
print(evaluation.format_table(rows))
methods = [row["method"] for row in rows]
positions = np.arange(len(methods))
fig, axes = plt.subplots(1, 2, figsize=(15, 4.5), layout="constrained")
axes[0].bar(positions - 0.2, [row["deletion_auc"] for row in rows], 0.4, label="deletion AUC (lower is better)")
axes[0].bar(positions + 0.2, [row["insertion_auc"] for row in rows], 0.4, label="insertion AUC (higher is better)")
axes[0].set_title("Deletion and insertion, best first (insertion - deletion)")
axes[0].set_ylim(0, 1.1 * max(max(row["deletion_auc"], row["insertion_auc"]) for row in rows))
axes[1].bar(positions - 0.2, [row["ROAD"] for row in rows], 0.4, color="tab:green", label="ROAD combined")
axes[1].bar(positions + 0.2, [row["conf_change"] for row in rows], 0.4, color="tab:purple",
            label="confidence change of x * map")
axes[1].axhline(0, color="black", linewidth=0.8)
axes[1].set_title("pytorch-grad-cam's metrics on the same maps (higher is better)")
for ax in axes:
    ax.set_xticks(positions)
    ax.set_xticklabels(methods, rotation=30, ha="right")
    viz.legend_outside(ax)
    ax.grid(axis="y", alpha=0.3)
viz.stamp_standin(fig)
plt.show()
session.standin_note("this ranking")

# %% [markdown]
# **Question 2.5 (3 points, needs the real model).** Which method would you trust, and why? Use the table and the plots:
# does every method beat the random map? Do deletion, insertion and ROAD agree on the order?
# What makes one ranking on a few images unreliable, and what would you change before you
# believed it?

# %% [answer] id=q_trust points=3
# (With the trained model, the gradient CAMs beat the random map clearly on insertion and on
# deletion; the order among Grad-CAM, Grad-CAM++, XGradCAM and Layer-CAM is close and changes
# with the metric; ScoreCAM often does well on insertion, since it is built from the model's own
# response to masked images.) A good answer: trust a method that beats the random baseline on
# every metric and ranks near the top consistently (deletion, insertion and ROAD), not the one
# with the prettiest maps; here that is a gradient CAM at layer3 (e.g. Layer-CAM or Grad-CAM++),
# with the caveat that the differences among them are small. The metrics disagree because they
# measure different things: deletion with a constant colour creates holes the model never saw
# in training (out-of-distribution inputs can drop the probability whatever the order), insertion
# depends on the blur baseline, ROAD imputes removed pixels to limit that artefact and the
# confidence change rewards maps that keep a lot of the image. A ranking on 12 images, one seed
# and one layer is noisy: report means with spread (standard error, per-image wins), use more
# images, several baselines and layers, and check that the gaps are larger than the spread
# before calling one method more faithful.
# RUBRIC: 1 point: uses the table: which methods beat the random map, and whether deletion,
#   insertion and ROAD agree
# RUBRIC: 1 point: a choice of method justified by consistent ranking across metrics, not by the
#   prettiest map
# RUBRIC: 1 point: why a few images are unreliable (variance, baseline choice) and what to change
#   (more images, repeats, spread)

# %% [markdown]
# ## Part 3: sanity checks
#
# Adebayo et al. (2018) randomise the model's weights **cascading from the top layer down**:
# first `fc`, then `layer4` as well, then `layer3`, ... down to `conv1`, and after each stage they
# recompute the explanation and compare it with the trained model's. An explanation of what the
# model *learned* must change as the learned weights disappear; one that stays the same is
# showing the image (an edge detector would pass as an explanation too).
#
# The comparison is the **Spearman rank correlation** of the two maps of an image: the Pearson
# correlation of their pixels' ranks, so only the ordering counts, not the scale.
#
# **Task 3.1.** Implement `spearman_rank_correlation(a, b)` for batches of maps; tied values get
# the average of the ranks they span, as in `scipy.stats.spearmanr` (maps after a ReLU are full
# of tied zeros); constant maps get 1 (two constant maps) or 0 (one constant map), never NaN.
#
# **Task 3.2.** Implement `cascading_randomization(model, explain_fn, x, targets=None,
# layer_order=None, seed=0)`. **The model you are given must come out unchanged**: randomise a
# `copy.deepcopy` of it. The docstring says how to draw the new weights (one seeded generator).

# %% [solution] id=spearman_rank_correlation functions=solutions.sanity:spearman_rank_correlation

# %% [tests] id=test_spearman_rank_correlation points=2
# Compare with scipy on maps with distinct values; the same ordering gives 1, the reverse -1.
from scipy.stats import spearmanr

generator = torch.Generator().manual_seed(0)
a, b = torch.rand(3, 8, 8, generator=generator), torch.rand(3, 8, 8, generator=generator)
b[1] = 2 * a[1] + 1  # the same ordering at another scale
rho = checks.call(spearman_rank_correlation, a, b)
checks.assert_shape(rho, (3,), "spearman_rank_correlation(a, b) for maps (3, 8, 8)")
expected = torch.tensor([spearmanr(a[i].flatten().numpy(), b[i].flatten().numpy()).statistic for i in range(3)])
checks.assert_close(rho.double(), expected, 1e-5, "spearman_rank_correlation vs scipy.stats.spearmanr")
checks.assert_close(checks.call(spearman_rank_correlation, a, -a ** 3).double(),
                    -torch.ones(3, dtype=torch.double), 1e-5,
                    "a reversed ordering must give -1")
print("spearman_rank_correlation agrees with scipy.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a04_beyond", "check_spearman_rank_correlation", spearman_rank_correlation)
### END HIDDEN TESTS

# %% [tests] id=test_spearman_ties points=1
# Ties (ReLU'd maps, integer levels) get average ranks, as in scipy; constant maps give 1 or 0, not NaN.
from scipy.stats import spearmanr

generator = torch.Generator().manual_seed(1)
a = torch.relu(torch.randn(3, 6, 6, generator=generator))
b = torch.randint(0, 4, (3, 6, 6), generator=generator).float()
expected = torch.tensor([spearmanr(a[i].flatten().numpy(), b[i].flatten().numpy()).statistic for i in range(3)])
checks.assert_close(checks.call(spearman_rank_correlation, a, b).double(), expected, 1e-5,
                    "spearman_rank_correlation with tied values (average ranks, as scipy)")
one_constant = checks.call(spearman_rank_correlation, torch.zeros(2, 4, 4), torch.rand(2, 4, 4, generator=generator))
assert torch.isfinite(one_constant).all() and one_constant.abs().max() < 1e-6, \
    "a constant map against a non-constant one must give 0 (not NaN)"
both_constant = checks.call(spearman_rank_correlation, torch.zeros(2, 4, 4), torch.full((2, 4, 4), 0.5))
assert torch.isfinite(both_constant).all() and (both_constant - 1).abs().max() < 1e-6, \
    "two constant maps must give 1 (the explanation did not change), not NaN"
print("Ties and constant maps are handled.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a04_beyond", "check_spearman_rank_correlation_ties", spearman_rank_correlation)
### END HIDDEN TESTS

# %% [solution] id=cascading_randomization functions=solutions.sanity:cascading_randomization

# %% [tests] id=test_cascading_randomization points=3
# The stages and the control, with the library's Grad-CAM at layer4, on a copy of the model.
x_check, y_check = test_set.batch([0])
x_check, targets_check = x_check.to(DEVICE), y_check.tolist()
test_model = checks.fresh_copy(model)


def explain_layer4(model, x, targets):
    return library_cams.library_grad_cam(model, "layer4", x, targets)


result = cascading_randomization(test_model, explain_layer4, x_check, targets_check, layer_order=None, seed=1)
assert isinstance(result, dict), "cascading_randomization must return a dict {stage name: mean correlation}"
assert list(result) == ["original", "fc", "layer4", "layer3", "layer2", "layer1", "bn1", "conv1"], \
    ("the keys must be 'original', then the stages in the order they were randomised (layer_order=None: "
     f"the top-level children with parameters, last first); got {list(result)}")
assert all(isinstance(value, float) and -1 - 1e-6 <= value <= 1 + 1e-6 for value in result.values()), \
    "each value must be a Python float in [-1, 1] (the batch mean of the correlations)"
assert abs(result["original"] - 1) < 1e-5, \
    "'original' compares the maps of an untouched copy with the original maps: a deterministic method gives 1"
print("cascading_randomization returns the stages in order.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a04_beyond", "check_cascading_randomization_values", cascading_randomization)
hidden.run("a04_beyond", "check_cascading_randomization_cumulative", cascading_randomization)
### END HIDDEN TESTS

# %% [tests] id=test_cascading_randomization_leaves_model points=2
# The model passed in must come out with the same weights, modules, mode and hooks.
x_check, y_check = test_set.batch([0])
x_check, targets_check = x_check.to(DEVICE), y_check.tolist()
test_model = checks.fresh_copy(model)
snapshot = checks.ModelSnapshot(test_model)


def explain_layer4(model, x, targets):
    return library_cams.library_grad_cam(model, "layer4", x, targets)


cascading_randomization(test_model, explain_layer4, x_check, targets_check, layer_order=["fc", "layer4"])
snapshot.assert_unchanged(test_model,
                          "cascading_randomization must randomise a copy.deepcopy of the model, not the model")
print("The model is left unchanged.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a04_beyond", "check_cascading_randomization_leaves_model", cascading_randomization)
### END HIDDEN TESTS

# %% [markdown]
# ### 3.3 Which methods depend on the weights?
# Grad-CAM and Layer-CAM at `layer3`, guided backpropagation (the largest absolute value over
# the colour channels) and, as a control that ignores the model entirely, the edges of the image
# (a Sobel filter). Every stage explains the classes the trained model predicts.

# %% [code] id=fig_sanity_cascade
n_sanity = 1 if GRADING else 8
x_sanity, _ = test_set.batch(data.evaluation_indices(test_set)[:n_sanity])
x_sanity = x_sanity.to(DEVICE)
with torch.no_grad():
    targets_sanity = model(x_sanity).argmax(dim=1).tolist()


def image_edges(model, x, targets):
    """Sobel edge magnitude of the grey image: depends on the image only, never on the model."""
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device)
    grey = x.mean(dim=1, keepdim=True)
    dx = F.conv2d(grey, sobel.view(1, 1, 3, 3), padding=1)
    dy = F.conv2d(grey, sobel.t().reshape(1, 1, 3, 3), padding=1)
    return (dx ** 2 + dy ** 2).sqrt()[:, 0]


sanity_methods = {
    "Grad-CAM layer3": lambda m, x, t: grad_cam(m, "layer3", x, t),
    "Layer-CAM layer3": lambda m, x, t: layer_cam(m, "layer3", x, t),
    "guided backprop": lambda m, x, t: guided_backprop(m, x, t).abs().amax(dim=1),
    "image edges (control)": image_edges,
}
if GRADING:  # one method fewer while the autograder runs the notebook
    del sanity_methods["Layer-CAM layer3"]
cascades, first_image_maps = {}, {}
for method, explain in sanity_methods.items():
    seen = []

    def explain_and_keep(m, x, t, explain=explain, seen=seen):
        maps = explain(m, x, t)
        seen.append(maps[0].detach().float().cpu())
        return maps

    cascades[method] = cascading_randomization(model, explain_and_keep, x_sanity, targets_sanity, seed=0)
    first_image_maps[method] = seen[1:]  # seen[0]: the original maps; then one per stage

stages = list(next(iter(cascades.values())))
fig, ax = plt.subplots(figsize=(10, 4), layout="constrained")
for method, correlations in cascades.items():
    style = {"color": "black", "linestyle": "--"} if "control" in method else {"marker": "o"}
    ax.plot(stages, [correlations[stage] for stage in stages], label=method, **style)
ax.axhline(0, color="grey", linewidth=0.8)
ax.set_ylim(-0.5, 1.05)
ax.set_xlabel("randomised so far (cumulative, from the output down)")
ax.set_ylabel("Spearman rank correlation\nwith the original maps")
ax.set_title(f"Cascading randomisation (Adebayo et al. 2018), mean over {n_sanity} images")
viz.legend_outside(ax)
ax.grid(alpha=0.3)
viz.stamp_standin(fig)
plt.show()
session.standin_note("these correlations")

# %% [code] id=fig_sanity_maps
# The first image's maps after each stage (each map scaled to its own maximum).
panels, panel_titles = [], []
for method, maps in first_image_maps.items():
    for stage, stage_map in zip(stages, maps):
        panels.append((stage_map / (stage_map.max() + 1e-12)).numpy())
        panel_titles.append(f"{method}\n{stage}" if stage == "original" else stage)
viz.show_grid(panels, panel_titles, ncols=len(stages), cell_size=1.5,
              key=colour_keys.normalised("each map divided by its own maximum", what="map value"),
              suptitle="Maps of the first image as the weights are randomised, top layer first")
plt.show()

# %% [markdown]
# **Question 3.4 (3 points, needs the real model).** What does the sanity check show about guided backpropagation?
# Compare its curve with Grad-CAM's, Layer-CAM's and the edge control's, and say what that means
# for using guided backpropagation (and Guided Grad-CAM) to explain what the model learned.

# %% [answer] id=q_sanity_guided points=3
# (On the trained model:) Grad-CAM's and Layer-CAM's correlation drops as soon as fc and layer4
# are randomised and stays low: their maps are built from the class weights and late features,
# so they depend on what the model learned: they pass the test. Guided backpropagation's
# correlation stays high through the top stages and falls only when the early layers are
# randomised; its maps keep showing the image's edges, close to the edge control (which is 1 by
# construction, since it never looks at the model). As Adebayo et al. found, guided backprop
# mostly reconstructs the image: the forward ReLU masks, not the learned decision weights,
# decide what it shows. So it fails the sanity check: a sharp guided backprop map is not evidence
# of what the model uses, and Guided Grad-CAM's detail comes from it (only the Grad-CAM factor is
# model-dependent). Use it, if at all, for visual detail inside a region that a method which
# passes the test has found, not as an explanation on its own.
# RUBRIC: 1 point: Grad-CAM and Layer-CAM lose correlation once the top layers are randomised:
#   they pass
# RUBRIC: 1 point: guided backprop stays high, close to the edge control: it fails
# RUBRIC: 1 point: consequence: guided backprop (and Guided Grad-CAM) cannot show what the model
#   learned

# %% [markdown]
# ## Part 4: a transformers image classifier
#
# The kit's loader `models.load_hf_classifier(name)` loads any Hugging Face image classifier
# from the local cache (fetch it once with `python -m student_src.fetch --hf microsoft/resnet-18`)
# and wraps it: a transformers model returns an *output object*, while pytorch-grad-cam (and
# your functions) need `model(x)` to be the logits tensor. The wrapper also converts the kit's
# CIFAR normalisation to the model's own, and can resize the input (`input_size`).
# Offline, without the cached model, the cells below use a random-init stand-in with the same
# architecture, and say so: its maps show the mechanics only.

# %% [code] id=hf_load
n_hf = 1 if GRADING else 4
try:
    hf_model = models.load_hf_classifier("microsoft/resnet-18")
except assets.MissingAssetError as error:
    print(f"{error}\n")
    hf_model = models.load_hf_classifier(standin=True)
if models.is_standin(hf_model):
    print("USING THE STAND-IN: a random-init transformers ResNet-18 (ImageNet stem, 10 made-up labels).\n"
          "Its maps show how the method works, not what a trained model looks at.")
HF_DEVICE = next(hf_model.parameters()).device
x_hf, _ = test_set.batch(data.evaluation_indices(test_set)[:n_hf])
x_hf = x_hf.to(HF_DEVICE)
with torch.no_grad():
    raw_output = hf_model.model(pixel_values=torch.zeros(1, 3, 224, 224, device=HF_DEVICE))
    logits_hf = hf_model(x_hf)
print(f"The transformers model returns an output object ({type(raw_output).__name__}); "
      f"the wrapper returns its logits, a {type(logits_hf).__name__} of shape {tuple(logits_hf.shape)}")

# The stages of a transformers ResNet, and what they give for a 32x32 image and for one upsampled to 224x224.
stage_names = [name for name, _ in hf_model.named_modules() if name.startswith("model.resnet.encoder.stages.")
               and name.count(".") == 4]
hf_224 = models.HFLogitsClassifier(hf_model.model, hf_model.model_mean.flatten().tolist(),
                                   hf_model.model_std.flatten().tolist(), input_size=224).to(HF_DEVICE).eval()


def stage_shapes(classifier, x):
    """Output shape (C, h, w) of every stage, recorded with forward hooks (removed afterwards)."""
    shapes, handles = {}, []
    try:
        for name in stage_names:
            hook = lambda module, inputs, output, name=name: shapes.__setitem__(name, tuple(output.shape[1:]))
            handles.append(classifier.get_submodule(name).register_forward_hook(hook))
        with torch.no_grad():
            classifier(x)
    finally:
        for handle in handles:
            handle.remove()
    return shapes


for (name, at_32), at_224 in zip(stage_shapes(hf_model, x_hf[:1]).items(), stage_shapes(hf_224, x_hf[:1]).values()):
    print(f"{name}: {at_32} at 32x32, {at_224} at 224x224")

# %% [markdown]
# The last stage, `model.resnet.encoder.stages.3`, plays the role of `layer4`: the last
# convolutional feature map before pooling and the classifier. Its ImageNet stem (a 7x7 stride-2
# convolution and a stride-2 max-pool) and four stages divide the resolution by 32, so a 32x32
# image ends as a **1x1** map there: one value per channel, and every Grad-CAM is constant, which
# the scaling turns into all zeros. Upsampling the input to 224x224 gives a 7x7 map again.

# %% [code] id=fig_hf_gradcam_1x1_vs_224
HF_LAYER = "model.resnet.encoder.stages.3"
with torch.no_grad():
    confidence_hf, predicted_hf = torch.softmax(hf_224(x_hf), dim=1).max(dim=1)
targets_hf = predicted_hf.tolist()
maps_32 = grad_cam(hf_model, HF_LAYER, x_hf, targets_hf).cpu()
maps_224 = grad_cam(hf_224, HF_LAYER, x_hf, targets_hf).cpu()
print(f"Grad-CAM on 32x32 inputs: largest value {float(maps_32.max()):.3g} (a 1x1 map carries no location)")
names_hf = [name.split(",")[0][:18] for name in hf_224.class_names]
titles_hf = [viz.prediction_title(names_hf, None, int(p), float(c)) for p, c in zip(predicted_hf, confidence_hf)]
viz.show_explanations(data.denormalize(x_hf), {"Grad-CAM, 32x32 input\n(stage 4 is 1x1)": maps_32,
                                               "Grad-CAM, input upsampled\nto 224 (stage 4 is 7x7)": maps_224},
                      titles_hf, suptitle="A transformers ResNet-18 on CIFAR-10 images")
plt.show()

# %% [markdown]
# **Question 4.1 (2 points).** How did you choose the target layer of the transformers model, and
# why is its Grad-CAM empty on 32x32 images? What does upsampling the input to 224x224 fix, and
# what does it not fix?

# %% [answer] id=q_hf_layer points=2
# The target is the last convolutional stage before pooling and the classifier,
# model.resnet.encoder.stages.3 (the counterpart of torchvision's layer4), found by listing
# named_modules() and checking the output shapes with hooks; the wrapper is needed because
# pytorch-grad-cam and our functions need model(x) to return the logits tensor, not an output
# object. The ImageNet stem (7x7 stride-2 convolution + stride-2 max-pool) and the three stride-2
# stages divide the resolution by 32: a 32x32 image gives a 1x1 map, one value per channel, so the
# weighted sum is one number, and after upsampling and min-max scaling the map is constant (all
# zeros). Upsampling the input to 224x224 restores a 7x7 map, so the map can localise again, and
# matches the resolution the model was trained at. It does not add information: the image is
# still 32x32 pixels blown up (blurry, off the training distribution), and an ImageNet model
# predicts ImageNet classes, not CIFAR-10's, unless it is fine-tuned. Alternatives: an earlier
# stage (stages.2 gives 2x2 at 32x32), Layer-CAM at an earlier stage, or a CIFAR stem.
# RUBRIC: 1 point: how the target layer was chosen (last conv stage, named_modules and output
#   shapes), and why 32x32 gives a 1x1, constant map
# RUBRIC: 1 point: upsampling to 224x224 restores a 7x7 map but adds no information the 32x32
#   image lacks

# %% [markdown]
# ## Part 5: questions
#
# **Question 5.1 (2 points).** How do the maps of this course (Grad-CAM, Layer-CAM, guided
# backpropagation) differ from Shapley-value attributions (SHAP, e.g. KernelSHAP or DeepSHAP)?
# Name one property Shapley values guarantee that these maps do not, and one practical cost.

# %% [answer] id=q_shapley points=2
# CAM methods read one layer's activations and local gradients and produce a relative heatmap
# (ReLU'd and min-max scaled, no units); guided backpropagation is a modified gradient. Shapley
# values (Lundberg & Lee 2017) attribute the difference between the model's output and a
# baseline output to the input features by averaging each feature's marginal contribution over
# all coalitions of the other features; they satisfy efficiency (the attributions sum exactly to
# f(x) - f(baseline)), symmetry, dummy (a feature that never changes the output gets 0) and
# linearity, and can be signed (evidence against the class). Gradient maps are local (a
# first-order, infinitesimal view at x) and guarantee none of these: the ReLU and scaling discard
# negative evidence and magnitudes. The price: exact Shapley values need exponentially many
# model evaluations; approximations (KernelSHAP sampling, DeepSHAP, GradientSHAP) need many
# forward passes per image and a choice of baseline and of feature groups (superpixels), and the
# result depends on both; CAMs cost one forward and one backward pass.
# RUBRIC: 1 point: one property Shapley values guarantee that these maps do not (efficiency,
#   symmetry, dummy, linearity)
# RUBRIC: 1 point: one practical cost (many forward passes over coalitions, a baseline to choose)

# %% [markdown]
# ## Handing in
# 1. *Kernel > Restart & Run All*; check that every cell ran without an error.
# 2. Save, and hand in this notebook file (`04_beyond.ipynb`) only, with its name unchanged.
