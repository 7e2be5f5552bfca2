# Assignment 2 source: Grad-CAM, written by hand, checked against pytorch-grad-cam, then explored.
# Edit this file, then rebuild the notebooks with `python -m autograder release` (see README).

# %% [markdown]
# # Assignment 2: Grad-CAM
#
# Grad-CAM (Selvaraju et al., *Grad-CAM: Visual Explanations from Deep Networks via
# Gradient-based Localization*, [arXiv 1610.02391](https://arxiv.org/abs/1610.02391)) answers
# "*where* in the image is the evidence for class $c$?" with one forward and one backward pass.
# Take the feature maps $A^k$ (channel $k$, position $i, j$) of a convolutional layer and the
# score $y^c$ of class $c$ (the raw logit). Each channel gets the average of its gradient as its
# weight, and the map is the weighted sum of the channels, keeping only positive evidence:
#
# $$\alpha_k^c = \frac{1}{Z}\sum_i\sum_j \frac{\partial y^c}{\partial A^k_{ij}}, \qquad
#   L^c_{\text{Grad-CAM}} = \mathrm{ReLU}\Big(\sum_k \alpha_k^c A^k\Big)$$
#
# ($Z$ is the number of positions). $L^c$ has the layer's resolution (4x4 at `layer4` of our
# ResNet-18). To lay it over the image it is scaled to [0, 1] at that resolution, upsampled to
# 32x32, and scaled to [0, 1] again (Part 1.3 gives the exact steps).
#
# **You will:** implement Grad-CAM in four small functions and check them against the
# reference library [pytorch-grad-cam](https://github.com/jacobgil/pytorch-grad-cam) (Part 1);
# compare layers (Part 2) and classes (Part 3); look at right and wrong predictions (Part 4);
# switch off parts of the algorithm (Part 5); answer questions on what the maps say and when to
# trust them (Part 6). Part 7, a tour of the library's other methods, is optional.
#
# **Time:** about 4 hours: 2 to 2.5 for Part 1 (the first function is the hard one), 30 minutes
# for Part 5's function, 1 to 1.5 for the figures and the written answers. Running the whole
# notebook takes at most {{runtime}} on a 2-core CPU (measured with the untrained stand-in, which does the
# same work as the real model: `benchmarks/bench_student_notebooks.py`), without the optional
# ScoreCAM of Part 7, which is switched off by default.
#
# **Offline:** `python -m student_src.fetch` downloads the model and CIFAR-10 once. Without them
# (no network), start Jupyter with `XAI_KIT_STANDIN=1` (`XAI_KIT_STANDIN=1 jupyter lab`): the
# notebook then runs on an untrained stand-in (random weights, synthetic images) and every figure
# says so. Part 1 (your functions and their checks) works the same; what the stand-in cannot show
# is where a trained model finds evidence: Questions 2.1, 3.1, 4.1, 5.1 and 6.1 need the real
# model (2.2 and 6.2 do not).
#
# **Grading:** the cells marked with points are graded automatically (some checks are hidden:
# they try other layers, targets, batch sizes and a tiny network whose map is computed by hand)
# or by your instructor (Part 5's function and the written answers). Do not delete or copy
# cells; write your code where it says `YOUR CODE HERE`. Before you hand in, run
# *Kernel > Restart & Run All* and check that no cell shows an error.

# %% [locked] id=setup
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from student_src import checks, colour_keys, data, library_cams, models, session, viz

model, test_set = session.start()  # silences library warnings, seeds, loads model and data
DEVICE = next(model.parameters()).device
CLASSES = test_set.classes
GRADING = data.grading_mode()  # True while the autograder runs this notebook: figures use fewer images

# %% [markdown]
# ## Part 1: Grad-CAM in four steps
#
# You build Grad-CAM from three helpers, each checked on its own, and then put them together.
# The conventions are pytorch-grad-cam's, so your maps must agree with the library's to about
# $10^{-5}$: the score is the **raw logit** (not the softmax), summed over the batch;
# `targets=None` means each image's **predicted** class.
#
# ### 1.1 Activations and gradients
# **Task.** Implement `activations_and_gradients(model, layer_name, x, targets=None)`: a forward
# hook (Assignment 1) records the layer's output $A$; then compute $G = \partial\,\text{score} /
# \partial A$ with `torch.autograd.grad` (not `.backward()`, which would also fill every weight's
# `.grad`). Remove the hook in a `finally:` block and leave the model as you found it.
#
# Why one backward pass serves the whole batch: image $b$ only influences its own logits, so the
# gradient of $\sum_b y^{c_b}_b$ with respect to $A_b$ is the gradient of image $b$'s own score.
#
# **In-place operations after the layer.** In AlexNet and VGG every convolution is followed by
# `nn.ReLU(inplace=True)`, and in a ResNet block each BatchNorm is followed by an in-place ReLU
# or by `out += identity`. Such an operation overwrites the tensor your hook received *and*
# moves it in the autograd graph to after the ReLU: keep `output` as it is and you get the
# ReLU's output as $A$, and `torch.autograd.grad(score, output)` differentiates with respect to
# the ReLU's output, not the layer's. Return a copy from the hook (`return output.clone()`: a
# forward hook's return value replaces the layer's output for the rest of the network), so the
# in-place operation changes the copy and $A$ keeps its value and its place. Then your
# Grad-CAM is the same function of the network whether its ReLUs are in place or not. (Another
# correct way: keep `output.detach().clone()` as $A$ and record $G$ with `output.register_hook`,
# which PyTorch calls with the gradient of the value before the in-place change.)
#
# *A library pitfall.* pytorch-grad-cam keeps `output.cpu().detach()`, which on a CPU shares
# storage with the output: after an in-place ReLU its $A$ and $G$ belong to two different
# layers. Where this notebook compares with the library no in-place operation follows; the
# hidden checks also try layers where one does (`layer3.0.bn1`, AlexNet's `features.10`).
#
# *Mistakes the checks name for you:* keeping `output.detach()` as $A$ (there is then no graph
# to differentiate), looking layers up with `getattr` instead of `model.get_submodule` (dotted
# names such as `"layer3.0.bn1"`), calling `model.train()` or `model.eval()` in your function.

# %% [solution] id=activations_and_gradients functions=solutions.gradcam:activations_and_gradients

