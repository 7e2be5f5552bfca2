# Assignment 5 source: ImageNet classics (AlexNet, VGG-16) with your own tools, and Shapley values computed.
# Edit this file, then rebuild the notebooks with `python -m autograder release` (see README).

# %% [markdown]
# # Assignment 5: ImageNet classics and Shapley values
#
# Everything so far explained a CIFAR-10 ResNet-18 on 32x32 images. This assignment takes your
# tools to the networks Grad-CAM was first shown on: torchvision's **AlexNet** (Krizhevsky et al.,
# NeurIPS 2012) and **VGG-16** (Simonyan & Zisserman, ICLR 2015, <https://arxiv.org/abs/1409.1556>),
# trained on ImageNet's 1000 classes, on 224x224 photos, among them the photo of a cat and a dog
# of the Grad-CAM paper. Then it computes what the earlier assignments only discussed:
# **Shapley values** (Shapley 1953) of image regions, by permutation sampling (Strumbelj &
# Kononenko, KAIS 2014), and compares them with Grad-CAM on the same photo.
#
# **You will:** implement `last_conv_layer` and explain why these networks' maps are 13x13 and
# 14x14 (Part 1); run *your own* Grad-CAM, Layer-CAM and guided backpropagation from Assignments
# 2-4 on both classes of the cat-and-dog photo (Part 1); implement `coalition_scores` and
# `region_shapley` and compare Shapley values with Grad-CAM by rank correlation, deletion and
# insertion, and cost (Part 2).
#
# **Data, and offline.** `python -m student_src.fetch --imagenet` downloads torchvision's ImageNet
# weights (AlexNet 233 MB, VGG-16 528 MB) and three photos, once. Without them (no network), start
# Jupyter with `XAI_KIT_STANDIN=1` (`XAI_KIT_STANDIN=1 jupyter lab`): the notebook then runs on
# random-init networks and generated photos, and every figure says so. Your functions and their
# checks work the same; what the stand-in cannot show is what a trained network sees in the
# photo: its classes and maps mean nothing, so Questions 1.5 and 2.5 need the real networks
# (1.3 and 1.8 do not).
#
# **Time:** running the whole notebook takes at most {{runtime}} on a 2-core CPU (measured with the
# stand-in, which does the same work as the real networks: `benchmarks/bench_student_notebooks.py`).
#
# **Grading:** the cells marked with points are graded automatically (some checks are hidden:
# they use other small networks, inputs and models whose Shapley values are known exactly) or by
# your instructor (written answers). Do not delete or copy cells; write your code where it says
# `YOUR CODE HERE`. Before you hand in, run *Kernel > Restart & Run All* and check that no cell
# shows an error. When the autograder runs the notebook, the exploration cells use AlexNet only,
# few regions and few permutations.

# %% [locked] id=setup
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from student_src import checks, colour_keys, data, evaluation, imagenet, library_cams, probe_models, session, viz

GRADING = data.grading_mode()  # True while the autograder runs the notebook: AlexNet only, fewer samples
# Seeds, silences library warnings, loads AlexNet, VGG-16 (not while grading, which uses AlexNet only) and the photos.
alexnet, vgg16, photos = session.start_imagenet(with_vgg=not GRADING)
DEVICE = photos.device
CATEGORIES = imagenet.categories()  # the 1000 ImageNet class names, index = class
CAT_AND_DOG = photos[:1]  # (1, 3, 224, 224): the cat-and-dog photo
NETWORKS = {"AlexNet": alexnet} if GRADING else {"AlexNet": alexnet, "VGG-16": vgg16}
# The networks' modules on PyTorch's "meta" device (no memory, no weights): for layer names and shapes.
SKELETONS = {"AlexNet": imagenet.skeleton("alexnet"), "VGG-16": imagenet.skeleton("vgg16"),
             "ResNet-18 (CIFAR)": imagenet.skeleton("cifar_resnet18")}

# %% [markdown]
# ## Your tools from Assignments 2, 3 and 4
#
# **Paste your own `grad_cam` (Assignment 2, with `activations_and_gradients` and `scale_cams`),
# `guided_backprop` (Assignment 3, with `GuidedReLUFunction` and `input_gradient` if it uses
# them) and `layer_cam`, `deletion_curve`, `insertion_curve`, `area_under_curve` (Assignment 4)
# into the next cell**, below the imports, to use them here. Functions you wrote for a ResNet must
# work unchanged on AlexNet and VGG-16: their in-place ReLUs and the ReLU module reused in every
# ResNet block were already in the hidden checks of Assignments 1-4. Until you paste yours, the
# imports give you library-backed versions with the same signatures (pytorch-grad-cam and
# captum). This cell is not graded.
#
# *The library's pitfall again:* pytorch-grad-cam keeps a layer's output without a copy, so on a
# CPU the in-place ReLU after `features.10` overwrites it (Assignment 2). The fallback below
# therefore switches the in-place ReLUs off while the library runs
# (`library_cams.inplace_relus_off`); your own functions need no such help.

