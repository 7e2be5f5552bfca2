"""The real loaders on checkpoints the tests make in the real formats."""

import pytest
import torch

from student_src import assets, models


def test_hub_format_checkpoint_loads_strictly_with_the_cifar_stem(tmp_path, cifar_batch):
    path = models.write_standin_checkpoint(tmp_path / "pytorch_model.bin", seed=3)
    model = models.load_model(path, device="cpu")
    assert not model.training and not models.is_standin(model)
    expected = models.build_cifar_resnet18()
    expected.load_state_dict(torch.load(path, weights_only=True))
    x, _ = cifar_batch
    assert torch.equal(model(x), expected.eval()(x))
    shapes = {}
    hooks = [getattr(model, name).register_forward_hook(
        lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
        for name in ("layer1", "layer2", "layer3", "layer4")]
    model(x)
    for hook in hooks:
        hook.remove()
    assert shapes == {"layer1": (64, 32, 32), "layer2": (128, 16, 16), "layer3": (256, 8, 8), "layer4": (512, 4, 4)}


def test_a_checkpoint_with_wrong_keys_is_refused(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    from torchvision.models import resnet18

    torch.save(resnet18(num_classes=10).state_dict(), path)  # ImageNet stem: conv1 is 7x7
    with pytest.raises(RuntimeError, match="conv1"):
        models.load_model(path, device="cpu")


def test_a_truncated_download_names_the_fetch_command(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(b"\x80\x02truncated")
    with pytest.raises(assets.MissingAssetError, match="python -m student_src.fetch"):
        models.load_model(path, device="cpu")


def test_missing_checkpoint_fails_with_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("XAI_KIT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("XAI_KIT_STANDIN", raising=False)
    with pytest.raises(assets.MissingAssetError, match=r"python -m student_src\.fetch\n"):
        models.load_model()


def test_standin_only_when_requested_and_marked(standin_assets):
    model = models.load_model(device="cpu")
    assert models.is_standin(model)
    with pytest.raises(assets.MissingAssetError):
        models.load_model(standin=False)


def test_transformers_classifier_returns_a_logits_tensor(tmp_path, cifar_batch):
    from transformers import ResNetConfig, ResNetForImageClassification

    config = ResNetConfig(layer_type="basic", depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 32, 64],
                          embedding_size=8, num_labels=10, id2label={i: f"c{i}" for i in range(10)},
                          label2id={f"c{i}": i for i in range(10)})
    torch.manual_seed(0)
    ResNetForImageClassification(config).save_pretrained(tmp_path / "hf")
    wrapped = models.load_hf_classifier(str(tmp_path / "hf"), device="cpu")
    x, _ = cifar_batch
    logits = wrapped(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (8, 10)
    assert wrapped.class_names == [f"c{i}" for i in range(10)]
    # The wrapper hands the model ImageNet-normalised pixels: check against doing it by hand.
    pixels = x * torch.tensor(models.STD).view(1, 3, 1, 1) + torch.tensor(models.MEAN).view(1, 3, 1, 1)
    pixels = (pixels - torch.tensor(models.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        models.IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(logits, wrapped.model(pixel_values=pixels).logits, atol=1e-5)
    assert models.load_hf_classifier(str(tmp_path / "hf"), input_size=64, device="cpu")(x).shape == (8, 10)


def test_missing_transformers_model_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(assets.MissingAssetError, match="--hf not-a-user/not-a-model"):
        models.load_hf_classifier("not-a-user/not-a-model")


def test_transformers_standin_is_explicit_and_marked(cifar_batch):
    wrapped = models.load_hf_classifier(standin=True, device="cpu")
    assert models.is_standin(wrapped) and wrapped(cifar_batch[0]).shape == (8, 10)
