# Assignment 1 source: the model, the data, forward hooks.
# Edit this file, then rebuild the notebooks with `python -m autograder release` (see README).

# %% [markdown]
# # Assignment 1: the model, the data, and forward hooks
#
# In this course you explain the decisions of a real image classifier: a ResNet-18 trained on
# CIFAR-10 (10 classes of 32x32 images), downloaded from the Hugging Face hub
# (`edadaltocg/resnet18_cifar10`). This first assignment gets you to know the model and the data,
# and builds the tool every later method relies on: **forward hooks**, which let you read what
# any layer computes without changing the model.
#
# **You will:** measure the model's accuracy and look at its mistakes (Part 1); implement
# `record_activations` and `top_channels` with forward hooks (Part 2); visualise what layers
# `layer1` to `layer4` respond to and compare classes (Part 3); answer three questions (Part 4).
#
# **Time:** about 2 hours: 45 minutes for the two functions, 30 for exploring the figures, 45
# for the written answers. Running the whole notebook takes at most {{runtime}} on a 2-core CPU, of which
# {{runtime fig_accuracy_per_class}} is the accuracy on the whole test split (Part 1.1 has a switch
# for a quicker run). (Measured with the untrained stand-in, which does the same work as the real
# model: `benchmarks/bench_student_notebooks.py`.)
#
# **Offline:** `python -m student_src.fetch` downloads the model and CIFAR-10 once. Without them
# (no network), start Jupyter with `XAI_KIT_STANDIN=1` (`XAI_KIT_STANDIN=1 jupyter lab`): the
# notebook then runs on an untrained stand-in (random weights, synthetic images) and every figure
# says so. Your functions and their checks work the same; what the stand-in cannot show is what a
# trained model does: its accuracy is chance (about 10%), its mistakes and its channels mean
# nothing, so Question 4.1 needs the real model.
#
# **Grading:** the cells marked with points are graded automatically (some checks are hidden:
# they try other layers, inputs and models) or by your instructor (written answers). Do not
# delete or copy cells; write your code where it says `YOUR CODE HERE`. Before you hand in,
# run *Kernel > Restart & Run All* and check that no cell shows an error.

# %% [locked] id=setup
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from student_src import checks, data, models, session, viz

model, test_set = session.start()  # silences library warnings, seeds, loads model and data
DEVICE = next(model.parameters()).device
CLASSES = test_set.classes

# %% [markdown]
# ## Part 1: the model and the data
#
# The model is torchvision's ResNet-18 with a *CIFAR stem*: its first convolution is 3x3 with
# stride 1 and there is no max-pool, so a 32x32 image keeps its resolution in `layer1`.
# Print it and find the four stages `layer1`..`layer4`.

# %% [code] id=print_model
print(model)

# %% [markdown]
# ### 1.1 Baseline accuracy
# The cell below classifies the test split and reports the accuracy overall and per class.
# All 10 000 images take at most {{runtime fig_accuracy_per_class}} on a 2-core CPU: set `N_IMAGES = 2000`
# for a quicker first run, and back to 10 000 for your answers. The autograder always uses a fixed
# subset of 256 images, to keep grading fast. The cells below reuse these predictions.

# %% [code] id=fig_accuracy_per_class
N_IMAGES = 10_000  # the whole test split; 2000 for a quicker first run
eval_indices = data.evaluation_indices(test_set)
if len(eval_indices) > N_IMAGES:
    eval_indices = data.subset_indices(N_IMAGES, len(test_set), seed=0)
probabilities = data.predict(model, test_set, eval_indices)
confidences, predictions = probabilities.max(dim=1)
labels = test_set.labels[eval_indices]
accuracy = float((predictions.numpy() == labels).mean())
print(f"Test accuracy on {len(eval_indices)} images: {100 * accuracy:.2f}%")
session.standin_note("this accuracy and the figures of Part 1")

class_accuracy = data.per_class_accuracy(predictions.numpy(), labels)
fig, ax = plt.subplots(figsize=(8, 3))
ax.bar(CLASSES, 100 * class_accuracy, color="tab:blue")
ax.set_ylabel("accuracy (%)")
ax.set_ylim(0, 100)
ax.set_title("Per-class test accuracy")
plt.setp(ax.get_xticklabels(), rotation=30)
viz.stamp_standin(fig)
plt.show()