# %% [code] id=tools_from_assignments_2_3_4
# grad_cam(model, layer_name, x, targets=None) -> maps (B, H, W) in [0, 1]
# guided_backprop(model, x, targets=None) -> gradients (B, 3, H, W)
# layer_cam(model, layer_name, x, targets=None) -> maps (B, H, W) in [0, 1]
# deletion_curve(model, x, saliency, target, steps=16, baseline=0.0) -> probabilities (B, steps + 1)
# insertion_curve(model, x, saliency, target, steps=16, baseline=0.0) -> probabilities (B, steps + 1)
# area_under_curve(curve) -> areas (B,)
from student_src.library_cams import library_guided_backprop as guided_backprop
from student_src.library_metrics import library_area_under_curve as area_under_curve
from student_src.library_metrics import library_deletion_curve as deletion_curve
from student_src.library_metrics import library_insertion_curve as insertion_curve


def grad_cam(model, layer_name, x, targets=None):
    """pytorch-grad-cam's GradCAM (replace it with your own from Assignment 2)."""
    with library_cams.inplace_relus_off(model):
        return library_cams.library_grad_cam(model, layer_name, x, targets)


def layer_cam(model, layer_name, x, targets=None):
    """pytorch-grad-cam's LayerCAM (replace it with your own from Assignment 4)."""
    with library_cams.inplace_relus_off(model):
        return library_cams.library_cam("LayerCAM", model, layer_name, x, targets)


# %% [markdown]
# ## Part 1: AlexNet and VGG-16
#
# Both networks are a `features` block of convolutions, in-place ReLUs and max-pools, an
# adaptive average pool to 6x6 (AlexNet) or 7x7 (VGG-16), and a `classifier` of linear layers.
# Grad-CAM reads the **last convolution**: the deepest layer that still has a spatial layout.
#
# **Task 1.1.** Implement `last_conv_layer(model)`: the name (as in `model.named_modules()`) of
# the last `nn.Conv2d` in the model; a model without one raises `ValueError`.

# %% [solution] id=last_conv_layer functions=solutions.layers:last_conv_layer

# %% [tests] id=test_last_conv_layer points=2
# AlexNet itself, and the skeletons of VGG-16 and of the CIFAR ResNet-18 (the same modules, no weights).
for network, model in {**SKELETONS, "AlexNet": alexnet}.items():
    name = last_conv_layer(model)
    assert isinstance(name, str), f"last_conv_layer({network}) must return the layer's name, a str"
    modules = dict(model.named_modules())
    assert isinstance(modules.get(name), nn.Conv2d), f"last_conv_layer({network}) = {name!r} is not an nn.Conv2d"
    later = list(modules)[list(modules).index(name) + 1:]
    assert not any(isinstance(modules[n], nn.Conv2d) for n in later), \
        f"last_conv_layer({network}) = {name!r}, but another nn.Conv2d is registered after it"
