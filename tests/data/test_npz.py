"""data=npz: your own images from one .npz file, checked array by array, trained on by both networks."""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from autoencoders.data import ImageDataModule
from autoencoders.data.npz import load_npz
from autoencoders.errors import ConfigError, DataUnavailable
from autoencoders.rundir.record import read_record
from autoencoders.training.pipeline import train
from tests.conftest import FAST
from tests.helpers import read_events

SIDE, CLASSES = 32, 4


def colour_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n colour 32×32 images (N×H×W×C, floats in [0, 1]): class k is a square of its own colour
    in its own corner, on noise, so codes carry the class."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    images = rng.random((n, SIDE, SIDE, 3)) * 0.2
    colours = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=float)
    for index, label in enumerate(labels):
        top, left = 16 * (label // 2), 16 * (label % 2)
        images[index, top : top + 16, left : left + 16] = 0.2 + 0.8 * colours[label]
    return images.astype(np.float32), labels


def save(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_colour_floats_with_labels_hold_out_test_size_by_split_seed(tmp_path):
    images, labels = colour_images(40)
    path = save(tmp_path / "colour.npz", images=images, labels=labels)
    image_set = load_npz(path, test_size=10, split_seed=3)
    assert image_set.train_images.shape == (30, 3, SIDE, SIDE) and image_set.test_images.shape == (10, 3, SIDE, SIDE)
    assert image_set.train_images.dtype == torch.float32 and image_set.class_names == ["0", "1", "2", "3"]
    assert image_set.source == f"npz file {path}"
    # Every image once, with its own label, channels moved first.
    order = torch.randperm(40, generator=torch.Generator().manual_seed(3))
    assert torch.equal(image_set.test_images, torch.from_numpy(images[order[:10].numpy()]).permute(0, 3, 1, 2))
    assert torch.equal(image_set.train_labels, torch.from_numpy(labels[order[10:].numpy()]))
    assert load_npz(path, test_size=10, split_seed=3).test_labels.tolist() == image_set.test_labels.tolist()
    assert load_npz(path, test_size=10, split_seed=4).test_labels.tolist() != image_set.test_labels.tolist()


def test_grey_uint8_with_its_own_test_set_and_no_labels(tmp_path):
    rng = np.random.default_rng(0)
    train_images, test_images = (rng.integers(0, 256, (n, 12, 20), dtype=np.uint8) for n in (30, 7))
    path = save(tmp_path / "grey.npz", images=train_images, test_images=test_images)
    datamodule = ImageDataModule(name="npz", path=str(path), val_size=5, test_size=999)  # a test set: test_size unused
    datamodule.setup()
    assert datamodule.input_shape == (1, 12, 20) and datamodule.sizes == {"train": 25, "val": 5, "test": 7}
    assert torch.equal(datamodule.pixels("test")[0], torch.from_numpy(test_images).unsqueeze(1).float() / 255)
    assert not datamodule.has_labels and datamodule.class_names == []
    assert datamodule.test_set.tensors[1].tolist() == [-1] * 7
    assert datamodule.describe() == {
        "name": "npz",
        "source": f"npz file {path}",
        "note": "no labels",
        "train": 25,
        "val": 5,
        "test": 7,
    }


GOOD, LABELS = colour_images(8)[0], colour_images(8)[1]


@pytest.mark.parametrize(
    "arrays, message",
    [
        (
            {"images": np.where(np.arange(GOOD.size).reshape(GOOD.shape) == 5, np.nan, GOOD)},
            r"array 'images' has 1 values that are NaN or infinite",
        ),
        ({"images": GOOD * 255}, r"array 'images' has floats from 0.* to 255; float pixels must lie in \[0, 1\]"),
        ({"images": GOOD, "labels": LABELS[:5]}, r"array 'labels' has 5 labels for 8 images in 'images'"),
        ({"images": GOOD[..., 0].reshape(8, -1)}, r"array 'images' has shape \(8, 1024\); images are N×H×W"),
        ({"images": GOOD.transpose(0, 3, 1, 2)}, r"array 'images' has shape \(8, 3, 32, 32\).*move the channels last"),
        ({"images": (GOOD * 255).astype(np.int64)}, r"array 'images' has type int64; pixels are uint8"),
        ({"images": GOOD, "labels": LABELS - 2}, r"array 'labels' has negative values"),
        ({"images": GOOD, "labels": LABELS.astype(float)}, r"array 'labels' has shape \(8,\) and type float64"),
        ({"images": GOOD, "label": LABELS}, r"has unknown arrays label; its arrays are images, label"),
        ({"pictures": GOOD}, r"has no array named 'images' and unknown arrays pictures"),
        ({"images": GOOD, "labels": LABELS, "test_images": GOOD}, r"has 'labels' but no 'test_labels'"),
        ({"images": GOOD, "test_images": GOOD[:, :16]}, r"'test_images' are 16×32×3 but 'images' are 32×32×3"),
        ({"images": GOOD, "test_labels": LABELS}, r"has 'test_labels' but no 'test_images'"),
        ({"images": GOOD}, r"has 8 images and no 'test_images'.*between 1 and 7, got 8"),
    ],
)
def test_bad_arrays_are_one_paragraph_naming_the_file_and_array(tmp_path, arrays, message):
    path = save(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataUnavailable, match=message) as caught:
        load_npz(path, test_size=8, split_seed=0)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


def test_unreadable_files_say_how_to_save_one(tmp_path):
    with pytest.raises(DataUnavailable, match="is not a file"):
        load_npz(tmp_path / "missing.npz", 1, 0)
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(DataUnavailable, match=r"text.npz is not an npz file: data=npz reads .*np\.savez") as caught:
        load_npz(tmp_path / "text.npz", 1, 0)
    assert "allow_pickle" not in str(caught.value) and "unsafe" not in str(caught.value)  # never that advice
    one = save(tmp_path / "single.npz", images=GOOD[:1])
    with pytest.raises(DataUnavailable, match=r"has 1 image\(s\) and no 'test_images'.*needs at least 2") as caught:
        load_npz(one, 100, 0)
    assert "between 1 and 0" not in str(caught.value)
    np.save(tmp_path / "one.npy", GOOD)
    with pytest.raises(DataUnavailable, match="holds one unnamed array"):
        load_npz(tmp_path / "one.npy", 1, 0)
    path = save(tmp_path / "objects.npz", images=GOOD, labels=np.array([{"class": 1}] * 8, dtype=object))
    with pytest.raises(DataUnavailable, match="array 'labels' cannot be read"):
        load_npz(path, 1, 0)  # never unpickled


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"data=npz needs data.path=<file.npz>"):
        ImageDataModule(name="npz")
    with pytest.raises(ConfigError, match="data.path is read only with data=npz or data=dsprites, not with data=mnist"):
        ImageDataModule(name="mnist", path="x.npz")
    with pytest.raises(ConfigError, match="data.test_size"):
        ImageDataModule(name="npz", path="x.npz", test_size=0)
    path = save(tmp_path / "unlabelled.npz", images=GOOD)
    datamodule = ImageDataModule(name="npz", path=str(path), val_size=2, test_size=2, holdout_class=1)
    with pytest.raises(ConfigError, match="data.holdout_class needs class labels, and npz has none"):
        datamodule.setup()


@pytest.mark.parametrize(
    "net", [["model.net=mlp"], ["model.net=conv"], ["model/net=residual", "model.net.channels=[8,16,16]"]], ids=str
)
def test_every_network_trains_on_colour_32x32_images(compose_cfg, tmp_path, net):
    images, labels = colour_images(96)
    path = save(tmp_path / "colour.npz", images=images, labels=labels)
    cfg = compose_cfg(
        "data=npz",
        f"data.path={path}",
        "data.val_size=16",
        "data.test_size=16",
        "data.batch_size=16",
        *FAST,
        *net,
        "model.latent_dim=4",
        "logging.n_images=4",
    )
    metrics = train(cfg, run_dir=tmp_path / "run")
    record = read_record(tmp_path / "run")
    assert record["status"] == "completed" and record["data"]["source"] == f"npz file {path}"
    assert (record["data"]["train"], record["data"]["val"], record["data"]["test"]) == (64, 16, 16)
    assert math.isfinite(metrics["test/mse"]) and 0 <= metrics["test/probe_acc"] <= 1  # labels: the probe runs
    # The first tile of the reconstructions grid is the first validation image, in colour.
    first = ImageDataModule(name="npz", path=str(path), val_size=16, test_size=16)
    first.setup()
    expected = first.pixels("val")[0][0].permute(1, 2, 0).numpy() * 255
    for image in read_events(tmp_path / "run").Images("images/reconstructions"):
        tile = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)).convert("RGB"))[2 : 2 + SIDE, 2 : 2 + SIDE]
        assert np.abs(tile.astype(float) - expected).max() <= 1