# %% [tests] id=test_activations_and_gradients_values points=2
# Shapes, detached results, the logits, and the gradient at layer4. layer4's output A is
# averaged over its 4x4 positions and fed to the linear layer `fc`:
#     logit_c = sum_k fc.weight[c, k] * mean_ij A[k, i, j] + fc.bias[c]
# so d logit_c / d A[k, i, j] = fc.weight[c, k] / 16, the same at every position.
# Tolerances: 1e-5 is 10x the float32 round-off between correct implementations (measured: at most
# about 1e-6, e.g. one image at a time vs a batch); 1e-6 where both sides compute the same thing.
# checks.call(f, ...) calls your f as a test cell does: it starts from the model as the notebook
# loaded it, names the mistake behind a known crash, and checks that f left the model's mode,
# weights and BatchNorm statistics as they were (Assignment 1 explains it).
x_check, _ = test_set.batch([0, 1, 2])
x_check = x_check.to(DEVICE)
activations, gradients, logits = checks.call(activations_and_gradients, model, "layer4", x_check)
checks.assert_shape(activations, (3, 512, 4, 4), "activations at layer4")
checks.assert_shape(gradients, (3, 512, 4, 4), "gradients at layer4")
checks.assert_shape(logits, (3, 10), "logits")
for name, value in (("activations", activations), ("gradients", gradients), ("logits", logits)):
    assert not value.requires_grad, f"{name}: return detached tensors (.detach())"
with torch.no_grad():
    stem = model.relu(model.bn1(model.conv1(x_check)))
    checks.assert_close(activations, model.layer4(model.layer3(model.layer2(model.layer1(stem)))), 1e-5,
                        "activations must be layer4's output")
    checks.assert_close(logits, model(x_check), 1e-5, "logits")
fc_gradient = model.fc.weight.detach() / 16  # (10, 512): d logit_c / d A[k, i, j] at layer4
predicted = logits.argmax(dim=1)


def layer4_gradient(d_score_d_logits):
    """d score / d A at layer4 (B, 512, 4, 4) of a score whose gradient by the logits is given (B, 10)."""
    return (d_score_d_logits @ fc_gradient)[:, :, None, None].expand(-1, -1, 4, 4)


# What three known mistakes give (computed only if your gradients are wrong): d log p_c / d logits =
# onehot_c - p, d p_c / d logits = p_c (onehot_c - p), and the mean over the batch instead of the sum.
one_hot, probabilities = F.one_hot(predicted, 10).float(), torch.softmax(logits, dim=1)
score_mistakes = {
    "a log_softmax score instead of the raw logit (differentiate `logits[b, target_b]` itself)":
        lambda: layer4_gradient(one_hot - probabilities),
    "a softmax probability instead of the raw logit (differentiate `logits[b, target_b]` itself)":
        lambda: layer4_gradient(probabilities.gather(1, predicted[:, None]) * (one_hot - probabilities)),
    "the mean of the scores over the batch instead of their sum": lambda: layer4_gradient(one_hot) / len(logits),
}
checks.assert_close(gradients, layer4_gradient(one_hot), 1e-5, "gradients of the predicted classes at layer4",
                    known_mistakes=score_mistakes)
with torch.no_grad():  # a caller may be inside no_grad(): your function must still get gradients
    _, gradients_in_no_grad, _ = checks.call(activations_and_gradients, model, "layer4", x_check,
                                             what="activations_and_gradients inside torch.no_grad()")
checks.assert_close(gradients_in_no_grad, gradients, 1e-6, "gradients when called inside torch.no_grad()")
print("Shapes, activations, logits and gradients look right.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a02_gradcam", "check_activations_and_gradients_values", activations_and_gradients)
### END HIDDEN TESTS

# %% [tests] id=test_activations_and_gradients_targets points=2
# Explicit targets: one int for every image, a list with one class per image, a 1-D tensor.
x_check, _ = test_set.batch([0, 1, 2])
x_check = x_check.to(DEVICE)
with torch.no_grad():
    runner_up = model(x_check).topk(2, dim=1).indices[:, 1]
fc_gradient = model.fc.weight.detach() / 16
for targets, what in ((7, "targets=7"), (runner_up.tolist(), "a list of classes"), (runner_up, "a tensor of classes")):
    _, target_gradients, _ = checks.call(activations_and_gradients, model, "layer4", x_check, targets,
                                         what=f"activations_and_gradients with {what}")
    classes = torch.as_tensor(targets, device=DEVICE).reshape(-1).expand(3)
    checks.assert_close(target_gradients, fc_gradient[classes][:, :, None, None].expand(-1, -1, 4, 4), 1e-5,
                        f"gradients at layer4 with {what}")
print("Targets are used as given.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a02_gradcam", "check_activations_and_gradients_targets", activations_and_gradients)
### END HIDDEN TESTS

# %% [tests] id=test_activations_and_gradients_cleanup points=2
# Nothing left behind: no hook, no weight gradient in .grad, the same train/eval mode; and the
# hook is removed also when the forward pass raises.
x_check, _ = test_set.batch([0, 1])
snapshot = checks.ModelSnapshot(model)
checks.call(activations_and_gradients, model, "layer3", x_check.to(DEVICE))
snapshot.assert_unchanged(model, "activations_and_gradients on the notebook's model")


class Exploding(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


with torch.random.fork_rng(devices=[]):
    exploding = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), Exploding())
try:
    activations_and_gradients(exploding, "0", torch.zeros(1, 3, 8, 8))
except RuntimeError:
    pass
assert checks.count_hooks(exploding) == 0, "remove the hook in `finally`: it stayed after the forward pass raised"
print("Nothing is left behind.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a02_gradcam", "check_activations_and_gradients_cleanup", activations_and_gradients)
### END HIDDEN TESTS

# %% [markdown]
# ### 1.2 Channel weights
# **Task.** Implement `gradcam_channel_weights(gradients)`: $\alpha_k$ is the *global average
# pool* of channel $k$'s gradient, one weight per image and channel, (B, C, h, w) -> (B, C).

# %% [solution] id=gradcam_channel_weights functions=solutions.gradcam:gradcam_channel_weights