try:
    last_conv_layer(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
    raise AssertionError("last_conv_layer on a model without a convolution must raise ValueError")
except ValueError:
    pass
print("last_conv_layer finds the last convolution.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a05_imagenet", "check_last_conv_layer", last_conv_layer)
### END HIDDEN TESTS

# %% [markdown]
# ### 1.2 How large is the last map?
# Forward hooks record the output shape of every convolution and pooling layer for one
# 224x224 input (AlexNet, VGG-16) and one 32x32 input (the CIFAR ResNet-18's stages).


# %% [code] id=feature_map_sizes
def output_shapes(model, x, kinds=(nn.Conv2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Sequential)):
    """{module name: output shape (C, h, w)} of the modules of the given kinds, for one input x."""
    shapes, handles = {}, []
    try:
        for name, module in model.named_modules():
            if name and isinstance(module, kinds):
                hook = lambda module, inputs, output, name=name: shapes.__setitem__(name, tuple(output.shape[1:]))
                handles.append(module.register_forward_hook(hook))
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return shapes


for network, model in SKELETONS.items():
    size = 32 if "CIFAR" in network else 224
    shapes = output_shapes(model, torch.empty(1, 3, size, size, device="meta"))
    last = last_conv_layer(model)
    print(f"{network} at {size}x{size}: last convolution {last} -> {shapes[last]}")
    print("   ", ", ".join(f"{name} {shape[1]}x{shape[2]}" for name, shape in shapes.items()
                           if len(shape) == 3 and name.count(".") <= 1))

# %% [markdown]
# **Question 1.3 (2 points).** Which layer is the last convolution of AlexNet and of VGG-16,
# and why is its map 13x13 in AlexNet and 14x14 in VGG-16, while the CIFAR ResNet-18's `layer4`
# is 4x4? What does the size mean for a Grad-CAM map?

# %% [answer] id=q_map_size points=2
# AlexNet: features.10 (Conv2d 256->256, 3x3), VGG-16: features.28 (Conv2d 512->512, 3x3); after
# each comes an in-place ReLU and a max-pool (features.12 / features.30), which are not
# convolutions. The map size is the input size divided by the network's total stride. AlexNet:
# the 11x11 stride-4 first convolution (padding 2) gives 55x55, two 3x3 stride-2 max-pools give
# 27x27 and 13x13, and the three last convolutions (3x3, padding 1) keep 13x13 (224 / ~16). VGG-16:
# 3x3 padding-1 convolutions keep the size; four of its five 2x2 max-pools come before
# features.28, so 224 / 16 = 14 (the fifth pool, after it, gives 7x7). The CIFAR ResNet-18 has a
# stride-1 stem and three stride-2 stages: 32 / 8 = 4. A Grad-CAM map has one value per cell of
# that grid, upsampled: 13x13 or 14x14 cells of about 16 pixels locate objects finer than 4x4
# cells of 8 pixels of a 32x32 image, relative to the image; in pixels each cell of the ImageNet
# maps is larger, and the receptive field of each position is much larger still.
# RUBRIC: 1 point: names the last convolutions (AlexNet features.10, VGG-16 features.28)
# RUBRIC: 1 point: map size = input / total stride (13x13, 14x14 vs 4x4) and what it means for a
#   Grad-CAM map's resolution

# %% [markdown]
# ### 1.4 One photo, two classes
# The photo of the Grad-CAM paper holds a dog and a cat. ImageNet has no class "cat" or "dog":
# it has 5 domestic cat classes (281 tabby ... 285 Egyptian cat) and 118 dog breeds (151 ... 268).
# Below, each network's top-5 classes, its best cat class and its best dog class; then *your*
# Grad-CAM at its last convolution, for each of the two classes.

# %% [code] id=cat_and_dog_classes
with torch.no_grad():
    probabilities = {network: torch.softmax(model(CAT_AND_DOG), dim=1)[0].cpu() for network, model in NETWORKS.items()}
explained = {}  # network -> {"cat": class, "dog": class}
for network, p in probabilities.items():
    top5 = p.topk(5)
    print(f"{network} top 5: " + "; ".join(f"{CATEGORIES[c]} ({c}) {100 * v:.1f}%"
                                           for v, c in zip(top5.values.tolist(), top5.indices.tolist())))
    cat = max(imagenet.CAT_CLASSES, key=lambda c: p[c])
    dog = max(imagenet.DOG_CLASSES, key=lambda c: p[c])
    explained[network] = {"cat": cat, "dog": dog}
    print(f"    best cat class: {CATEGORIES[cat]} ({cat}), {100 * p[cat]:.1f}%; "
          f"best dog class: {CATEGORIES[dog]} ({dog}), {100 * p[dog]:.1f}%")

# %% [code] id=fig_cat_dog_gradcam
cat_dog_maps, started = {}, time.perf_counter()
for network, model in NETWORKS.items():
    layer = last_conv_layer(model)
    for animal, category in explained[network].items():
        cat_dog_maps[f"{network} {layer}\n{CATEGORIES[category][:18]} ({category})"] = \
            grad_cam(model, layer, CAT_AND_DOG, [category]).cpu()
print(f"{len(cat_dog_maps)} Grad-CAM maps in {time.perf_counter() - started:.1f} s")
viz.show_explanations(imagenet.denormalize(CAT_AND_DOG), cat_dog_maps, ["cat and dog"],
                      suptitle="Grad-CAM at the last convolution, for the best cat class and the best dog class")
plt.show()

# %% [markdown]
# **Question 1.5 (3 points, needs the real networks).** Describe the two maps of each network. Are they class
# discriminative (does each light up its own animal)? Where do AlexNet and VGG-16 differ, and
# what in their architecture could explain it? What does it say about a model that its map for
# one class covers the *other* animal?

# %% [answer] id=q_cat_dog points=3
# (With the ImageNet weights:) VGG-16's maps are class discriminative: the tabby / tiger cat map
# covers the cat's body and head, the bull mastiff / boxer map the dog's face, with little overlap,
# as in the Grad-CAM paper. AlexNet's maps are coarser and more spread: its dog map still centres
# on the dog's head, its cat map is weaker and more diffuse, with some weight on background and
# on the dog (AlexNet tends to have clearer evidence for dogs than for cats).
# Differences: VGG-16 is deeper (13 convolutions of 3x3 vs 5, larger kernels and stride 4 in
# AlexNet's first layer) and more accurate (top-1 about 71.6% vs 56.5%), its last map is 14x14
# with features more specific to object parts; AlexNet's 13x13 map comes from coarser, more
# generic features. A map for "cat" that covers the dog means the score of that class rises with
# evidence at the dog (shared fur texture, "animal" features) or the model decides partly by
# elimination; Grad-CAM shows where the class score's gradient-weighted evidence is, not that the
# model has understood what a cat is. A faithful check (deletion of the region) would tell.
# RUBRIC: 1 point: describes both networks' cat and dog maps and whether each lights up its own
#   animal
# RUBRIC: 1 point: where AlexNet and VGG-16 differ, explained by their architecture (depth,
#   kernels, stride, accuracy)
# RUBRIC: 1 point: what a class map covering the other animal says about the model (shared or
#   wrong evidence)

# %% [markdown]
# ### 1.6 Layer-CAM at an earlier layer, and the last layer's feature maps
# AlexNet's `features.3` (the second convolution) is 27x27 and VGG-16's `features.21` 28x28. There
# Grad-CAM's one weight per channel blurs, while Layer-CAM weights each position (Assignment 4).
# The last panel of each row is the mean over the channels of the last convolution's output
# (after its ReLU): what the map is built from, class-blind.

# %% [code] id=fig_layercam_early
EARLY_LAYERS = {"AlexNet": "features.3", "VGG-16": "features.21"}
for network, model in NETWORKS.items():
    early, last = EARLY_LAYERS[network], last_conv_layer(model)
    maps = {}
    for animal, category in explained[network].items():
        maps[f"Grad-CAM {early}\n{animal} ({category})"] = grad_cam(model, early, CAT_AND_DOG, [category]).cpu()
        maps[f"Layer-CAM {early}\n{animal} ({category})"] = layer_cam(model, early, CAT_AND_DOG, [category]).cpu()
    kept = {}
    handle = model.get_submodule(f"features.{int(last.split('.')[1]) + 1}").register_forward_hook(
        lambda module, inputs, output: kept.__setitem__("relu", output.detach().clone()))
    try:
        with torch.no_grad():
            model(CAT_AND_DOG)
    finally:
        handle.remove()
    mean_map = kept["relu"].mean(dim=1)
    maps[f"mean feature map\n{last} + ReLU"] = viz.Column(
        (mean_map / (mean_map.max() + 1e-12)).cpu(),
        colour_keys.normalised("divided by its maximum", what="mean activation over the channels"))
    viz.show_explanations(imagenet.denormalize(CAT_AND_DOG), maps, [network],
                          suptitle=f"{network}: Grad-CAM and Layer-CAM at {early}, and the last layer's mean activation")
    plt.show()

# %% [markdown]
# ### 1.7 Guided backpropagation on an in-place network
# Your guided backpropagation replaces or patches every `nn.ReLU` (AlexNet has 7, all
# `inplace=True`). The cell checks that the network comes back as it was (the same module
# objects, in-place flags, no hooks, no `.grad`), then shows guided backprop and Guided Grad-CAM
# for both classes.

# %% [code] id=fig_guided
snapshot = checks.ModelSnapshot(alexnet)
GUIDED_KEY = colour_keys.normalised("each map divided by its maximum", what="|gradient|, largest over the colour channels")
guided_maps = {}
for animal, category in explained["AlexNet"].items():
    gradients = guided_backprop(alexnet, CAT_AND_DOG, [category])
    cam = grad_cam(alexnet, "features.10", CAT_AND_DOG, [category])
    guided = gradients.abs().amax(dim=1)
    combined = guided * cam
    for name, maps in ((f"guided backprop\n{animal} ({category})", guided),
                       (f"Guided Grad-CAM\n{animal} ({category})", combined)):
        guided_maps[name] = viz.Column((maps / (maps.max() + 1e-12)).cpu(), GUIDED_KEY)
snapshot.assert_unchanged(alexnet, "guided_backprop and grad_cam on AlexNet")
print("AlexNet is unchanged: the same ReLU modules, all still inplace=True, no hooks, no .grad.")
viz.show_explanations(imagenet.denormalize(CAT_AND_DOG), guided_maps, ["AlexNet"],
                      suptitle="Guided backpropagation and Guided Grad-CAM (AlexNet features.10)")
plt.show()

# %% [markdown]
# **Question 1.8 (2 points).** Name two things in AlexNet and VGG-16 (and in the ResNet) that a
# hook-based or module-replacing implementation of Grad-CAM or guided backpropagation must cope
# with, and say what goes wrong if it does not. Did your functions from Assignments 2-4 need a
# change here?

# %% [answer] id=q_inplace points=2
# 1) In-place ReLUs right after the hooked layer (every convolution of AlexNet and VGG,
# inplace=True; BatchNorm + in-place ReLU or `out += identity` in a ResNet block): a forward hook
# that keeps `output` without a copy gets the ReLU's output, and a gradient taken with respect to
# it is the gradient after the ReLU, so A and G come from two different places (pytorch-grad-cam's
# CPU pitfall); full backward hooks on in-place modules raise errors. Fix: return output.clone()
# from the hook, or keep a clone and use a tensor hook. 2) One ReLU module object used several
# times (ResNet's BasicBlock calls self.relu twice): patching "the input of the module" with a
# forward hook keeps only the last call's input, and replacing modules must put back the very
# same objects (with inplace=True), not new nn.ReLU(); guided backprop is safest as a custom
# autograd function applied per call (a module swapped in and restored in finally). Also:
# no_grad() around the caller, dropout in train mode. With the Assignment 1-4 checks (they ran on
# an AlexNet-shaped network with in-place ReLUs and on a shared ReLU), my functions ran unchanged.
# RUBRIC: 1 point: one pitfall and what goes wrong (in-place ReLU after the hooked layer: A and G
#   from different places)
# RUBRIC: 1 point: a second one (a ReLU module reused, modules replaced by new objects) and
#   whether the student's functions needed a change

# %% [markdown]
# ## Part 2: Shapley values of image regions
#
# Cut the image into R **regions** (here a grid; superpixels work the same way). A *coalition*
# S of regions is the image with the regions in S shown and all others replaced by a
# **baseline** (0.0: ImageNet's mean colour, since the photos are normalised). Its value is the
# class score, `v(S) = model(x_S)[target]` (the raw logit, as for Grad-CAM). The **Shapley
# value** of region i is its marginal contribution averaged over every order in which the regions
# could be added:
#
# `phi_i = E over random orders pi of [ v(regions before i in pi, plus i) - v(regions before i in pi) ]`
#
# Exactly, that needs all 2^R coalitions. **Permutation sampling** draws `n_permutations`
# random orders, adds the regions one by one along each (R + 1 model evaluations per order) and
# averages the marginal contributions. Two facts your tests use: along *every* order the
# contributions add up to `f(x) - f(baseline)` (efficiency), and for an *additive* model
# (`v(S) = c + sum over S of a_i`) every order gives region i exactly `a_i`.
#
# **Task 2.1.** Implement `coalition_scores(model, x, target, regions, order, baseline=0.0,
# batch_size=32)`: the scores `v_0 .. v_R` along one order (the docstring has the details; bad
# region maps and orders raise `ValueError`).
#
# **Task 2.2.** Implement `region_shapley(model, x, target, regions, n_permutations=16,
# baseline=0.0, seed=0, batch_size=32)` with `coalition_scores`: the average marginal
# contribution of each region over `n_permutations` random orders.

# %% [solution] id=coalition_scores functions=solutions.shapley:coalition_scores

# %% [tests] id=test_coalition_scores points=2
# A model you can compute by hand: logit 0 = the sum of the 4 pixels of a one-channel 2x2 image, one region
# per pixel, baseline 0. Adding the regions in the order 2, 0, 3, 1 gives the sums 0, 3, 4, 8, 10.
sum_model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False)).eval()
with torch.no_grad():
    sum_model[1].weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]))