def test_without_labels_the_class_views_and_probe_say_so_once_and_are_skipped(compose_cfg, tmp_path, caplog):
    path = save(tmp_path / "unlabelled.npz", images=colour_images(64)[0])
    cfg = compose_cfg(
        "data=npz",
        f"data.path={path}",
        "data.val_size=16",
        "data.test_size=16",
        "data.batch_size=16",
        *FAST,
        "trainer.max_epochs=2",
        "logging.latents_every_n_epochs=1",
        "model.latent_dim=4",
    )
    caplog.set_level(logging.INFO)
    metrics = train(cfg, run_dir=tmp_path)
    assert "test/probe_acc" not in metrics and math.isfinite(metrics["test/mse"])
    messages = [record.getMessage() for record in caplog.records if "no class labels" in record.getMessage()]
    assert len(messages) == 2  # the latent views (drawn 3 times) and the probe, each once
    assert any("latent/scatter is skipped" in message for message in messages)
    assert any("linear probe (eval.probe) is skipped" in message for message in messages)
    tags = read_events(tmp_path).Tags()["images"]
    assert "latent/scatter" not in tags and {"images/interpolation", "images/traversal"} <= set(tags)
    assert read_record(tmp_path)["data"]["note"] == "no labels"
    assert not list(tmp_path.rglob("metadata.tsv")) and list(tmp_path.rglob("tensors.tsv"))  # codes, no class names


def test_the_conv_net_on_sides_not_divisible_by_4_is_one_clear_error(compose_cfg, tmp_path):
    path = save(tmp_path / "odd.npz", images=np.zeros((40, 30, 30), dtype=np.uint8))
    cfg = compose_cfg("data=npz", f"data.path={path}", "data.val_size=8", "data.test_size=8", *FAST, "model=conv")
    with pytest.raises(ConfigError) as caught:  # ae-train shows a ConfigError as its message alone
        train(cfg, run_dir=tmp_path / "run")
    assert (
        str(caught.value)
        == "The conv network needs image sides divisible by 4 (stride 2, 2 stages), got 30x30; use model/net=mlp "
        "for this data, or fewer stages."
    )
    assert read_record(tmp_path / "run")["status"] == "failed"