# %% [markdown]
# ### 1.2 Right and wrong
# Ten correctly and ten incorrectly classified test images, with the true label, the
# prediction and the model's confidence (softmax probability of the predicted class).

# %% [code] id=fig_right_and_wrong
def show_examples(correct, n=10, seed=0):
    picked = data.select_examples(predictions.numpy(), labels, n, correct=correct, seed=seed)
    images = data.denormalize(test_set.batch(eval_indices[picked])[0])
    titles = [viz.prediction_title(CLASSES, int(labels[i]), int(predictions[i]), float(confidences[i]))
              for i in picked]
    return viz.show_grid(images, titles, ncols=5,
                         suptitle="Correctly classified" if correct else "Misclassified")


show_examples(correct=True)
plt.show()
show_examples(correct=False)
plt.show()

# %% [markdown]
# ## Part 2: forward hooks
#
# `module.register_forward_hook(hook)` asks PyTorch to call `hook(module, inputs, output)` every
# time `module` finishes its forward pass. It returns a *handle*; `handle.remove()` unregisters
# the hook. A hook that is never removed keeps running (and keeps tensors alive) on every later
# forward pass, so remove it in a `finally:` block: then it goes away even when the forward
# pass raises an exception.
#
# Layers are named as in `model.named_modules()`: `"layer1"`, `"layer4.1.conv2"`, ...
# `model.get_submodule(name)` returns the module with that name.
#
# **In-place operations overwrite what a hook kept.** `output.detach()` is a new tensor *object*
# that shares its storage with `output`. When the network later changes that storage in place,
# what you kept changes too. In this ResNet every BatchNorm in a block is followed by
# `ReLU(inplace=True)` or by `out += identity`; in AlexNet and VGG every convolution is followed
# by an in-place ReLU. So keep a copy, `output.detach().clone()`: the layer's output as it was
# when the layer returned. The cell below shows the difference on a BatchNorm and an in-place ReLU.

# %% [code] id=inplace_demo
demo = nn.Sequential(nn.BatchNorm2d(2), nn.ReLU(inplace=True)).eval()
kept = {}


def keep_output(module, inputs, output):
    kept["detach"] = output.detach()           # shares storage with output
    kept["clone"] = output.detach().clone()    # a copy of the BatchNorm's output


handle = demo[0].register_forward_hook(keep_output)
try:
    demo(torch.randn(1, 2, 3, 3, generator=torch.Generator().manual_seed(0)))
finally:
    handle.remove()
print(f"smallest value kept with .detach():         {kept['detach'].min():.3f}  (the ReLU overwrote it)")
print(f"smallest value kept with .detach().clone(): {kept['clone'].min():.3f}  (the BatchNorm's output)")

# %% [markdown]
# **Task 2.1.** Implement `record_activations(model, layer_names, x)`: register one forward hook
# per name, run the model once on `x` (no gradients needed), and return a dictionary mapping each
# name to that layer's output, **detached** from the autograd graph and **copied** (later
# in-place operations must not change it). Every hook must be removed before the function
# returns, also when the forward pass raises.
#
# **Task 2.2.** Implement `top_channels(model, layer_name, x, k)`: use `record_activations` to find,
# for each image, the `k` channels of a layer with the largest mean activation (mean over the
# spatial positions), sorted from largest to smallest.

# %% [solution] id=record_activations functions=solutions.hooks:record_activations

# %% [markdown]
# The test cells call your function through `checks.call(function, arguments...)`: it puts the
# notebook's model back into the state it was loaded in (eval mode, its weights and BatchNorm
# statistics), turns a crash from a common mistake into a message that says what to change, and
# checks right after the call that your function left the model's mode, weights and statistics
# as they were. Read the message of a failing check first: it names the mistake (never the
# expected numbers; some checks are hidden).