# %% [tests] id=test_gradcam_channel_weights points=1
# By hand: channel 0 has gradients [[1, 2], [3, 6]] (mean 3), channel 1 [[-1, 1], [0, 4]] (mean 1).
by_hand = checks.call(gradcam_channel_weights, torch.tensor([[[[1.0, 2.0], [3.0, 6.0]], [[-1.0, 1.0], [0.0, 4.0]]]]))
checks.assert_shape(by_hand, (1, 2), "gradcam_channel_weights of a (1, 2, 2, 2) tensor")
checks.assert_close(by_hand, torch.tensor([[3.0, 1.0]]), 1e-6, "gradcam_channel_weights by hand")
random_gradients = torch.randn(4, 512, 4, 4, generator=torch.Generator().manual_seed(0))
checks.assert_shape(checks.call(gradcam_channel_weights, random_gradients), (4, 512),
                    "gradcam_channel_weights at layer4")
print("The weights are the average gradients.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a02_gradcam", "check_gradcam_channel_weights", gradcam_channel_weights)
### END HIDDEN TESTS

# %% [markdown]
# ### 1.3 From raw maps to heatmaps
# **Task.** Implement `scale_cams(cams, size)`: ReLU, per-image min-max scaling at the layer's
# resolution, bilinear upsampling to `size`, then ReLU and min-max again (the docstring gives
# the exact formulas). This is what pytorch-grad-cam does after computing its raw maps; the
# tests compare your function with the library's steps (`library_cams.library_scale_cams`).
# `F.interpolate` resizes a (B, 1, h, w) tensor (add the channel dimension and remove it
# again), and `.squeeze()` without an argument would also drop the batch of one image.

# %% [solution] id=scale_cams functions=solutions.gradcam:scale_cams

# %% [tests] id=test_scale_cams_values points=2
# By hand, a 2x2 map kept at 2x2 (upsampling to the same size changes nothing):
# ReLU -> [[2, 0], [0, 4]]; min-max -> [[0.5, 0], [0, 1]]; the second pass changes nothing.
by_hand = checks.call(scale_cams, torch.tensor([[[2.0, -1.0], [0.0, 4.0]]]), (2, 2))
checks.assert_map_invariants(by_hand, (1, 2, 2), "scale_cams of one 2x2 map")
checks.assert_close(by_hand, torch.tensor([[[0.5, 0.0], [0.0, 1.0]]]), 1e-6, "scale_cams by hand")
# Maps of very different scales in one batch, and a rectangular size, against the library.
generator = torch.Generator().manual_seed(0)
raw_maps = torch.randn(3, 4, 4, generator=generator) * torch.tensor([0.1, 1.0, 100.0]).view(3, 1, 1)
scaled = checks.call(scale_cams, raw_maps.clone(), (32, 32))
checks.assert_map_invariants(scaled, (3, 32, 32), "scale_cams(cams, (32, 32))")
checks.assert_close(scaled, library_cams.library_scale_cams(raw_maps, (32, 32)), 1e-5,
                    "scale_cams vs pytorch-grad-cam")
rectangular = torch.randn(2, 3, 5, generator=generator)
checks.assert_close(checks.call(scale_cams, rectangular.clone(), (12, 20)),
                    library_cams.library_scale_cams(rectangular, (12, 20)), 1e-5,
                    "scale_cams to a rectangular size (12, 20) vs pytorch-grad-cam")
print("scale_cams agrees with pytorch-grad-cam.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a02_gradcam", "check_scale_cams_values", scale_cams)
### END HIDDEN TESTS

# %% [tests] id=test_scale_cams_edge_cases points=1
# A constant map (all zero, or the same value everywhere) has nothing to show: all zeros, no NaN.
constant = torch.tensor([0.0, 5.0]).view(2, 1, 1).expand(2, 4, 4).contiguous()
checks.assert_close(checks.call(scale_cams, constant.clone(), (8, 8)), torch.zeros(2, 8, 8), 0.0,
                    "scale_cams of constant maps")
# Tiny raw maps (an untrained model's are about 1e-6): here the order of the steps and the 1e-7 matter.
tiny = 1e-6 * torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(1))
checks.assert_close(checks.call(scale_cams, tiny.clone(), (32, 32)), library_cams.library_scale_cams(tiny, (32, 32)), 1e-5,
                    "scale_cams of maps with values about 1e-6 vs pytorch-grad-cam")
print("Edge cases handled.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a02_gradcam", "check_scale_cams_edge_cases", scale_cams)
### END HIDDEN TESTS

# %% [markdown]
# ### 1.4 Grad-CAM
# **Task.** Implement `grad_cam(model, layer_name, x, targets=None)` with your three helpers:
# weights $\alpha$, the weighted sum of the activation channels, then `scale_cams` to the
# input's size. The tests compare it with `pytorch_grad_cam.GradCAM` (through
# `library_cams.library_grad_cam`, which also undoes the library's side effects) on this
# notebook's model, and with maps computed by hand on a tiny network.

# %% [solution] id=grad_cam functions=solutions.gradcam:grad_cam

# %% [tests] id=test_grad_cam_layers points=2
# Other layers than the usual layer4: the same maps as pytorch-grad-cam's GradCAM.
x_check, _ = test_set.batch([0, 1, 2, 3])
x_check = x_check.to(DEVICE)
for layer_name in ("layer3", "layer2"):
    ours = checks.call(grad_cam, model, layer_name, x_check, what=f"grad_cam(model, {layer_name!r}, x)")
    checks.assert_map_invariants(ours, (4, 32, 32), f"grad_cam(model, {layer_name!r}, x)")
    # What two known mistakes give, from the library with its channel weights changed (computed only on a failure).
    cam_mistakes = {
        "a ReLU on the channel weights instead of on the weighted sum (the map)": lambda: library_cams.library_grad_cam(
            model, layer_name, x_check, channel_weights=lambda weights: np.maximum(weights, 0)),
        "the channel weights with a flipped sign": lambda: library_cams.library_grad_cam(
            model, layer_name, x_check, channel_weights=lambda weights: -weights),
    }
    checks.assert_close(ours, library_cams.library_grad_cam(model, layer_name, x_check), 1e-5,
                        f"grad_cam at {layer_name!r} vs pytorch-grad-cam", known_mistakes=cam_mistakes)
print("grad_cam agrees with pytorch-grad-cam at layer3 and layer2.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a02_gradcam", "check_grad_cam_other_layers", grad_cam)
### END HIDDEN TESTS

# %% [tests] id=test_grad_cam_targets points=2
# layer4 with the predicted classes, the runner-up classes, one int for all, and a batch of one.
x_check, _ = test_set.batch([0, 1, 2, 3])
x_check = x_check.to(DEVICE)
with torch.no_grad():
    runner_up = model(x_check).topk(2, dim=1).indices[:, 1].tolist()
