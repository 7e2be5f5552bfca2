"""torchvision's ImageNet classics (AlexNet, VGG-16) and the photos Assignment 5 explains.

``python -m student_src.fetch --imagenet`` downloads, into the kit's asset directory::

    data/models/torchvision/alexnet-owt-7be5be79.pth   AlexNet, ImageNet weights (about 233 MB)
    data/models/torchvision/vgg16-397923af.pth         VGG-16, ImageNet weights (about 528 MB)
    data/imagenet_photos/both.png, cat.jpg, dog.jpg    the photos (224x224 RGB)

The weights come from torchvision's own addresses (``AlexNet_Weights.IMAGENET1K_V1.url`` ...)
through ``torch.hub.load_state_dict_from_url(check_hash=True)``, which checks the SHA-256 prefix
in the file name. The photos come from the pytorch-grad-cam repository at a fixed commit, each
checked against the SHA-256 listed in :data:`PHOTOS`. The 1000 class names are torchvision's
(``weights.meta["categories"]``), installed with torchvision: nothing to download.

Inputs are 224x224 RGB images normalised with ImageNet's statistics
(``x = (pixel / 255 - IMAGENET_MEAN) / IMAGENET_STD``). For such an input AlexNet's last
convolution ``features.10`` gives a (256, 13, 13) map and VGG-16's ``features.28`` (512, 14, 14).

Offline, the loaders raise ``MissingAssetError`` naming the fetch command; the stand-in
(``XAI_KIT_STANDIN=1``, or ``standin=True``) is a seeded random-init network of the same
architecture and generated photos written as real JPEG files by ``fetch --standin``, marked so
every figure says so.
"""

from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

import numpy as np
import torch
from torch import nn

from student_src import assets
from student_src.models import IMAGENET_MEAN, IMAGENET_STD, default_device, mark_standin

FETCH_IMAGENET_COMMAND = f"{assets.FETCH_COMMAND} --imagenet"
IMAGE_SIZE = 224
PHOTO_FOLDER = "imagenet_photos"
WEIGHTS_FOLDER = Path("models") / "torchvision"
#: ImageNet class indices of the cat-and-dog photo's two animals (torchvision's ``categories``).
TABBY_CAT, BULL_MASTIFF = 281, 243
#: ImageNet's cat classes (tabby ... Egyptian cat) and dog classes (Chihuahua ... Mexican hairless).
CAT_CLASSES = range(281, 286)
DOG_CLASSES = range(151, 269)

_SOURCE = "https://raw.githubusercontent.com/jacobgil/pytorch-grad-cam"
#: name -> (address, SHA-256 of the file). Fixed commits of the pytorch-grad-cam repository (MIT).
PHOTOS = {
    "both": (f"{_SOURCE}/5cc686337b628aa2c8d6b76284546c967d500e4d/examples/both.png",
             "8d30785a513e22a2f574c839c7e1751db943d0b5399347e7bb37736f6c5a95c2"),
    "cat": (f"{_SOURCE}/51536659d6bab8f6d06ff081f7a1d3e932656954/examples/cat.jpg",
            "05ef5bb149ff3e9af318b2bbb17e28591465a66570e2f601d8bfd5cab41581b4"),
    "dog": (f"{_SOURCE}/51536659d6bab8f6d06ff081f7a1d3e932656954/examples/dog.jpg",
            "d9dec91812c1dc80867d5a4a871a2cb2e0ee77479bbb0435da6d0b7de38d8d9b"),
}


def _weights(name: str):
    from torchvision.models import AlexNet_Weights, VGG16_Weights

    known = {"alexnet": AlexNet_Weights.IMAGENET1K_V1, "vgg16": VGG16_Weights.IMAGENET1K_V1}
    if name not in known:
        raise ValueError(f"unknown ImageNet model {name!r}; one of {', '.join(known)}")
    return known[name]


