"""The models the assignments explain.

Default: the CIFAR-10 ResNet-18 ``edadaltocg/resnet18_cifar10`` from the Hugging Face hub
(MIT licence, reported test accuracy 94.98%). It is a timm ResNet-18 with a CIFAR stem, and its
state dict loads *strictly* into torchvision's ``resnet18(num_classes=10)`` once the stem is
changed: ``conv1`` becomes a 3x3 stride-1 convolution and the max-pool is removed. For a
(B, 3, 32, 32) input the stages give feature maps of

    layer1 (B, 64, 32, 32)   layer2 (B, 128, 16, 16)   layer3 (B, 256, 8, 8)   layer4 (B, 512, 4, 4)

then global average pooling and ``fc`` (512 -> 10 logits).

Any ``transformers`` image classifier can be loaded too (:func:`load_hf_classifier`); it is
wrapped so that ``forward`` returns the logits *tensor*: explanation libraries such as
pytorch-grad-cam cannot use the output objects that transformers models return. An
ImageNet-style network (7x7 stride-2 stem + max-pool, total stride 32) turns a 32x32 image
into a 1x1 map at its last stage, where every Grad-CAM is constant; pass ``input_size=224``
to upsample the input first.

Nothing here downloads: ``python -m student_src.fetch`` does. A random-init stand-in is
returned only when explicitly requested, and is marked so every figure can say so.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

from student_src import assets
from student_src.data import MEAN, STD

HUB_REPO_ID = "edadaltocg/resnet18_cifar10"
HUB_FILENAME = "pytorch_model.bin"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Attribute set on every stand-in model, read by :func:`is_standin` and the plots.
STANDIN_ATTRIBUTE = "xai_kit_standin"


def default_device() -> torch.device:
    """``cuda`` when a GPU is available (Colab), otherwise ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_cifar_resnet18(num_classes: int = 10) -> nn.Module:
    """torchvision's ResNet-18 with the CIFAR stem (3x3 stride-1 conv1, no max-pool), random init."""
    model = resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def checkpoint_path(standin: bool | None = None) -> Path:
    """Where ``fetch`` puts the hub checkpoint (or the stand-in's)."""
    return assets.asset_root(standin) / "models" / "resnet18_cifar10" / HUB_FILENAME


def load_checkpoint(model: nn.Module, path: Path) -> nn.Module:
    """Load a ``pytorch_model.bin`` state dict into ``model`` strictly (every key must match)."""
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated download, an HTML error page saved as .bin, ...
        raise assets.MissingAssetError(
            f"The checkpoint at {path} could not be read ({type(error).__name__}: {error}). "
            f"Delete it and fetch it again with:\n    {assets.FETCH_COMMAND}"
        ) from error
    if isinstance(state_dict, dict) and "state_dict" in state_dict:
        state_dict = state_dict["state_dict"]
    model.load_state_dict(state_dict, strict=True)
    return model


def mark_standin(model: nn.Module) -> nn.Module:
    """Flag ``model`` as an untrained stand-in, for :func:`is_standin` and the plots."""
    setattr(model, STANDIN_ATTRIBUTE, True)
    assets.note_standin_used()
    return model


def is_standin(model: nn.Module) -> bool:
    """True when ``model`` is an untrained stand-in rather than the real checkpoint."""
    return bool(getattr(model, STANDIN_ATTRIBUTE, False))


def load_model(
    path: str | Path | None = None,
    standin: bool | None = None,
    device: str | torch.device | None = None,
) -> nn.Module:
    """The CIFAR-10 ResNet-18 in eval mode, its weights loaded strictly.

    Args:
        path: a ``pytorch_model.bin`` to load instead of the fetched one.
        standin: ``True`` loads the untrained stand-in (made by ``fetch --standin``);
            ``None`` follows ``$XAI_KIT_STANDIN``.
        device: where to put the model; default: GPU if there is one, else CPU.

    Raises:
        MissingAssetError: the checkpoint is not on disk (the message names the fetch command).
    """
    use_standin = path is None and assets.standin_requested(standin)
    checkpoint = Path(path) if path is not None else checkpoint_path(use_standin)
    if not checkpoint.is_file():
        raise assets.missing("The CIFAR-10 ResNet-18 checkpoint", checkpoint, use_standin)
    model = load_checkpoint(build_cifar_resnet18(), checkpoint)
    if use_standin:
        mark_standin(model)
    return model.to(device or default_device()).eval()


