"""The download code, run offline: the hub and torchvision downloaders are replaced by local copies."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from student_src import data, fetch, models


def test_fetch_downloads_the_hub_checkpoint_and_cifar(tmp_path, monkeypatch):
    source = models.write_standin_checkpoint(tmp_path / "hub" / "pytorch_model.bin")
    calls = []

    def fake_hf_hub_download(repo_id, filename, local_dir):
        calls.append((repo_id, filename))
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        return shutil.copy(source, Path(local_dir) / filename)

    def fake_cifar10(root, train, download):
        assert train is False and download is True
        data.write_cifar_batch(Path(root), *data.synthetic_images(5))

    import huggingface_hub
    import torchvision.datasets

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_hf_hub_download)
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake_cifar10)
    monkeypatch.setenv("XAI_KIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("XAI_KIT_STANDIN", raising=False)
    assert fetch.main([]) == 0
    assert calls == [("edadaltocg/resnet18_cifar10", "pytorch_model.bin")]
    assert not models.is_standin(models.load_model(device="cpu"))
    assert len(data.load_test_set()) == 5


def test_fetch_offline_fails_with_one_clear_message(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "XAI_KIT_DATA_DIR": str(tmp_path), "HF_HUB_OFFLINE": "1",
           "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "student_src.fetch", "--skip-data"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Could not fetch the hub checkpoint" in result.stderr
    assert "python -m student_src.fetch" in result.stderr and "Traceback" not in result.stderr


def test_standin_is_written_in_the_real_formats(tmp_path, monkeypatch):
    monkeypatch.setenv("XAI_KIT_DATA_DIR", str(tmp_path))
    assert fetch.main(["--standin"]) == 0
    assert (tmp_path / "standin" / "models" / "resnet18_cifar10" / "pytorch_model.bin").is_file()
    assert len(data.load_test_set(root=tmp_path / "standin")) == fetch.STANDIN_IMAGES
    with pytest.raises(Exception):
        data.load_test_set(standin=False)
