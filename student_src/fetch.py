"""Download the model and the data the assignments use: ``python -m student_src.fetch``.

    python -m student_src.fetch                 # hub checkpoint + CIFAR-10 test split into data/
    python -m student_src.fetch --hf NAME       # also a transformers classifier into the HF cache
    python -m student_src.fetch --imagenet      # also torchvision's AlexNet and VGG-16 and the photos (A5)
    python -m student_src.fetch --standin       # offline: untrained stand-ins under data/standin/

The checkpoint comes from the Hugging Face hub with ``huggingface_hub.hf_hub_download``
(repo ``edadaltocg/resnet18_cifar10``, file ``pytorch_model.bin``, about 45 MB); the test split
from the CIFAR-10 site through ``torchvision.datasets.CIFAR10`` (about 170 MB archive, md5
checked). Both are skipped when already present. ``--imagenet`` adds torchvision's ImageNet
weights of AlexNet and VGG-16 (torchvision's addresses, hash-checked, about 760 MB) and three
photos (SHA-256 checked); see ``student_src.imagenet``. The stand-in needs no network: a
random-init checkpoint in the same file format, synthetic images in CIFAR's on-disk format, and
generated photos as JPEG files (the ImageNet stand-in networks are random-init, built in memory).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from student_src import assets, data, imagenet, models

STANDIN_IMAGES = 500


def fetch_model(root: Path) -> Path:
    """Download the hub checkpoint into ``root/models/resnet18_cifar10`` and check it loads strictly."""
    from huggingface_hub import hf_hub_download

    target = root / "models" / "resnet18_cifar10"
    path = Path(hf_hub_download(models.HUB_REPO_ID, models.HUB_FILENAME, local_dir=target))
    models.load_checkpoint(models.build_cifar_resnet18(), path)
    return path


def fetch_data(root: Path) -> Path:
    """Download and extract the CIFAR-10 test split into ``root`` (torchvision checks the md5)."""
    from torchvision.datasets import CIFAR10

    CIFAR10(str(root), train=False, download=True)
    data.read_cifar_batch(root / data.BATCH_FOLDER)
    return root / data.BATCH_FOLDER


def fetch_hf(name: str) -> None:
    """Put a transformers image classifier (weights and image processor) into the local HF cache."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    AutoModelForImageClassification.from_pretrained(name)
    AutoImageProcessor.from_pretrained(name)


def make_standin(root: Path, n_images: int = STANDIN_IMAGES) -> Path:
    """Write the untrained stand-ins under ``root``: random checkpoint and synthetic images."""
    models.write_standin_checkpoint(root / "models" / "resnet18_cifar10" / models.HUB_FILENAME)
    images, labels = data.synthetic_images(n_images)
    data.write_cifar_batch(root, images, labels)
    imagenet.write_standin_photos(root)
    return root


def ensure_standin() -> Path:
    """The stand-in directory, with whatever of the stand-ins is missing written (an older stand-in
    directory gets the generated photos it lacks)."""
    root = assets.asset_root(standin=True)
    if not models.checkpoint_path(standin=True).is_file():
        make_standin(root)
    elif not all(imagenet.photo_path(name, standin=True).is_file() for name in imagenet.PHOTOS):
        imagenet.write_standin_photos(root)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m student_src.fetch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--standin", action="store_true",
                        help="write untrained stand-ins (no network) under <data>/standin")
    parser.add_argument("--hf", metavar="NAME", help="also fetch this transformers image classifier")
    parser.add_argument("--imagenet", action="store_true",
                        help="also fetch torchvision's AlexNet and VGG-16 (ImageNet weights) and the photos")
    parser.add_argument("--skip-model", action="store_true", help="do not fetch the hub checkpoint")
    parser.add_argument("--skip-data", action="store_true", help="do not fetch CIFAR-10")
    args = parser.parse_args(argv)

    if args.standin:
        root = make_standin(assets.asset_root(standin=True))
        print(f"Stand-in model and {STANDIN_IMAGES} synthetic images written to {root}.")
        print(f"They are untrained: use them with {assets.STANDIN_ENV}=1, never as real results.")
        return 0

    root = assets.data_dir()
    root.mkdir(parents=True, exist_ok=True)
    steps = []
    if not args.skip_model:
        steps.append(("hub checkpoint " + models.HUB_REPO_ID, lambda: fetch_model(root)))
    if not args.skip_data:
        steps.append(("CIFAR-10 test split", lambda: fetch_data(root)))
    if args.imagenet:
        for name in ("alexnet", "vgg16"):
            steps.append((f"torchvision {name} ImageNet weights", lambda name=name: imagenet.fetch_weights(name, root)))
        for name in imagenet.PHOTOS:
            steps.append((f"photo {name!r}", lambda name=name: imagenet.fetch_photo(name, root)))
    if args.hf:
        steps.append(("transformers model " + args.hf, lambda: fetch_hf(args.hf)))
    for what, step in steps:
        print(f"Fetching the {what} ...", flush=True)
        try:
            where = step()
        except Exception as error:  # network errors come in many types; all end the same way
            print(f"Could not fetch the {what}: {type(error).__name__}: {error}\n"
                  "Check the network connection (the hub, the CIFAR-10 site, download.pytorch.org and"
                  " raw.githubusercontent.com must be reachable),"
                  f" then run {assets.FETCH_COMMAND} again. Offline, {assets.STANDIN_FETCH_COMMAND}"
                  " makes untrained stand-ins for trying the kit out.", file=sys.stderr)
            return 1
        print(f"  ok{': ' + str(where) if where else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