def write_standin_checkpoint(path: Path, seed: int = 0) -> Path:
    """Save a random-init CIFAR ResNet-18 as ``pytorch_model.bin`` (same format as the hub file)."""
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(build_cifar_resnet18().state_dict(), path)
    return path


class HFLogitsClassifier(nn.Module):
    """A ``transformers`` image classifier whose ``forward(x)`` returns the logits tensor.

    Input: a (B, 3, H, W) batch normalised like the kit's CIFAR-10 batches (``data.MEAN``,
    ``data.STD``). The wrapper undoes that normalisation, applies the model's own
    (``model_mean``, ``model_std``), optionally resizes to ``input_size`` (bilinear), and
    returns ``model(pixel_values=...).logits`` of shape (B, num_labels).

    The wrapped model is ``self.model``: target layers are its submodules, for example
    ``model.get_submodule("model.resnet.encoder.stages.3")`` for a transformers ResNet.
    """

    def __init__(
        self,
        hf_model: nn.Module,
        model_mean=IMAGENET_MEAN,
        model_std=IMAGENET_STD,
        input_size: int | None = None,
    ):
        super().__init__()
        self.model = hf_model
        self.input_size = input_size
        self.register_buffer("kit_mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("kit_std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("model_mean", torch.tensor(model_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("model_std", torch.tensor(model_std).view(1, 3, 1, 1), persistent=False)
        id2label = getattr(getattr(hf_model, "config", None), "id2label", None) or {}
        self.class_names = [id2label[i] for i in sorted(id2label)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = (x * self.kit_std + self.kit_mean - self.model_mean) / self.model_std
        if self.input_size is not None:
            size = (self.input_size, self.input_size)
            pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False)
        return self.model(pixel_values=pixels).logits


def standin_hf_resnet(num_labels: int = 10) -> nn.Module:
    """A small random-init ``transformers`` ResNet-18 (basic blocks, ImageNet stem)."""
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    config = ResNetConfig(
        layer_type="basic", depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512],
        embedding_size=64, num_labels=num_labels,
        id2label={i: f"class_{i}" for i in range(num_labels)},
        label2id={f"class_{i}": i for i in range(num_labels)},
    )
    return ResNetForImageClassification(config)


def load_hf_classifier(
    name_or_path: str = "microsoft/resnet-18",
    input_size: int | None = None,
    standin: bool | None = None,
    device: str | torch.device | None = None,
) -> HFLogitsClassifier:
    """Any ``transformers`` image classifier, wrapped by :class:`HFLogitsClassifier`, in eval mode.

    Reads only local files: a saved directory, or a hub name already in the cache
    (``python -m student_src.fetch --hf NAME`` puts it there). The normalisation comes from
    the model's saved image processor when there is one, ImageNet's otherwise.
    With the stand-in requested, a random-init transformers ResNet-18 is returned instead.
    """
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    if assets.standin_requested(standin):
        wrapped = HFLogitsClassifier(standin_hf_resnet(), input_size=input_size)
        mark_standin(wrapped)
        return wrapped.to(device or default_device()).eval()
    try:
        hf_model = AutoModelForImageClassification.from_pretrained(name_or_path, local_files_only=True)
    except OSError as error:
        raise assets.MissingAssetError(
            f"The transformers model {name_or_path!r} is not available offline ({error}). Fetch it with:\n"
            f"    {assets.FETCH_COMMAND} --hf {name_or_path}"
        ) from error
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    try:
        processor = AutoImageProcessor.from_pretrained(name_or_path, local_files_only=True)
        mean, std = tuple(processor.image_mean), tuple(processor.image_std)
    except (OSError, ValueError, AttributeError, TypeError):
        pass  # no saved processor: ImageNet statistics, the convention of hub vision models
    wrapped = HFLogitsClassifier(hf_model, model_mean=mean, model_std=std, input_size=input_size)
    return wrapped.to(device or default_device()).eval()