# %% [tests] id=test_record_activations_values points=3
# Shapes and values: compare with running the stages by hand on a small batch. The tolerance 1e-5 is
# 10x the float32 round-off between correct implementations (measured: at most about 1e-6).
x_check, _ = test_set.batch([0, 1, 2])
x_check = x_check.to(DEVICE)
recorded = checks.call(record_activations, model, ["layer1", "layer2", "layer3", "layer4"], x_check)
assert isinstance(recorded, dict), "record_activations must return a dict"
assert list(recorded) == ["layer1", "layer2", "layer3", "layer4"], "keys must be the layer names, in order"
expected_shapes = {"layer1": (3, 64, 32, 32), "layer2": (3, 128, 16, 16),
                   "layer3": (3, 256, 8, 8), "layer4": (3, 512, 4, 4)}
for name, shape in expected_shapes.items():
    checks.assert_shape(recorded[name], shape, f"record_activations(...)['{name}']")
    assert not recorded[name].requires_grad, f"'{name}': return detached tensors (.detach())"
with torch.no_grad():
    stem = model.relu(model.bn1(model.conv1(x_check)))
    checks.assert_close(recorded["layer1"], model.layer1(stem), 1e-5, "layer1 output")
print("Shapes and values look right.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a01_hooks", "check_record_activations_values", record_activations)
### END HIDDEN TESTS

# %% [tests] id=test_record_activations_cleanup points=3
# Hooks must be gone after the call, also when the forward pass raises; the model's mode stays
# (checks.call checks it, also on a small model in train mode); nested names like "layer4.1.conv2".
hooks_before = checks.count_hooks(model)
checks.call(record_activations, model, ["layer2", "layer4.1.conv2"], x_check)
assert checks.count_hooks(model) == hooks_before, "a hook was left registered on the model"
with torch.random.fork_rng(devices=[]):
    small_in_train_mode = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3)).train()
checks.call(record_activations, small_in_train_mode, ["0", "2"], torch.ones(2, 3, 8, 8),
            what="record_activations on a model in train mode")


class Exploding(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


exploding = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), Exploding())
try:
    record_activations(exploding, ["0"], torch.zeros(1, 3, 8, 8))
except RuntimeError:
    pass
assert checks.count_hooks(exploding) == 0, "hooks must be removed in `finally`, also when forward raises"
print("Hooks are cleaned up.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a01_hooks", "check_record_activations_cleanup", record_activations)
### END HIDDEN TESTS

# %% [solution] id=top_channels functions=solutions.hooks:top_channels

# %% [tests] id=test_top_channels points=2
# One value and one channel index per image and rank, also for a batch of one image.
values, indices = checks.call(top_channels, model, "layer3", x_check, k=4)
checks.assert_shape(values, (3, 4), "top_channels values")
checks.assert_shape(indices, (3, 4), "top_channels indices")
assert (values[:, :-1] >= values[:, 1:]).all(), "values must be sorted from largest to smallest"
layer3_means = checks.call(record_activations, model, ["layer3"], x_check)["layer3"].mean(dim=(2, 3))
checks.assert_close(values, layer3_means.gather(1, indices), 1e-6, "values must be the channels' mean activations")
one_values, one_indices = checks.call(top_channels, model, "layer3", x_check[:1], k=4,
                                      what="top_channels on a batch of one image")
checks.assert_shape(one_indices, (1, 4), "top_channels indices for a batch of one image")
print("top_channels looks right.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a01_hooks", "check_top_channels", top_channels)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 3: what the layers see
#
# ### 3.1 Feature maps from layer1 to layer4
# The cell below records all four stages for one test image and shows 16 channels of each (8 when
# the autograder runs it, to save time).
# Look at the resolution (32, 16, 8, 4) and at what the channels respond to.

# %% [code] id=fig_feature_maps_layer1_to_layer4
image_index = int(eval_indices[0])
x_one, label_one = test_set.batch([image_index])
stages = ["layer1", "layer2", "layer3", "layer4"]
activations = record_activations(model, stages, x_one.to(DEVICE))

