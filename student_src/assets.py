"""Where the kit keeps downloaded files, and the one error it raises when they are missing.

Layout of the asset directory (default ``data/`` in a checkout of the kit)::

    data/
        cifar-10-batches-py/          CIFAR-10 (python pickle format), from torchvision
        models/resnet18_cifar10/pytorch_model.bin   hub checkpoint (torch pickle)
        standin/                      the same layout, untrained stand-ins (only on request)

Resolution order of the directory:

1. ``$XAI_KIT_DATA_DIR`` if it is set;
2. ``<checkout>/data`` when ``student_src`` is imported from a checkout of the kit;
3. ``~/.cache/xai-kit`` otherwise (for example after ``pip install`` on Colab).

Stand-in mode (random-init model, synthetic images) is used only when asked for:
``XAI_KIT_STANDIN=1`` in the environment, or ``standin=True`` passed to a loader.
"""

from __future__ import annotations

import os
from pathlib import Path

FETCH_COMMAND = "python -m student_src.fetch"
STANDIN_FETCH_COMMAND = "python -m student_src.fetch --standin"
STANDIN_ENV = "XAI_KIT_STANDIN"
DATA_DIR_ENV = "XAI_KIT_DATA_DIR"

#: Text stamped on every figure made while the stand-in is in use.
STANDIN_BANNER = "UNTRAINED STAND-IN (random weights, synthetic images): not real results"


class MissingAssetError(FileNotFoundError):
    """A model checkpoint or dataset file the kit needs is not on disk.

    The message always names the command that fetches it.
    """


def data_dir() -> Path:
    """The asset directory (see the module docstring for how it is chosen)."""
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "data").is_dir():
        return checkout / "data"
    return Path.home() / ".cache" / "xai-kit"


def standin_requested(standin: bool | None = None) -> bool:
    """True when the untrained stand-in was explicitly requested.

    ``standin`` wins when given; otherwise ``$XAI_KIT_STANDIN`` decides
    (``1``, ``true``, ``yes`` or ``on`` turn it on).
    """
    if standin is not None:
        return bool(standin)
    return os.environ.get(STANDIN_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def asset_root(standin: bool | None = None) -> Path:
    """``data_dir()`` for the real assets, ``data_dir()/standin`` for the stand-in."""
    root = data_dir()
    return root / "standin" if standin_requested(standin) else root


def missing(what: str, path: Path, standin: bool | None = None) -> MissingAssetError:
    """Build the one clear error for a missing asset, naming the fetch command."""
    command = STANDIN_FETCH_COMMAND if standin_requested(standin) else FETCH_COMMAND
    return MissingAssetError(
        f"{what} not found at {path}. Fetch it with:\n    {command}\n"
        f"(asset directory: {data_dir()}; set ${DATA_DIR_ENV} to use another one)"
    )


_standin_used = False


def note_standin_used() -> None:
    """Record that a stand-in model or dataset was loaded in this process."""
    global _standin_used
    _standin_used = True


def standin_active() -> bool:
    """True when this process uses a stand-in (loaded one, or asked for it by the environment)."""
    return _standin_used or standin_requested()