x_hand = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
regions_hand = torch.tensor([[0, 1], [2, 3]])
for batch_size in (32, 2):
    scores = checks.call(coalition_scores, sum_model, x_hand, 0, regions_hand, torch.tensor([2, 0, 3, 1]),
                         batch_size=batch_size)
    checks.assert_shape(scores, (1, 5), "coalition_scores(model, x, 0, regions, order) for 4 regions")
    checks.assert_close(scores, torch.tensor([[0.0, 3.0, 4.0, 8.0, 10.0]]), 1e-6,
                        f"coalition_scores on the 2x2 sum model (order 2, 0, 3, 1; batch_size={batch_size})")
scores = checks.call(coalition_scores, sum_model, x_hand, [0], regions_hand, torch.tensor([0, 1, 2, 3]), baseline=1.0)
checks.assert_close(scores, torch.tensor([[4.0, 4.0, 5.0, 7.0, 10.0]]), 1e-6,
                    "coalition_scores with baseline 1.0 (absent pixels show 1)")
for what, regions_bad, order_bad in (("labels that skip 2", torch.tensor([[0, 1], [3, 3]]), torch.tensor([0, 1, 3])),
                                     ("an order with a repeat", regions_hand, torch.tensor([0, 1, 1, 3]))):
    try:
        coalition_scores(sum_model, x_hand, 0, regions_bad, order_bad)
        raise AssertionError(f"coalition_scores with {what} must raise ValueError")
    except ValueError:
        pass