def build(name: str) -> nn.Module:
    """torchvision's ``alexnet()`` or ``vgg16()``, random init (1000 classes)."""
    from torchvision.models import alexnet, vgg16

    _weights(name)  # the error for an unknown name
    return {"alexnet": alexnet, "vgg16": vgg16}[name]()


def skeleton(name: str) -> nn.Module:
    """A network's modules on PyTorch's ``meta`` device: names and output shapes, no memory, no weights.

    ``name``: ``"alexnet"``, ``"vgg16"`` or ``"cifar_resnet18"`` (the kit's CIFAR ResNet-18). Feed it
    ``torch.empty(1, 3, 224, 224, device="meta")`` to get shapes without computing anything.
    """
    from student_src.models import build_cifar_resnet18

    with torch.device("meta"):
        model = build_cifar_resnet18() if name == "cifar_resnet18" else build(name)
    return model.eval()


def categories() -> list[str]:
    """The 1000 ImageNet class names, index = class (torchvision's weights metadata)."""
    return list(_weights("alexnet").meta["categories"])


def weights_path(name: str, standin: bool | None = None) -> Path:
    """Where ``fetch --imagenet`` puts a model's weights: the file name of torchvision's address."""
    return assets.asset_root(standin) / WEIGHTS_FOLDER / _weights(name).url.rsplit("/", 1)[-1]


def photo_path(name: str, standin: bool | None = None) -> Path:
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; one of {', '.join(PHOTOS)}")
    suffix = Path(PHOTOS[name][0]).suffix if not assets.standin_requested(standin) else ".jpg"
    return assets.asset_root(standin) / PHOTO_FOLDER / f"{name}{suffix}"


def _missing(what: str, path: Path, standin: bool) -> assets.MissingAssetError:
    command = assets.STANDIN_FETCH_COMMAND if standin else FETCH_IMAGENET_COMMAND
    return assets.MissingAssetError(
        f"{what} not found at {path}. Fetch it with:\n    {command}\n"
        f"(asset directory: {assets.data_dir()}; set ${assets.DATA_DIR_ENV} to use another one)")


def uses_imagenet(assignment: str) -> bool:
    """Whether an assignment's notebook loads these networks and photos (Assignment 5)."""
    return assignment.startswith("05_")


def real_assets() -> list[tuple[Path, str]]:
    """``(path, what)`` of every file ``fetch --imagenet`` downloads."""
    return ([(weights_path(name, standin=False), f"The ImageNet weights of {name}") for name in ("alexnet", "vgg16")]
            + [(photo_path(name, standin=False), f"The photo {name!r}") for name in PHOTOS])


def require_assets() -> None:
    """Raise ``MissingAssetError`` (naming ``fetch --imagenet``) unless the real weights and photos are on disk."""
    for path, what in real_assets():
        if not path.is_file():
            raise _missing(what, path, standin=False)


def load_model(name: str, standin: bool | None = None, device: str | torch.device | None = None) -> nn.Module:
    """AlexNet (``"alexnet"``) or VGG-16 (``"vgg16"``) with ImageNet weights, eval mode.

    The stand-in (``standin=True`` or ``$XAI_KIT_STANDIN``) is the same architecture, random init
    from a fixed seed, marked as a stand-in. Raises ``MissingAssetError`` (naming the fetch
    command) when the weights are not on disk or cannot be read.
    """
    if assets.standin_requested(standin):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = build(name)
        mark_standin(model)
    else:
        path = weights_path(name, standin=False)
        if not path.is_file():
            raise _missing(f"The ImageNet weights of {name}", path, standin=False)
        try:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # a truncated download, an HTML error page, ...
            raise assets.MissingAssetError(
                f"The weights at {path} could not be read ({type(error).__name__}: {error}). "
                f"Delete the file and fetch it again with:\n    {FETCH_IMAGENET_COMMAND}") from error
        model = build(name)
        model.load_state_dict(state_dict, strict=True)
    return model.to(device or default_device()).eval()