cases = [(None, x_check, "the predicted classes"), (runner_up, x_check, "the runner-up classes"),
         (3, x_check, "targets=3 for every image"), (runner_up[1:2], x_check[1:2], "a batch of one image")]
for targets, x_case, what in cases:
    ours = checks.call(grad_cam, model, "layer4", x_case, targets, what=f"grad_cam at layer4 for {what}")
    checks.assert_map_invariants(ours, (len(x_case), 32, 32), f"grad_cam at layer4 for {what}")
    checks.assert_close(ours, library_cams.library_grad_cam(model, "layer4", x_case, targets), 1e-5,
                        f"grad_cam at layer4 for {what} vs pytorch-grad-cam")
print("grad_cam agrees with pytorch-grad-cam at layer4 for every kind of target.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a02_gradcam", "check_grad_cam_targets_and_batches", grad_cam)
### END HIDDEN TESTS

# %% [tests] id=test_grad_cam_tiny_cnn points=2
# A network small enough to do by hand. Input: one image with 2 channels of 2x2 pixels; the layer
# "features" is a 1x1 convolution that copies its input, so A = x:
#     A[0] = [[2, 0], [1, 1]]      A[1] = [[0, 2], [0, 1]]
# `fc` maps the 8 values of A (flattened channel by channel) to 2 logits. Its weights, laid out
# like A, are the gradients d logit_c / d A:
#     class 0: channel 0 [[1, 3], [0, 0]] (mean 1),   channel 1 all -1 (mean -1)
#     class 1: channel 0 all 0.5 (mean 0.5),          channel 1 all 1  (mean 1)
# class 0: 1 * A[0] - 1 * A[1] = [[2, -2], [1, 0]] -> ReLU [[2, 0], [1, 0]] -> min-max [[1, 0], [0.5, 0]]
# class 1: 0.5 * A[0] + 1 * A[1] = [[1, 2], [0.5, 1.5]] -> min-max [[1/3, 1], [0, 2/3]]
# The logits are -1 (class 0) and 5 (class 1): the predicted class is 1.
class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(2, 2, kernel_size=1, bias=False)
        self.fc = nn.Linear(8, 2, bias=False)
        with torch.no_grad():
            self.features.weight.copy_(torch.eye(2).view(2, 2, 1, 1))
            self.fc.weight.copy_(torch.tensor([[1.0, 3.0, 0.0, 0.0, -1.0, -1.0, -1.0, -1.0],
                                               [0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0]]))

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


with torch.random.fork_rng(devices=[]):
    tiny_model = TinyCNN().eval()
tiny_x = torch.tensor([[[[2.0, 0.0], [1.0, 1.0]], [[0.0, 2.0], [0.0, 1.0]]]])  # (1, 2, 2, 2)
map_class_0 = torch.tensor([[1.0, 0.0], [0.5, 0.0]])
map_class_1 = torch.tensor([[1 / 3, 1.0], [0.0, 2 / 3]])
# Two known mistakes, by hand for class 0: a ReLU on the weights [1, -1] -> [1, 0] keeps only A[0]:
# [[2, 0], [1, 1]] -> min-max [[1, 0], [0.5, 0.5]]; flipped weights [-1, 1]: ReLU(A[1] - A[0]) = [[0, 2], [0, 0]].
tiny_mistakes = {"a ReLU on the channel weights instead of on the weighted sum (the map)":
                     torch.tensor([[[1.0, 0.0], [0.5, 0.5]]]),
                 "the channel weights with a flipped sign": torch.tensor([[[0.0, 1.0], [0.0, 0.0]]])}
checks.assert_close(checks.call(grad_cam, tiny_model, "features", tiny_x, [0]), map_class_0[None], 1e-5,
                    "tiny CNN, class 0", known_mistakes=tiny_mistakes)
checks.assert_close(checks.call(grad_cam, tiny_model, "features", tiny_x), map_class_1[None], 1e-5,
                    "tiny CNN, targets=None (the predicted class 1)")
checks.assert_close(checks.call(grad_cam, tiny_model, "features", tiny_x.expand(2, -1, -1, -1), [1, 0]),
                    torch.stack([map_class_1, map_class_0]), 1e-5, "tiny CNN, a batch of two with classes [1, 0]")
print("grad_cam gives the maps computed by hand.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a02_gradcam", "check_grad_cam_tiny_cnn", grad_cam)
### END HIDDEN TESTS

# %% [tests] id=test_grad_cam_side_effects points=2
# grad_cam leaves the model as it found it: no hook, no .grad, the same mode (also train mode),
# the same weights; the hook is removed also when the forward pass raises.
class Exploding(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


x_check, _ = test_set.batch([0, 1])
snapshot = checks.ModelSnapshot(model)
checks.call(grad_cam, model, "layer4", x_check.to(DEVICE))
snapshot.assert_unchanged(model, "grad_cam on the notebook's model")
with torch.random.fork_rng(devices=[]):
    small = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 4)).train()
    exploding = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), Exploding())
small_snapshot = checks.ModelSnapshot(small)
checks.call(grad_cam, small, "0", torch.ones(2, 3, 8, 8), what="grad_cam on a model in train mode")
small_snapshot.assert_unchanged(small, "grad_cam on a model in train mode")
try:
    grad_cam(exploding, "0", torch.zeros(1, 3, 8, 8))
except RuntimeError:
    pass
assert checks.count_hooks(exploding) == 0, "grad_cam left a hook registered after the forward pass raised"
print("grad_cam leaves no trace.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a02_gradcam", "check_grad_cam_side_effects", grad_cam)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2: layers
#
# The cells below use *your* `grad_cam`. They pick test images once (1000 when you run the
# notebook, at most {{runtime explore_setup}} on a 2-core CPU; 64 under the autograder), classify them, and
# show a handful.

# %% [code] id=explore_setup
N_SHOW = 2 if GRADING else 4  # images per figure
pool = data.subset_indices(min(64 if GRADING else 1000, len(test_set)), len(test_set), seed=2)
pool_probabilities = data.predict(model, test_set, pool)
pool_confidences, pool_predictions = pool_probabilities.max(dim=1)
pool_labels = test_set.labels[pool]
print(f"{len(pool)} test images, accuracy {100 * np.mean(pool_predictions.numpy() == pool_labels):.1f}%")