print("coalition_scores is right on the hand-computed cases.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a05_imagenet", "check_coalition_scores", coalition_scores)
### END HIDDEN TESTS

# %% [solution] id=region_shapley functions=solutions.shapley:region_shapley

# %% [tests] id=test_region_shapley_additive points=3
# An additive model: logits = W @ x.flatten() on one-channel 4x4 images and a 2x2 grid of regions. Each
# region's Shapley value is its own term, sum over its pixels of W[target] * (x - baseline), for ANY orders;
# captum's ShapleyValueSampling (the same estimator, its own random orders) agrees with the same feature mask.
from captum.attr import ShapleyValueSampling

generator = torch.Generator().manual_seed(0)
weights = torch.randn(3, 16, generator=generator)
additive = probe_models.AdditiveModel(weights)
x_add = torch.randn(2, 1, 4, 4, generator=generator)
grid = evaluation.grid_regions(4, 4, 2)
for baseline, n_permutations in ((0.0, 3), (0.5, 1)):
    phi = checks.call(region_shapley, additive, x_add, [0, 2], grid, n_permutations=n_permutations, baseline=baseline,
                      seed=1)
    what = f"region_shapley on the additive model (baseline {baseline}, n_permutations={n_permutations})"
    checks.assert_shape(phi, (2, 4), f"{what}: one value per image and region")
    terms = (x_add - baseline).flatten(1) * weights[[0, 2]]
    expected = torch.stack([terms[:, grid.flatten() == r].sum(dim=1) for r in range(4)], dim=1)
    checks.assert_close(phi, expected, 1e-5, what, axes=("image", "region"))
    with checks.quiet_warnings():
        library = ShapleyValueSampling(additive).attribute(x_add, baselines=baseline, target=[0, 2],
                                                           feature_mask=grid[None, None], n_samples=2)
    checks.assert_close(phi, evaluation.region_means(library[:, 0], grid), 1e-5,
                        f"{what} vs captum's ShapleyValueSampling", axes=("image", "region"))
