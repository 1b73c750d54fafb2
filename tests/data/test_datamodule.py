"""The DataModule: splits, batch order, pixels, normal classes for anomaly detection."""

import pytest
import torch

from autoencoders.data.datamodule import BatchIndices, ImageDataModule
from autoencoders.errors import ConfigError


def test_split_is_fixed_by_split_seed_not_by_seed():
    def val_images(seed: int, split_seed: int) -> torch.Tensor:
        module = ImageDataModule(name="synthetic", val_size=64, seed=seed, split_seed=split_seed)
        module.setup()
        return module.val_set.tensors[0]

    assert torch.equal(val_images(seed=1, split_seed=0), val_images(seed=2, split_seed=0))
    assert not torch.equal(val_images(seed=1, split_seed=0), val_images(seed=1, split_seed=1))


def test_batch_order_comes_from_seed_and_epoch():
    def order(seed: int, epoch: int) -> list[int]:
        sampler = BatchIndices(100, 32, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        return torch.cat(list(sampler)).tolist()

    assert order(1, 3) == order(1, 3)
    assert order(1, 3) != order(1, 4) and order(1, 3) != order(2, 3)
    assert sorted(order(1, 3)) == list(range(100))
    assert [len(batch) for batch in BatchIndices(100, 32, shuffle=False)] == [32, 32, 32, 4]


def test_datamodule_batches_are_float_pixels_in_unit_range():
    module = ImageDataModule(name="synthetic", batch_size=16, val_size=64)
    module.setup()
    x, y = next(iter(module.train_dataloader()))
    assert x.shape == (16, 1, 28, 28) and x.dtype == torch.float32 and y.shape == (16,)
    assert x.min() >= 0 and x.max() <= 1
    assert module.sizes == {"train": 448, "val": 64, "test": 256}


# --- data: normal classes ----------------------------------------------------------------------
def test_holdout_class_filters_train_and_val_but_not_test():
    full = ImageDataModule(name="synthetic", val_size=64)
    full.setup()
    held = ImageDataModule(name="synthetic", val_size=64, holdout_class=3)
    held.setup()
    assert held.normal_classes == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    for split in ("train", "val"):
        labels = getattr(full, f"{split}_set").tensors[1]
        assert 3 not in getattr(held, f"{split}_set").tensors[1].tolist()
        assert len(getattr(held, f"{split}_set")) == int((labels != 3).sum())  # the same split, minus class 3
    assert torch.equal(held.val_set.tensors[0], full.val_set.tensors[0][full.val_set.tensors[1] != 3])
    assert torch.equal(held.test_set.tensors[1], full.test_set.tensors[1])
    assert held.describe()["normal_classes"] == held.normal_classes and "normal_classes" not in full.describe()
    chosen = ImageDataModule(name="synthetic", val_size=64, normal_classes=[2, 0])
    chosen.setup()
    assert chosen.normal_classes == [0, 2] and set(chosen.train_set.tensors[1].tolist()) == {0, 2}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"holdout_class": 10},
        {"normal_classes": []},
        {"normal_classes": list(range(10))},
        {"normal_classes": [1], "holdout_class": 2},
    ],
)
def test_bad_normal_classes_are_config_errors(kwargs):
    with pytest.raises(ConfigError, match="normal_classes|holdout_class"):
        ImageDataModule(name="synthetic", val_size=64, **kwargs).setup()
