"""Assignment 5's data path, offline: torchvision's downloader and the photo downloads replaced by local
copies in the real formats (a state_dict file named as torchvision names it, PNG/JPEG bytes)."""

from __future__ import annotations

import hashlib
import io
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from student_src import assets, fetch, imagenet, library_cams, models, session


def _png_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(imagenet.synthetic_photo(seed, size=300)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture()
def real_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("XAI_KIT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("XAI_KIT_STANDIN", raising=False)
    return tmp_path


def test_fetch_imagenet_downloads_weights_and_checked_photos(real_mode, monkeypatch):
    """`fetch --imagenet` asks torchvision's downloader for torchvision's addresses (hash check on) into
    the kit's folder, and downloads each photo once: kept only with the listed SHA-256, then cached."""
    import torch.hub

    weight_calls, photo_calls = [], []

    def fake_load_state_dict_from_url(url, model_dir, progress, check_hash, map_location, weights_only):
        weight_calls.append((url, model_dir, check_hash))
        return {}

    photos = {name: _png_bytes(seed) for seed, name in enumerate(imagenet.PHOTOS)}
    by_url = {imagenet.PHOTOS[name][0]: content for name, content in photos.items()}

    def fake_urlopen(url, timeout):
        photo_calls.append(url)
        return io.BytesIO(by_url[url])

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_load_state_dict_from_url)
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setattr(imagenet, "PHOTOS", {name: (url, hashlib.sha256(photos[name]).hexdigest())
                                             for name, (url, _) in imagenet.PHOTOS.items()})
    assert fetch.main(["--skip-model", "--skip-data", "--imagenet"]) == 0
    folder = str(real_mode / "models" / "torchvision")
    assert weight_calls == [("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", folder, True),
                            ("https://download.pytorch.org/models/vgg16-397923af.pth", folder, True)]
    assert len(photo_calls) == 3
    batch = imagenet.load_photos(("both", "cat", "dog"))
    assert batch.shape == (3, 3, 224, 224)
    assert fetch.main(["--skip-model", "--skip-data", "--imagenet"]) == 0
    assert len(photo_calls) == 3, "a photo with the right checksum is not downloaded again"


def test_a_photo_with_the_wrong_checksum_is_refused(real_mode, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"<html>not found</html>"))
    with pytest.raises(ValueError, match="SHA-256"):
        imagenet.fetch_photo("both", real_mode)
    assert not list((real_mode / imagenet.PHOTO_FOLDER).iterdir()), "nothing is left behind"


def test_the_weights_file_loads_strictly_as_torchvision_writes_it(real_mode):
    """A random-init AlexNet state_dict saved under torchvision's file name loads into alexnet()."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        saved = imagenet.build("alexnet")
    path = imagenet.weights_path("alexnet")
    path.parent.mkdir(parents=True)
    torch.save(saved.state_dict(), path)
    loaded = imagenet.load_model("alexnet", device="cpu")
    assert not models.is_standin(loaded) and not loaded.training
    assert torch.equal(loaded.features[10].weight, saved.features[10].weight)
    path.write_bytes(b"<html>truncated</html>")
    with pytest.raises(assets.MissingAssetError, match="fetch --imagenet"):
        imagenet.load_model("alexnet", device="cpu")


def test_offline_everything_stops_with_the_fetch_command(real_mode):
    for load in (lambda: imagenet.load_model("vgg16"), lambda: imagenet.load_photos(("both",)),
                 imagenet.require_assets, session.start_imagenet):
        with pytest.raises(assets.MissingAssetError, match=r"python -m student_src.fetch --imagenet"):
            load()


def test_standin_networks_and_photos(tmp_path, monkeypatch):
    """fetch --standin writes the photos as JPEG files; the networks are seeded random-init, marked."""
    monkeypatch.setenv("XAI_KIT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("XAI_KIT_STANDIN", "1")
    fetch.ensure_standin()
    with Image.open(imagenet.photo_path("both")) as photo:
        assert photo.format == "JPEG" and photo.size == (224, 224)
    alexnet, vgg16, photos = session.start_imagenet(with_vgg=False)
    assert vgg16 is None and models.is_standin(alexnet) and assets.standin_active()
    assert photos.shape == (3, 3, 224, 224) and torch.isfinite(photos).all()
    again = imagenet.load_model("alexnet", device="cpu")
    assert torch.equal(again.features[0].weight, alexnet.features[0].weight.cpu()), "the stand-in is seeded"
    image = imagenet.denormalize(photos[0])
    assert image.shape == (224, 224, 3) and 0 <= image.min() and image.max() <= 1
    assert np.abs(imagenet.normalize((image * 255).round().astype(np.uint8)) - photos[0].cpu()).max() < 0.03


def test_the_last_maps_are_13x13_and_14x14_and_the_names_are_imagenets():
    shapes = {}
    for name, layer, size in (("alexnet", "features.10", 13), ("vgg16", "features.28", 14)):
        model = imagenet.skeleton(name)
        handle = model.get_submodule(layer).register_forward_hook(
            lambda module, inputs, output, name=name: shapes.__setitem__(name, tuple(output.shape)))
        model(torch.empty(1, 3, 224, 224, device="meta"))
        handle.remove()
        assert shapes[name][-2:] == (size, size)
    names = imagenet.categories()
    assert len(names) == 1000 and names[imagenet.TABBY_CAT] == "tabby" and names[imagenet.BULL_MASTIFF] == "bull mastiff"


def test_inplace_relus_off_makes_the_library_read_the_layer_itself():
    """On a CPU pytorch-grad-cam at AlexNet's features.10 mixes the in-place ReLU's output with the
    gradient before it; with the ReLUs switched off it agrees with the reference, and the flags return."""
    from solutions.gradcam import grad_cam
    from student_src.probe_models import alexnet_shaped

    model = alexnet_shaped()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    expected = grad_cam(model, "features.10", x, [1, 4])
    with library_cams.inplace_relus_off(model):
        fixed = library_cams.library_grad_cam(model, "features.10", x, [1, 4])
    assert all(m.inplace for m in model.modules() if isinstance(m, torch.nn.ReLU))
    assert (fixed - expected).abs().max() < 1e-5