print("region_shapley gives every region of an additive model its own contribution, as captum does.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a05_imagenet", "check_region_shapley_additive", region_shapley)
### END HIDDEN TESTS

# %% [tests] id=test_region_shapley_efficiency points=2
# A small AlexNet-shaped network (in-place ReLUs) on 32x32 images, a 4x4 grid: whatever the orders, each
# image's values add up to f(x) - f(baseline) of its target; the network is left as it was.
probe = probe_models.alexnet_shaped()
snapshot = checks.ModelSnapshot(probe)
x_probe = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
grid = evaluation.grid_regions(32, 32, 4)
phi = checks.call(region_shapley, probe, x_probe, [3, 7], grid, n_permutations=2, baseline=0.0, seed=0, batch_size=8)
checks.assert_shape(phi, (2, 16), "region_shapley(probe, x, [3, 7], 4x4 grid, n_permutations=2)")
with torch.no_grad():
    total = (probe(x_probe) - probe(torch.zeros_like(x_probe)))[torch.arange(2), [3, 7]]
checks.assert_close(phi.sum(dim=1), total, 1e-5, "the sum of each image's Shapley values vs f(x) - f(baseline)")
snapshot.assert_unchanged(probe, "region_shapley")
print("The values add up to f(x) - f(baseline) (efficiency).")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a05_imagenet", "check_region_shapley_efficiency", region_shapley)
### END HIDDEN TESTS

# %% [tests] id=test_region_shapley_pairs points=2
# A model with one interaction, one region per pixel of a one-channel 2x2 image, x = 1, baseline 0:
#     v(S) = 1*[0 in S] + 2*[1 in S] - 1*[2 in S] + 0.5*[3 in S] + 3*[0 in S]*[1 in S]
# Region 0's marginal contribution is 1 + 3 when region 1 came before it (probability 1/2), else 1: its
# Shapley value is 1 + 3/2, with standard deviation 3/2 over random orders; likewise region 1: 2 + 3/2.
# Regions 2 and 3 add -1 and 0.5 whatever the order. With n orders the sampled value has standard error
# 1.5 / sqrt(n); 5 standard errors are allowed (a correct sampler fails with probability below 1e-6).


class PairModel(nn.Module):
    def forward(self, x):
        p = x.flatten(1)
        score = p @ torch.tensor([1.0, 2.0, -1.0, 0.5]) + 3.0 * p[:, 0] * p[:, 1]
        return torch.stack([score, -score], dim=1)