def images_and_titles(positions):
    """Normalised images (on DEVICE), the images for display, and prediction titles."""
    x, _ = test_set.batch(pool[positions])
    titles = [viz.prediction_title(CLASSES, int(pool_labels[p]), int(pool_predictions[p]),
                                   float(pool_confidences[p])) for p in positions]
    return x.to(DEVICE), data.denormalize(x), titles


shown = np.arange(N_SHOW)
x_show, images_show, titles_show = images_and_titles(shown)

# %% [markdown]
# ### 2.1 Three depths
# The same images, explained for their predicted class at `layer2` (16x16), `layer3` (8x8) and
# `layer4` (4x4). Later layers see more of the image per position and carry more class
# information, but their maps are coarser.

# %% [code] id=fig_layers_side_by_side
layer_maps = {f"{name} ({size}x{size})": grad_cam(model, name, x_show)
              for name, size in (("layer2", 16), ("layer3", 8), ("layer4", 4))}
viz.show_explanations(images_show, layer_maps, titles_show, suptitle="Grad-CAM of the predicted class, three layers")
plt.show()

# %% [markdown]
# ### 2.2 Three methods that coincide, and then do not
# HiResCAM (Draelos & Carin, [arXiv 2011.08891](https://arxiv.org/abs/2011.08891)) multiplies
# gradient and activation position by position, $\sum_k G^k \odot A^k$, instead of averaging the
# gradient first; XGradCAM (Fu et al., [arXiv 2008.02312](https://arxiv.org/abs/2008.02312))
# weights channel $k$ by $\sum_{ij} G^k_{ij} A^k_{ij} / \sum_{ij} A^k_{ij}$. The cell compares
# them (from the library) with your Grad-CAM at `layer4` and at `layer3`.

# %% [code] id=fig_methods_coincide
x_two, images_two, titles_two = x_show[:2], images_show[:2], titles_show[:2]
coincide_maps = {}
for layer_name in ("layer4", "layer3"):
    coincide_maps[f"{layer_name}\nGrad-CAM (yours)"] = yours = grad_cam(model, layer_name, x_two)
    for method in ("HiResCAM", "XGradCAM"):
        theirs = library_cams.library_cam(method, model, layer_name, x_two)
        coincide_maps[f"{layer_name}\n{method}"] = theirs
        print(f"{layer_name}: largest difference between {method} and your Grad-CAM: "
              f"{(theirs - yours).abs().max().item():.2e}")
viz.show_explanations(images_two, coincide_maps, titles_two, suptitle="Grad-CAM, HiResCAM and XGradCAM")
plt.show()

# %% [markdown]
# **Question 2.1 (2 points).** Why is the `layer4` map so coarse, and what do the `layer2` and
# `layer3` maps show that `layer4` does not? Which layer would you use to explain the class, and why?
# (Needs the real model for what the maps show; the resolution argument holds on any model.)

# %% [answer] id=q_layers points=2
# `layer4` has a 4x4 grid for a 32x32 image (stride 8): each of its 16 positions summarises an
# 8x8 patch and, through its receptive field, most of the image; bilinear upsampling of 16
# values gives one or two smooth blobs, so the map can only say "roughly this quarter".
# `layer2` (16x16) and `layer3` (8x8) maps are sharper and follow edges and textures, but these
# layers are less class-specific: their maps are noisier, often highlight the background or
# every object edge, and change less between classes. For explaining the *class*, `layer4` (the
# paper's choice: the last convolutional layer) is the most faithful; `layer3` is a reasonable
# compromise when the 4x4 resolution is too coarse. Full marks: resolution/stride argument plus
# the trade-off between spatial detail and class specificity, pointing at the figure.
# RUBRIC: 1 point: layer4 is coarse because of its 4x4 grid (stride 8); layer2/layer3 are sharper
#   but less class-specific
# RUBRIC: 1 point: a layer chosen for explaining the class with a reason (layer4: last conv layer,
#   most class-specific)

# %% [markdown]
# **Question 2.2 (2 points).** At `layer4` the three methods give the same map (the printed
# differences are float32 round-off, about $10^{-6}$ or less), at `layer3` they do not. Explain why, using the gradient at `layer4` (hint: look at
# what follows `layer4` in `print(model)`, and at the first test cell of Part 1).

# %% [answer] id=q_methods_coincide points=2
# After `layer4` come global average pooling and the linear layer `fc`, so
# dy^c/dA^k_ij = fc.weight[c, k] / 16 is the same at every position (the first test checks it).
# Grad-CAM: alpha_k = mean of a constant = w_ck/16. HiResCAM: sum_k G^k * A^k = sum_k (w_ck/16) A^k,
# the same map. XGradCAM: sum_ij G A / sum_ij A = (w_ck/16) sum A / (sum A + 1e-7) = w_ck/16 for
# every channel that is not all zero (all-zero channels add nothing anyway). So all three are
# the same weighted sum; only float rounding and the 1e-7 leave differences below about 1e-6.
# At `layer3` the gradient passes through layer4's convolutions, BatchNorms and ReLU gates:
# it varies with position, so averaging it first (Grad-CAM), multiplying position by position
# (HiResCAM) and activation-weighting it (XGradCAM) give different maps. (Grad-CAM's map is
# then not the exact contribution of each position to the score; HiResCAM's is.)
# RUBRIC: 1 point: after layer4 come global average pooling and fc, so the gradient is the same at
#   every position (w_ck/16)
# RUBRIC: 1 point: with a constant gradient the three weightings give the same weighted sum; at
#   layer3 the gradient varies with position

# %% [markdown]
# ## Part 3: classes
#
# Grad-CAM is meant to be *class-discriminative*: the map for "cat" should differ from the map
# for "dog" on the same image. Take images of two similar classes and explain each for the
# predicted class, the runner-up, and both classes of the pair. `CLASS_PAIR` is your choice: try `("cat", "dog")` first, then a pair of your own
# (e.g. `("automobile", "truck")` or `("deer", "horse")`). The cell also prints the correlation
# between the two class maps of each image (1: the same map; 0: unrelated; negative: opposite).

# %% [code] id=fig_classes
CLASS_PAIR = ("cat", "dog")  # change to explore another pair
per_class = 1 if GRADING else 3
pair_positions = np.concatenate([np.flatnonzero(pool_labels == CLASSES.index(name))[:per_class]
                                 for name in CLASS_PAIR])