viz.show_grid(data.denormalize(x_one), [f"input: {CLASSES[int(label_one)]}"], ncols=1, cell_size=2.5)
plt.show()
n_channels_shown = 8 if data.grading_mode() else 16
for name in stages:
    viz.show_feature_maps(activations[name][0].cpu(), n_channels=n_channels_shown, ncols=8,
                          title=f"{name}: {tuple(activations[name].shape[1:])}")
    plt.show()

# %% [markdown]
# ### 3.2 Do classes light up different channels?
# For a few images of two classes, compare the most activated `layer4` channels. Channels that
# appear for one class and not the other are candidates for class-specific features.

# %% [code] id=class_top_channels
def images_of_class(class_index, n=4):
    chosen = eval_indices[labels == class_index][:n]
    return test_set.batch(chosen)[0].to(DEVICE)


for class_name in ("cat", "dog"):
    class_index = CLASSES.index(class_name)
    _, channels = top_channels(model, "layer4", images_of_class(class_index), k=5)
    print(f"{class_name:>5}: top layer4 channels per image: {channels.tolist()}")
session.standin_note("these channels")

# %% [markdown]
# ## Part 4: questions
#
# **Question 4.1 (3 points).** Compare the feature maps of `layer1` and `layer4` in Part 3.1:
# what do early channels respond to, and what do late channels respond to? Point to what you saw.
# (This needs the real model: the stand-in's channels respond to nothing learned.)

# %% [answer] id=q_early_late points=3
# Early channels (layer1, 32x32) respond to local, low-level patterns: edges of a given
# orientation, colour blobs, the object outline; many look like filtered copies of the image.
# Late channels (layer4, 4x4) are coarse and sparse: a few positions fire strongly, and which
# channels fire depends on the class (Part 3.2), so they encode parts or whole-object evidence
# rather than where edges are.
# RUBRIC: 1 point: early (layer1) channels: local low-level patterns (edges, colours, outlines),
#   at full resolution
# RUBRIC: 1 point: late (layer4) channels: coarse, sparse, class-dependent: parts or whole-object
#   evidence
# RUBRIC: 1 point: points to what the student's own figures of Part 3.1 showed (a layer, a
#   channel, an image)

# %% [markdown]
# **Question 4.2 (2 points).** Why is the output of `layer4` 4x4 for a 32x32 input? What would it
# be for an ImageNet-style ResNet-18 (7x7 stride-2 first convolution plus max-pool) on the same
# image, and what does that mean for a heatmap computed at that layer?

# %% [answer] id=q_layer4_size points=2
# The CIFAR stem keeps 32x32; layer2, layer3 and layer4 each halve the resolution (stride-2
# convolution in their first block): 32 -> 16 -> 8 -> 4. The ImageNet stem divides by 4 first
# (stride-2 conv, stride-2 max-pool), so 32x32 ends at 1x1 in layer4: a map with a single value,
# which after upsampling is constant: it cannot show *where* anything is.
# RUBRIC: 1 point: three stride-2 stages halve 32x32 three times: 32 -> 16 -> 8 -> 4
# RUBRIC: 1 point: the ImageNet stem (stride-2 conv, max-pool) ends at 1x1, so the heatmap is
#   constant: no location

# %% [markdown]
# **Question 4.3 (2 points).** Name two uses of forward hooks beyond visualisation, and one
# thing that goes wrong if a hook is never removed.

# %% [answer] id=q_hooks_uses points=2
# Uses: extracting features from an intermediate layer for another model (transfer learning,
# nearest neighbours); debugging (checking for NaN, dead ReLUs, activation statistics);
# modifying outputs (ablating channels, pruning experiments); capturing activations for
# Grad-CAM. A hook never removed keeps firing on every forward pass: it slows the model,
# keeps every captured tensor in memory, and silently changes results if it modifies outputs.
# RUBRIC: 1 point: two uses beyond visualisation (features for another model, debugging
#   statistics, ablation/pruning, Grad-CAM)
# RUBRIC: 1 point: one consequence of a hook never removed (keeps firing: slower, memory held,
#   results silently changed)

# %% [markdown]
# ## Handing in
# 1. *Kernel > Restart & Run All*; check that every cell ran without an error.
# 2. Save, and hand in this notebook file (`01_hooks.ipynb`) only, with its name unchanged.