x_pair, regions_pair, n_permutations = torch.ones(1, 1, 2, 2), torch.tensor([[0, 1], [2, 3]]), 64
allowed = 5 * 1.5 / n_permutations ** 0.5
phi = checks.call(region_shapley, PairModel(), x_pair, 0, regions_pair, n_permutations=n_permutations, seed=3)
checks.assert_shape(phi, (1, 4), "region_shapley on the pair model")
assert (phi[0, :2] - torch.tensor([2.5, 3.5])).abs().max() <= allowed, \
    "regions 0 and 1 must be within 5 standard errors of 2.5 and 3.5 (average the marginal contributions)"
checks.assert_close(phi[0, 2:], torch.tensor([-1.0, 0.5]), 1e-5, "regions 2 and 3 (no interaction) are exact")
with checks.quiet_warnings():
    library = ShapleyValueSampling(PairModel()).attribute(x_pair, baselines=0.0, target=0,
                                                          feature_mask=regions_pair[None, None], n_samples=n_permutations)
assert (evaluation.region_means(library[:, 0], regions_pair)[0, :2] - torch.tensor([2.5, 3.5])).abs().max() <= allowed
print(f"Within 5 standard errors ({allowed:.2f}) of the exact values, as captum's ShapleyValueSampling.")
### BEGIN HIDDEN TESTS
from student_src import grading_client as hidden

hidden.run("a05_imagenet", "check_region_shapley_sampling", region_shapley)
### END HIDDEN TESTS

# %% [markdown]
# ### 2.3 Shapley values and Grad-CAM on the cat-and-dog photo
# AlexNet, both classes, a grid of regions, the mean colour as the baseline. For Grad-CAM each
# region gets the mean of the map over its pixels. The Spearman rank correlation over the regions
# says whether the two methods order the regions alike. The cost is counted in images the network
# evaluates (a forward hook counts them) and seconds. Raise `SHAPLEY_CELLS` and `SHAPLEY_ORDERS`
# if you can wait: 5x5 cells and 16 orders (a CPU's default) is 16 * 26 = 416 images per class (the
# cell takes at most {{runtime shapley_vs_gradcam}} on a 2-core CPU, both classes), 7x7 cells and 32
# orders 1600 (a GPU's default).

# %% [code] id=shapley_vs_gradcam
from scipy.stats import spearmanr  # (imported here: the cells your functions are graded in have no scipy)
SHAPLEY_CELLS = 3 if GRADING else (7 if DEVICE.type == "cuda" else 5)
SHAPLEY_ORDERS = 2 if GRADING else (32 if DEVICE.type == "cuda" else 16)
regions = evaluation.grid_regions(224, 224, SHAPLEY_CELLS).to(DEVICE)
images_seen = []
counter = alexnet.register_forward_hook(lambda module, inputs, output: images_seen.append(output.shape[0]))
comparison, costs = {}, []
try:
    for animal, category in explained["AlexNet"].items():
        images_seen.clear()
        started = time.perf_counter()
        cam = grad_cam(alexnet, "features.10", CAT_AND_DOG, [category])
        costs.append(("Grad-CAM", animal, sum(images_seen), time.perf_counter() - started))
        images_seen.clear()
        started = time.perf_counter()
        phi = region_shapley(alexnet, CAT_AND_DOG, category, regions, n_permutations=SHAPLEY_ORDERS, seed=0)
        costs.append(("Shapley", animal, sum(images_seen), time.perf_counter() - started))
        cam_per_region = evaluation.region_means(cam, regions)
        rho = spearmanr(cam_per_region[0].cpu().numpy(), phi[0].cpu().numpy()).statistic
        comparison[animal] = {"category": category, "cam": cam, "phi": phi, "rho": float(rho)}
finally:
    counter.remove()
for method, animal, n_images, seconds in costs:
    print(f"{method:>8} {animal}: {n_images:5d} images through the network, {seconds:6.2f} s")
for animal, result in comparison.items():
    print(f"{animal} ({CATEGORIES[result['category']]}): Spearman over {regions.max() + 1} regions, "
          f"Grad-CAM region means vs Shapley values: {result['rho']:+.2f}; sum of the Shapley values "
          f"{float(result['phi'].sum()):+.2f} = f(x) - f(baseline)")

painted = {animal: evaluation.paint_regions(result["phi"], regions).cpu() for animal, result in comparison.items()}
shapley_key = colour_keys.signed(np.concatenate([maps.numpy() for maps in painted.values()]),
                                 "Shapley value of the region (logit), one scale for both classes")
columns = {}
for animal, result in comparison.items():
    columns[f"Grad-CAM {animal}"] = result["cam"].cpu()
    columns[f"Shapley {animal}\n(sum {float(result['phi'].sum()):+.2g})"] = viz.Column(painted[animal], shapley_key,
                                                                                   overlay=False)