x_pair, images_pair, _ = images_and_titles(pair_positions)
top2 = pool_probabilities[pair_positions].topk(2, dim=1)
pair_titles = [f"true: {CLASSES[pool_labels[p]]}\n1st: {CLASSES[c1]} ({100 * p1:.0f}%)\n"
               f"2nd: {CLASSES[c2]} ({100 * p2:.0f}%)"
               for p, (c1, c2), (p1, p2) in zip(pair_positions, top2.indices.tolist(), top2.values.tolist())]
class_maps = {"predicted": grad_cam(model, "layer4", x_pair, top2.indices[:, 0]),
              "runner-up": grad_cam(model, "layer4", x_pair, top2.indices[:, 1])}
for name in CLASS_PAIR:
    class_maps[f"class '{name}'"] = grad_cam(model, "layer4", x_pair, CLASSES.index(name))


def map_correlation(first, second):
    """Pearson correlation of two maps (0 when one of them is constant)."""
    first, second = first.flatten() - first.mean(), second.flatten() - second.mean()
    return float((first * second).sum() / (first.norm() * second.norm() + 1e-12))


first_map, second_map = (class_maps[f"class '{name}'"] for name in CLASS_PAIR)
for row, position in enumerate(pair_positions):
    print(f"image {row} (true: {CLASSES[pool_labels[position]]}): correlation of the "
          f"'{CLASS_PAIR[0]}' and '{CLASS_PAIR[1]}' maps: {map_correlation(first_map[row], second_map[row]):+.2f}")
viz.show_explanations(images_pair, class_maps, pair_titles,
                      suptitle=f"One image, several classes (layer4): {' vs '.join(CLASS_PAIR)}\n"
                               "each map is scaled to [0, 1] on its own: read the probabilities too")
plt.show()

# %% [markdown]
# **Question 3.1 (2 points, needs the real model).** Is Grad-CAM class-discriminative on this model? Compare the maps
# of the two classes on the same image (and the correlations printed above), for the pair you
# chose and for cat vs dog. When do the maps look alike, and what does that tell you?

# %% [answer] id=q_classes points=2
# Mostly yes: on images the model is sure about, the predicted class's map covers the object
# (the cat's face, the dog's head), while the map of the other class of the pair is weaker in
# meaning and placed elsewhere (background, ears, a leg), with correlations near 0 or negative
# (for example "cat" on a dog image highlighting everything *except* the dog's head).
# The maps look alike when the two classes share evidence (cat and dog share fur, ears and
# pose; automobile and truck share wheels and windows) and when the runner-up's probability is
# close to the winner's: then the same region supports both and the model hesitates between
# them. Because each map is min-max scaled on its own, a class with almost no evidence still
# gets a full-range map: read the probability next to it before reading the map.
# RUBRIC: 1 point: compares the two classes' maps on the same image with the printed correlations,
#   for both pairs
# RUBRIC: 1 point: says when maps look alike (shared evidence, a close runner-up) and what that
#   means about the model

# %% [markdown]
# ## Part 4: right and wrong
#
# Five correctly and five incorrectly classified test images (fewer under the autograder), each
# with its true label, the prediction and the model's confidence, and two maps: for the predicted
# class and for the true class (for a correct prediction the two are the same).

# %% [code] id=fig_right_and_wrong
n_examples = 2 if GRADING else 5
for correct in (True, False):
    positions = data.select_examples(pool_predictions.numpy(), pool_labels, n_examples, correct=correct, seed=0)
    if len(positions) == 0:
        print("No", "correctly" if correct else "incorrectly", "classified image in the pool.")
        continue
    x_examples, images_examples, titles_examples = images_and_titles(positions)
    maps = {"map: predicted class": grad_cam(model, "layer4", x_examples, pool_predictions[positions]),
            "map: true class": grad_cam(model, "layer4", x_examples, torch.as_tensor(pool_labels[positions]))}
    viz.show_explanations(images_examples, maps, titles_examples,
                          suptitle="Correctly classified" if correct else "Misclassified")
    plt.show()

# %% [markdown]
# **Question 4.1 (2 points, needs the real model).** What patterns do you see in the correct and in the wrong
# predictions? For the wrong ones: does the map for the predicted class point at something that
# explains the mistake, and where does the map for the true class look?

# %% [answer] id=q_right_wrong points=2
# Correct, confident predictions: the map sits on the object (head and body of animals, the
# hull of a ship, the body of a car), rarely on the background. Wrong predictions fall in a few
# groups: (1) the map for the predicted class sits on a part that resembles the predicted class
# (a dog's face read as a cat, a truck's cab read as an automobile, a bird against blue sky
# read as an airplane: the sky itself is evidence); (2) the map is spread out or on the
# background, often with low confidence: the model found no clear evidence; (3) the object is
# small, cut off or unusual in pose. The map for the true class usually covers the object but
# is weaker than the winning class's evidence. Full marks: concrete observations tied to the
# figures, a distinction between the two maps, and no over-claiming from ten images.
# RUBRIC: 1 point: patterns in the correct predictions, tied to concrete images
# RUBRIC: 1 point: for the wrong ones, where the predicted and the true class's maps look and what
#   that suggests

# %% [markdown]
# ## Part 5: the choices inside Grad-CAM
#
# One way to understand an algorithm is to change its steps and look at what happens: leave out
# the ReLU, leave out the normalisation, normalise at a different point, pool the gradients
# with a max instead of an average.
#
# **Task (2 points, graded by your instructor).** Implement `grad_cam_variant` below with your
# helpers from Part 1: with the default arguments it must return exactly `grad_cam`'s maps;
# each argument switches one step. The cell after it checks what can be checked without giving
# the answer away (the defaults, the shapes, the raw scale); the one after that draws the
# variants side by side.