def normalize(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images (N, H, W, 3) or (H, W, 3) -> ImageNet-normalised tensors (N, 3, H, W) / (3, H, W)."""
    pixels = torch.as_tensor(np.asarray(images), dtype=torch.float32).movedim(-1, -3) / 255.0
    return (pixels - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)


def denormalize(x: torch.Tensor) -> np.ndarray:
    """ImageNet-normalised (3, H, W) or (N, 3, H, W) -> float images (H, W, 3) / (N, H, W, 3) in [0, 1]."""
    x = x.detach().float().cpu()
    image = x * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    return image.clamp(0, 1).movedim(-3, -1).numpy()


def read_photo(path: Path, size: int = IMAGE_SIZE) -> np.ndarray:
    """An image file -> uint8 RGB (size, size, 3): shorter side resized to ``size``, centre crop."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = size / min(image.size)
        width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
        image = image.resize((width, height), Image.BILINEAR)
        left, top = (width - size) // 2, (height - size) // 2
        return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


def load_photos(names=("both",), standin: bool | None = None) -> torch.Tensor:
    """The named photos as one normalised batch (N, 3, 224, 224). Raises ``MissingAssetError``."""
    use_standin = assets.standin_requested(standin)
    images = []
    for name in names:
        path = photo_path(name, use_standin)
        if not path.is_file():
            raise _missing(f"The photo {name!r}", path, use_standin)
        images.append(read_photo(path))
    if use_standin:
        assets.note_standin_used()
    return normalize(np.stack(images))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_photo(name: str, root: Path) -> Path:
    """Download one photo into ``root/imagenet_photos`` unless a copy with the right SHA-256 is there."""
    url, sha256 = PHOTOS[name]
    path = root / PHOTO_FOLDER / f"{name}{Path(url).suffix}"
    if path.is_file() and _sha256(path) == sha256:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as file:  # noqa: S310 (fixed https)
        file.write(response.read())
    if _sha256(partial) != sha256:
        partial.unlink()
        raise ValueError(f"{url} does not have the expected SHA-256 {sha256}")
    partial.replace(path)
    return path


def fetch_weights(name: str, root: Path) -> Path:
    """Download a model's torchvision weights into ``root/models/torchvision`` (hash checked)."""
    from torch.hub import load_state_dict_from_url

    folder = root / WEIGHTS_FOLDER
    load_state_dict_from_url(_weights(name).url, model_dir=str(folder), progress=True, check_hash=True,
                             map_location="cpu", weights_only=True)
    return folder / _weights(name).url.rsplit("/", 1)[-1]


def synthetic_photo(seed: int, size: int = IMAGE_SIZE) -> np.ndarray:
    """A seeded stand-in photo (size, size, 3) uint8: a smooth colour field and two bright blobs.

    It only exercises the pipeline (two "animals" to explain); nothing in it is a cat or a dog.
    """
    rng = np.random.default_rng(seed)
    coarse = torch.as_tensor(rng.uniform(0, 255, size=(1, 3, 4, 4)), dtype=torch.float32)
    image = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear",
                                            align_corners=False)[0].permute(1, 2, 0).numpy()
    rows, columns = np.mgrid[0:size, 0:size]
    for centre_row, centre_column in ((0.4, 0.3), (0.6, 0.72)):
        radius = size * rng.uniform(0.12, 0.2)
        blob = (rows - centre_row * size) ** 2 + (columns - centre_column * size) ** 2 < radius ** 2
        image[blob] = rng.uniform(128, 255, size=3)
    return image.clip(0, 255).astype(np.uint8)


def write_standin_photos(root: Path) -> Path:
    """Write the generated stand-in photos as JPEG files under ``root/imagenet_photos``."""
    from PIL import Image

    folder = root / PHOTO_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(PHOTOS):
        Image.fromarray(synthetic_photo(seed)).save(folder / f"{name}.jpg", quality=95)
    return folder
