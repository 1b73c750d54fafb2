"""data=shapes and data=dsprites: images with known factors, generated or read from the published
file, cached, uint8 until the split, with the factors beside each split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autoencoders.data import ImageDataModule
from autoencoders.data.npz import load_npz
from autoencoders.data.shapes import FACTOR_NAMES, factor_sizes, grid_factors, load_dsprites, load_shapes, rasterise
from autoencoders.errors import ConfigError, DataUnavailable

SMALL = {"resolution": 32, "scales": 3, "orientations": 8, "positions": 8}


def test_grid_factors_enumerate_the_grid_with_the_last_factor_fastest():
    sizes = (3, 2, 4)
    levels = grid_factors(torch.arange(24), sizes)
    assert levels[:5].tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 0, 3], [0, 1, 0]]
    assert len({tuple(row) for row in levels.tolist()}) == 24 and levels.max(0).values.tolist() == [2, 1, 3]


def test_the_factors_draw_what_they_say():
    sizes = factor_sizes(6, 40, 32)
    # square, scale 5, angle 0 at the left/top and at the right/bottom: its centre of mass moves with x and y
    images = rasterise(torch.tensor([[0, 5, 0, 0, 0], [0, 5, 0, 31, 0], [0, 5, 0, 0, 31], [0, 0, 0, 0, 0]]), sizes, 64)
    assert images.dtype == torch.uint8 and images.shape == (4, 1, 64, 64) and set(images.unique().tolist()) == {0, 255}
    mass = images[:, 0].float()
    rows, cols = torch.arange(64.0), torch.arange(64.0)
    centre_x = (mass.sum(1) * cols).sum(1) / mass.sum((1, 2))
    centre_y = (mass.sum(2) * rows).sum(1) / mass.sum((1, 2))
    assert centre_x[1] - centre_x[0] == pytest.approx(0.6 * 64, abs=1.5) and centre_y[1] == pytest.approx(centre_y[0])
    assert centre_y[2] - centre_y[0] == pytest.approx(0.6 * 64, abs=1.5)
    # the square's side is 1.6 radii: 0.16 * 1.6 * 64 = 16.4 pixels at scale 1, half that at scale 0.5
    assert int(mass[0].sum() / 255) == pytest.approx(16.4**2, rel=0.15)
    assert int(mass[3].sum() / 255) == pytest.approx(8.2**2, rel=0.25)
    # the ellipse turned by a quarter turn (10 of 40 orientations) is its transpose
    ellipse = rasterise(torch.tensor([[1, 5, 0, 16, 16], [1, 5, 10, 16, 16]]), sizes, 64)[:, 0]
    assert not torch.equal(ellipse[0], ellipse[1]) and (ellipse[0] != ellipse[1].T).float().mean() < 0.01
    assert len({rasterise(torch.tensor([[shape, 5, 3, 9, 9]]), sizes, 64).sum().item() for shape in range(3)}) == 3


def test_shapes_are_deterministic_cached_by_settings_and_uint8(tmp_path):
    first = load_shapes(tmp_path, **SMALL, subsample=200, test_size=50)
    files = sorted((tmp_path / "shapes").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"
    again = load_shapes(tmp_path, **SMALL, subsample=200, test_size=50)  # from the cache
    other = load_shapes(tmp_path, **{**SMALL, "positions": 4}, subsample=200, test_size=50)
    assert len(list((tmp_path / "shapes").iterdir())) == 2  # another setting, another file
    assert torch.equal(first.train_images, again.train_images) and torch.equal(first.test_factors, again.test_factors)
    assert first.train_images.dtype == torch.uint8 and first.train_images.shape == (200, 1, 32, 32)
    assert other.train_factors[:, 3].max() == 3 and first.factor_names == list(FACTOR_NAMES)
    assert first.factor_sizes == [3, 3, 8, 8, 8] and first.factorial
    every = torch.cat([first.train_factors, first.test_factors])
    assert len({tuple(row) for row in every.tolist()}) == 250  # drawn without replacement
    assert torch.equal(rasterise(first.test_factors, tuple(first.factor_sizes), 32), first.test_images)
    assert torch.equal(first.train_labels, first.train_factors[:, 0]) and first.class_names == [
        "square",
        "ellipse",
        "heart",
    ]
    with pytest.raises(DataUnavailable, match="fewer than data.subsample"):
        load_shapes(tmp_path, **SMALL, subsample=4600, test_size=50)


def test_the_datamodule_keeps_factors_beside_each_split(tmp_path):
    datamodule = ImageDataModule(name="shapes", root=str(tmp_path), **SMALL, subsample=300, test_size=60, val_size=50)
    datamodule.setup("fit")
    assert datamodule.sizes == {"train": 250, "val": 50, "test": 60} and datamodule.has_factors and datamodule.factorial
    sizes = tuple(datamodule.image_set.factor_sizes)
    for split in ("train", "val", "test"):
        images, labels = datamodule.pixels(split)
        factors = datamodule.factors[split]
        assert torch.equal(rasterise(factors, sizes, 32).float() / 255, images), split  # row for row
        assert torch.equal(labels, factors[:, 0])
    x, labels = next(iter(datamodule.train_dataloader()))  # batches stay (images, labels)
    assert x.dtype == torch.float32 and x.shape[1:] == (1, 32, 32)
    assert datamodule.describe()["factors"] == dict(zip(FACTOR_NAMES, sizes))


def write_dsprites(path, n_per_factor=(1, 3, 2, 4, 3, 3), side=16):
    """A tiny file in the published layout: every combination once, 0/1 images of side × side
    (the published file's are 64 × 64), a pickled metadata."""
    sizes = n_per_factor
    classes = grid_factors(torch.arange(int(np.prod(sizes))), sizes).numpy()
    imgs = rasterise(torch.from_numpy(classes[:, 1:]), tuple(sizes[1:]), side).numpy()[:, 0] // 255
    values = classes.astype(np.float64) / 10
    metadata = np.array([{"description": "a pickled dict, as in the published file"}], dtype=object)
    np.savez_compressed(
        path,
        imgs=imgs.astype(np.uint8),
        latents_classes=classes.astype(np.int64),
        latents_values=values,
        metadata=metadata,
    )
    return classes, imgs


def test_dsprites_reads_the_published_layout_without_its_pickle(tmp_path):
    path = tmp_path / "dsprites_ndarray_tiny.npz"
    classes, imgs = write_dsprites(path)
    image_set = load_dsprites(path, subsample=150, test_size=40)
    assert image_set.factor_names == ["shape", "scale", "orientation", "position_x", "position_y"]  # colour dropped
    assert image_set.factor_sizes == [3, 2, 4, 3, 3] and image_set.factorial
    assert image_set.train_images.dtype == torch.uint8 and set(image_set.train_images.unique().tolist()) <= {0, 255}
    # each image is the file's image of its factors, scaled 0/1 -> 0/255
    flat = {tuple(row): index for index, row in enumerate(classes[:, 1:].tolist())}
    for images, factors in (
        (image_set.train_images, image_set.train_factors),
        (image_set.test_images, image_set.test_factors),
    ):
        rows = [flat[tuple(row)] for row in factors.tolist()]
        assert torch.equal(images[:, 0], torch.from_numpy(imgs[rows] * 255).to(torch.uint8))
    assert len(image_set.train_images) == 150 and len(image_set.test_images) == 40
    with pytest.raises(DataUnavailable, match="no array latents_classes"):
        np.savez(tmp_path / "bad.npz", imgs=imgs)
        load_dsprites(tmp_path / "bad.npz", None, 10)
    datamodule = ImageDataModule(name="dsprites", path=str(path), subsample=None, test_size=16, val_size=20)
    datamodule.setup("fit")
    assert datamodule.sizes == {"train": 180, "val": 20, "test": 16} and len(datamodule.factors["val"]) == 20


def test_npz_factors_travel_with_the_held_out_split(tmp_path):
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 5, (40, 2))
    images = (factors[:, :1, None] * 50 + np.zeros((40, 8, 8))).astype(np.uint8)  # pixel value = 50 * factor 0
    np.savez(tmp_path / "f.npz", images=images, factors=factors, factor_names=np.array(["brightness", "other"]))
    image_set = load_npz(tmp_path / "f.npz", test_size=10, split_seed=0)
    assert image_set.factor_names == ["brightness", "other"] and not image_set.factorial
    for split in ("train", "test"):
        pixels, levels = getattr(image_set, f"{split}_images"), getattr(image_set, f"{split}_factors")
        assert torch.equal(pixels[:, 0, 0, 0].long(), levels[:, 0] * 50)
    np.savez(tmp_path / "g.npz", images=images, factors=factors[:30])
    with pytest.raises(DataUnavailable, match=r"'factors' has shape \(30, 2\).*40×K integers"):
        load_npz(tmp_path / "g.npz", test_size=10, split_seed=0)


def test_shapes_keys_elsewhere_are_refused_with_what_to_do():
    with pytest.raises(
        ConfigError, match="data.positions is read only with data=shapes.*not with data=mnist; remove it"
    ):
        ImageDataModule(name="mnist", positions=16)
    with pytest.raises(ConfigError, match="data.subsample is read only with data=shapes or data=dsprites"):
        ImageDataModule(name="fashionmnist", subsample=100)
    with pytest.raises(ConfigError, match="data=dsprites needs data.path"):
        ImageDataModule(name="dsprites")
