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


# --- data: stored as bytes, pixels per batch (issue 20's memory rule) -------------------------
def test_splits_are_stored_as_bytes_and_become_pixels_per_batch():
    module = ImageDataModule(name="synthetic", batch_size=16, val_size=64)
    module.setup()
    for split in ("train", "val", "test"):
        stored = getattr(module, f"{split}_set").tensors[0]
        n, channels, height, width = stored.shape
        assert (
            stored.dtype == torch.uint8 and stored.nelement() * stored.element_size() == n * channels * height * width
        )
        # The float pixels the evaluations and views read: the bytes divided by 255, only where asked.
        images, labels = module.pixels(split, torch.tensor([3, 0, 5]))
        assert images.dtype == torch.float32 and torch.equal(images, stored[[3, 0, 5]].float() / 255)
        assert torch.equal(labels, module.labels(split)[[3, 0, 5]])
        assert torch.equal(module.pixels(split)[0], stored.float() / 255)
    for split in ("train", "val"):  # indexed from the whole set: copies of their own, nothing more
        stored = getattr(module, f"{split}_set").tensors[0]
        assert stored.untyped_storage().nbytes() == stored.nelement()
    # A validation batch (in order) on the CPU, and one gathered by the device path, are the same pixels.
    x, y = next(iter(module.val_dataloader()))
    stored, stored_labels = module.val_set.tensors
    assert x.dtype == torch.float32 and torch.equal(x, stored.float() / 255) and torch.equal(y, stored_labels)
    gathered, gathered_labels = module.on_device.gather("val", torch.tensor([7, 1]), torch.device("cpu"))
    assert torch.equal(gathered, stored[[7, 1]].float() / 255) and torch.equal(gathered_labels, stored_labels[[7, 1]])


def test_test_mse_from_stored_bytes_equals_the_float_split_bit_for_bit(tmp_path):
    """The run's test loop over uint8 splits converted per batch gives exactly the test/mse of the
    same loop over splits converted to float32 at set-up (the code before issue 20's memory rule)."""
    import lightning as L
    from torch.utils.data import TensorDataset

    from autoencoders.models.autoencoder import Autoencoder

    L.seed_everything(0, verbose=False)
    module = ImageDataModule(name="synthetic", val_size=64)
    module.setup()
    model = Autoencoder(list(module.input_shape), net="mlp", latent_dim=4)
    as_floats = ImageDataModule(name="synthetic", val_size=64)
    as_floats.setup()
    for split in ("train", "val", "test"):  # main's set-up at 6b4e745: images.float().div_(255) of the whole split
        images, labels = getattr(as_floats, f"{split}_set").tensors
        setattr(as_floats, f"{split}_set", TensorDataset(images.float().div_(255), labels))
    assert as_floats.test_set.tensors[0].dtype == torch.float32
    quiet = {
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    trainer = L.Trainer(max_epochs=1, limit_train_batches=3, default_root_dir=tmp_path, **quiet)
    trainer.fit(model, datamodule=module)
    tested = [
        L.Trainer(default_root_dir=tmp_path, **quiet).test(model, datamodule=data, verbose=False)[0]
        for data in (module, as_floats)
    ]
    assert tested[0]["test/mse"] == tested[1]["test/mse"] and tested[0]["test/loss"] == tested[1]["test/loss"]