viz.show_explanations(imagenet.denormalize(CAT_AND_DOG), columns, ["cat and dog"],
                      suptitle=f"AlexNet: Grad-CAM vs Shapley values of {SHAPLEY_CELLS}x{SHAPLEY_CELLS} regions "
                               f"({SHAPLEY_ORDERS} orders)")
plt.show()
session.standin_note("these correlations, sums and maps")

# %% [markdown]
# ### 2.4 Which is more faithful?
# Deletion (remove the most important pixels first, the mean colour in their place: lower is
# better) and insertion (from a blurred copy: higher is better), from Assignment 4, for Grad-CAM,
# the Shapley values painted onto their regions, and a random map.

# %% [code] id=fig_shapley_faithfulness
steps = 4 if GRADING else 16
blurred = evaluation.blurred_baseline(CAT_AND_DOG)
rows = []
for animal, result in list(comparison.items())[:1 if GRADING else None]:  # the cat only while grading
    saliencies = {"Grad-CAM": result["cam"], "Shapley": evaluation.paint_regions(result["phi"], regions),
                  "random": evaluation.random_saliency_maps(CAT_AND_DOG, seed=0)}
    for method, saliency in saliencies.items():
        deletion = deletion_curve(alexnet, CAT_AND_DOG, saliency, [result["category"]], steps=steps, baseline=0.0)
        insertion = insertion_curve(alexnet, CAT_AND_DOG, saliency, [result["category"]], steps=steps,
                                    baseline=blurred)
        rows.append({"method": f"{method} ({animal})", "deletion_auc": float(area_under_curve(deletion)[0]),
                     "insertion_auc": float(area_under_curve(insertion)[0])})
print(evaluation.format_table(rows))
names = [row["method"] for row in rows]
positions = np.arange(len(rows))
fig, ax = plt.subplots(figsize=(10, 3.5), layout="constrained")
ax.bar(positions - 0.2, [row["deletion_auc"] for row in rows], 0.4, label="deletion AUC (lower is better)")
ax.bar(positions + 0.2, [row["insertion_auc"] for row in rows], 0.4, label="insertion AUC (higher is better)")
ax.set_xticks(positions)
ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
ax.set_title(f"Faithfulness on the cat-and-dog photo (AlexNet, {steps} steps)")
viz.legend_outside(ax)
ax.grid(axis="y", alpha=0.3)
viz.stamp_standin(fig)
plt.show()

# %% [markdown]
# **Question 2.5 (3 points, needs the real networks).** Compare Shapley values and Grad-CAM on this photo: how well do
# they agree (the rank correlation), which is more faithful by deletion and insertion, and what
# did each cost? Name one property the Shapley values have that Grad-CAM's map does not, and
# two choices that change the Shapley values although the model did not change.

# %% [answer] id=q_shapley_vs_gradcam points=3
# (With the ImageNet weights, 5x5 or 7x7 regions, 16 or 32 orders:) the two broadly agree on which regions
# matter for each class (a clearly positive Spearman correlation, typically 0.4-0.8; the cat's
# and the dog's Shapley maps put their largest positive values on their own animal), but Shapley
# values are signed: regions holding the other animal often get negative values (evidence
# against the class), which Grad-CAM's ReLU and min-max scaling hide. By deletion and insertion
# the Shapley map usually does at least as well as Grad-CAM (it is built from exactly such
# region removals), both beat the random map; with few images and steps the differences are not
# reliable. Cost: Grad-CAM needs one forward and one backward pass (1 image, a fraction of a
# second); Shapley sampling needs n_permutations * (R + 1) forward passes (16 * 26 = 416 images,
# the seconds the cell printed), and exactly 2^R coalitions would be out of reach (2^25, 2^49). Properties:
# efficiency (the values add up to f(x) - f(baseline), in logit units), symmetry, dummy,
# linearity; Grad-CAM's map is relative and unitless. Choices that change them: the baseline
# (mean colour, black, blur), the regions (grid size, superpixels), the score (logit or
# probability), and the sampling noise (n_permutations, seed).
# RUBRIC: 1 point: agreement by the rank correlation, and which is more faithful by deletion and
#   insertion
# RUBRIC: 1 point: the cost of each (one backward pass vs many forward passes)
# RUBRIC: 1 point: a Shapley property Grad-CAM lacks (efficiency, signed values) and two choices
#   that change the values (baseline, regions, orders)

# %% [markdown]
# ## Handing in
# 1. *Kernel > Restart & Run All*; check that every cell ran without an error.
# 2. Save, and hand in this notebook file (`05_imagenet.ipynb`) only, with its name unchanged.