# %% [solution] id=grad_cam_variant points=2
def grad_cam_variant(model, layer_name, x, targets=None, relu=True, normalize=True,
                     normalize_after_upsampling=False, pooling="mean"):
    """Grad-CAM (B, H, W) with one step switched; with the defaults it returns ``grad_cam``'s maps.

    Args:
        relu: ``False`` leaves out both ReLUs (negative evidence stays in the map).
        normalize: ``False`` leaves out every min-max: the maps keep their raw scale.
        normalize_after_upsampling: ``True`` scales once, after upsampling, instead of twice.
        pooling: ``"mean"`` (Grad-CAM's average of the gradients) or ``"max"`` (their maximum).
    """
    ### BEGIN SOLUTION
    if pooling not in ("mean", "max"):
        raise ValueError(f"pooling must be 'mean' or 'max', got {pooling!r}")
    acts, grads, _ = activations_and_gradients(model, layer_name, x, targets)
    channel_weights = gradcam_channel_weights(grads) if pooling == "mean" else grads.amax(dim=(2, 3))
    raw = torch.einsum("bk,bkhw->bhw", channel_weights, acts)
    size = tuple(x.shape[-2:])
    if relu and normalize and not normalize_after_upsampling:
        return scale_cams(raw, size)

    def rescale(maps):  # per-image min-max with the library's 1e-7
        lowest = maps.flatten(1).min(dim=1).values[:, None, None]
        spread = (maps - lowest).flatten(1).max(dim=1).values[:, None, None]
        return (maps - lowest) / (spread + 1e-7)

    if relu:
        raw = raw.clamp(min=0)
    if normalize and not normalize_after_upsampling:
        raw = rescale(raw)
    full = F.interpolate(raw.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
    if relu:
        full = full.clamp(min=0)
    return rescale(full) if normalize else full
    ### END SOLUTION
# RUBRIC: 1 point: with the default arguments it returns exactly grad_cam's maps (the student's
#   Part 1 helpers, same steps)
# RUBRIC: 1 point: each argument switches exactly its one step (ReLU, normalisation, normalising
#   after upsampling, max pooling)

# %% [code] id=check_grad_cam_variant
# Visible checks of grad_cam_variant (your instructor grades it; these only say what is off). The
# defaults are compared with pytorch-grad-cam's Grad-CAM, not with your grad_cam: a mistake in
# grad_cam is grad_cam's, and its own checks above name it.
for layer_name in ("layer4", "layer3"):
    standard = library_cams.library_grad_cam(model, layer_name, x_show)
    defaults = checks.call(grad_cam_variant, model, layer_name, x_show,
                           what=f"grad_cam_variant at {layer_name} with the default arguments")
    checks.assert_shape(defaults, tuple(standard.shape), f"grad_cam_variant at {layer_name} with the defaults")
    if checks.rel_error(defaults, standard) > 1e-5:
        yours = checks.call(grad_cam, model, layer_name, x_show)
        assert checks.rel_error(yours, standard) <= 1e-5 or checks.rel_error(defaults, yours) > 1e-5, (
            f"grad_cam_variant at {layer_name} with the defaults gives your grad_cam's maps, but grad_cam itself "
            "fails its checks above (it differs from pytorch-grad-cam): fix grad_cam (or the helper both use) first")
    checks.assert_close(defaults, standard, 1e-5,
                        f"grad_cam_variant at {layer_name} with the defaults must equal Grad-CAM (pytorch-grad-cam's)")
    for option, value in (("relu", False), ("normalize", False), ("normalize_after_upsampling", True),
                          ("pooling", "max")):
        label = f"grad_cam_variant({option}={value!r}) at {layer_name}"
        maps = checks.call(grad_cam_variant, model, layer_name, x_show, **{option: value}, what=label)
        checks.assert_shape(maps, tuple(standard.shape), label)
        assert torch.isfinite(maps).all(), f"{label}: contains NaN or infinite values"
        if option == "normalize":
            assert not torch.allclose(maps.amax(dim=(1, 2)), torch.ones(len(maps), device=maps.device)), \
                f"{label}: every map still has the maximum 1; without normalisation the maps keep their raw scale"
        if option == "pooling" and layer_name == "layer4":  # the gradient is the same at all 16 positions
            checks.assert_close(maps, standard, 1e-5, f"{label}: at layer4 max and mean of the gradient agree, "
                                "so the maps must be the standard ones")
print("grad_cam_variant: the defaults give Grad-CAM's maps; every switch returns maps of the right shape.")

# %% [code] id=fig_ablations
variants = {
    "standard": {},
    "no ReLU": {"relu": False},
    "no normalisation\n(one scale, all rows)": {"normalize": False},
    "normalised once,\nafter upsampling": {"normalize_after_upsampling": True},
    "max-pooled\ngradients": {"pooling": "max"},
}
for layer_name in ("layer4", "layer3"):
    variant_maps = {name: grad_cam_variant(model, layer_name, x_show, **options) for name, options in variants.items()}
    unscaled = variant_maps["no normalisation\n(one scale, all rows)"]
    print(f"{layer_name}: largest raw value per image (without normalisation):",
          ", ".join(f"{value:.3g}" for value in unscaled.amax(dim=(1, 2)).tolist()))
    for name in ("no ReLU", "normalised once,\nafter upsampling", "max-pooled\ngradients"):
        difference = (variant_maps[name] - variant_maps["standard"]).abs().max().item()
        print(f"{layer_name}: {name.replace(chr(10), ' ')}: largest difference to the standard map {difference:.2e}")
    # The raw maps keep their real values, on one key of their own; the other columns are min-max scaled.
    variant_maps["no normalisation\n(one scale, all rows)"] = viz.Column(
        unscaled, colour_keys.real_range(unscaled, f"raw Grad-CAM value at {layer_name}"))
    viz.show_explanations(images_show, variant_maps, titles_show, suptitle=f"Design choices of Grad-CAM at {layer_name}")
    plt.show()
session.standin_note("these maxima and differences (a 0.00e+00 included: the untrained network's maps "
                     "need not have the negative parts or spikes a trained one has)")

# %% [markdown]
# **Question 5.1 (3 points, needs the real model for what you see; the reasons hold on any
# model).** For each of the four changes, say what you see and why it
# happens: why is the ReLU there, what does the per-image normalisation hide, why does the
# moment of normalising (almost) not matter, and why does max-pooling the gradients change
# nothing at `layer4` but change the map at `layer3`?

# %% [answer] id=q_ablations points=3
# No ReLU: regions with negative evidence (that lower the class score) are kept; after min-max
# the most *negative* region becomes 0 and everything else is lifted, so the background often
# lights up and the map loses contrast. The ReLU keeps only evidence *for* the class, as the
# paper argues. No normalisation: the maps keep their raw scale, which differs a lot between
# images (see the printed maxima): a confident image has a strong map, an unsure one a faint map.
# Per-image min-max hides this: every map uses the full colour range, however weak its
# evidence, so maps cannot be compared across images or classes. Normalising once after
# upsampling: bilinear upsampling averages neighbours, so it commutes with shifting and scaling
# the values, and min-max ignores any shift and positive scale: the two orders give the same map
# except through the 1e-7 in the denominator, about 1e-7 to 1e-6 on the trained model, more only
# when the raw maps are tiny (an untrained model, Part 1.3). Max-pooled gradients: at
# `layer4` the gradient is the same at all 16 positions, so max = mean and nothing changes;
# at `layer3` the gradient varies with position, the max is dominated by single positions and
# channels with one large gradient spike get large weights: a different, usually noisier map.
# RUBRIC: 1 point: the ReLU keeps only evidence for the class; without it negative regions distort
#   the min-max scaled map
# RUBRIC: 1 point: per-image normalisation hides the maps' raw scale (confident vs unsure images),
#   so maps are not comparable
# RUBRIC: 1 point: normalising after upsampling barely matters (linear upsampling); max pooling
#   changes nothing at layer4 (constant gradient) but does at layer3

# %% [markdown]
# ## Part 6: what Grad-CAM tells you
#
# **Question 6.1 (2 points, needs the real model).** What do the maps of Parts 2 to 4 tell you about *this model*:
# what does it rely on, and is there any sign of shortcuts (background, context, borders)? A
# classmate looks at one misclassified image whose map covers the sky and concludes "the model
# classifies by the background". What in this notebook supports or contradicts that, and what
# would you need to see before you agreed?

# %% [answer] id=q_model points=2
# On CIFAR-10 at 32x32 the model mostly relies on the object: for animals the head and body,
# for vehicles the body and wheels, and the maps follow the object when it is off-centre. There
# are also signs of context: sky and water for airplanes, birds and ships, green background for
# frogs and deer, so some mistakes (bird -> airplane on sky, ship <-> airplane on blue) look like
# context shortcuts. One map is not enough for the classmate's claim: it needs many images (how
# often the map sits on the background for correct and for wrong predictions), the map of the
# true class on the same image (Part 4), the confidence (a faint, unsure map is min-max scaled
# to full range, Part 5), and an intervention (replace the background and see whether the
# prediction changes). The maps are coarse (4x4), so claims below "which quarter of the image"
# are not supported. A good answer cites specific images and separates what the maps show
# (where evidence lies) from what they do not (which features, or why).
# RUBRIC: 1 point: what the model relies on (the object; its parts), citing specific images
# RUBRIC: 1 point: signs of shortcuts or context (sky, water, background) and what the classmate's
#   claim would need (many images, the true class's map, an intervention on the background)

# %% [markdown]
# **Question 6.2 (2 points).** Is Grad-CAM useful? Say how you would use it, and name two
# situations in which you would *not* trust a Grad-CAM map.

# %% [answer] id=q_trust points=2
# Useful for debugging and sanity checking: finding shortcuts (the classifier looks at the
# background, a watermark, a border), explaining individual mistakes, comparing models, and
# communicating roughly where the evidence is; it is cheap (one forward and one backward pass)
# and needs no change to the model. Do not trust it: (1) when the map is coarse relative to the
# question (4x4 here: it cannot say which small part matters); (2) when the evidence is weak:
# min-max scaling makes a map of noise look as confident as a real one (always look at the
# probability); (3) at layers where the averaged gradient does not reflect the real
# contribution (below the last stage, Part 2.2) or where gradients saturate; (4) when the map
# would look the same for a randomised model (sanity checks, Adebayo et al. 2018): then it
# shows the image's structure, not the model's reasoning; (5) as proof that the model is right
# or fair: a plausible map is not a faithful one; test faithfulness by deleting the highlighted
# pixels and measuring the drop in score.
# RUBRIC: 1 point: a concrete use (debugging shortcuts, explaining mistakes, comparing models)
# RUBRIC: 1 point: two situations in which not to trust the map (too coarse, weak evidence scaled
#   up, wrong layer, saturation)

# %% [markdown]
# ## Part 7 (optional, no points): the library's other methods
#
# pytorch-grad-cam implements many variants. GradCAM++ (Chattopadhyay et al.,
# [arXiv 1710.11063](https://arxiv.org/abs/1710.11063)) weights positive gradients with
# higher-order terms; EigenCAM ([arXiv 2008.00299](https://arxiv.org/abs/2008.00299)) takes the
# first principal component of the activations and uses no gradient and no class; ScoreCAM
# ([arXiv 1910.01279](https://arxiv.org/abs/1910.01279)) uses no gradient either: it masks the
# image with each upsampled channel and weights the channel by the class score of the masked
# image: one forward pass per channel, 512 per image at `layer4`.
#
# **Time:** without ScoreCAM the cell takes at most {{runtime fig_library_methods}} on a 2-core CPU.
# ScoreCAM runs 512 forward passes per image (1536 for the 3 images here), far more than the
# rest of the notebook on a CPU: set `RUN_SCORECAM = True` when you want to see it; the cell then
# prints how long it took. The autograder never runs it.

# %% [code] id=fig_library_methods
import time

RUN_SCORECAM = False  # True adds ScoreCAM: 512 forward passes per image
x_methods, images_methods, titles_methods = x_show[:3], images_show[:3], titles_show[:3]
methods = ["GradCAM++", "XGradCAM", "HiResCAM", "EigenCAM"] + (["ScoreCAM"] if RUN_SCORECAM and not GRADING else [])
method_maps = {"Grad-CAM (yours)": grad_cam(model, "layer4", x_methods)}
for method in methods:
    started = time.perf_counter()
    method_maps[method] = library_cams.library_cam(method, model, "layer4", x_methods, batch_size=64)
    if method == "ScoreCAM":
        print(f"ScoreCAM: {time.perf_counter() - started:.1f} s for {len(x_methods)} images")
viz.show_explanations(images_methods, method_maps, titles_methods, suptitle="pytorch-grad-cam's methods at layer4")
plt.show()

# %% [markdown]
# **To think about (optional).** Which methods agree with Grad-CAM here and which do not? Pick
# two of them and explain, from how they compute their weights, why they differ from Grad-CAM
# (or not). Hints: at `layer4` the gradient is the same at every position (Question 2.2);
# GradCAM++ drops channels whose gradient is negative; EigenCAM uses no class at all, and the
# sign of a principal component is arbitrary.

# %% [markdown]
# ## Handing in
# 1. *Kernel > Restart & Run All*; check that every cell ran without an error.
# 2. Save, and hand in this notebook file (`02_gradcam.ipynb`) only, with its name unchanged.
