"""data.binarize: binary images x ~ Bernoulli(pixel), drawn once per split (fixed) or afresh for
every training batch (dynamic, Burda et al. 2016), seeded so that runs are reproducible."""

import pytest
import torch

from autoencoders.data.batches import BatchIndices, PixelBatches, batch_seed, binarized, to_pixels
from autoencoders.data.datamodule import ImageDataModule
from autoencoders.errors import ConfigError


def test_a_draw_is_one_with_the_probability_of_the_pixel():
    # 64/255 = 0.251 everywhere: 200,000 Bernoulli draws have mean 0.251 and standard error 0.00097.
    grey = torch.full((250, 1, 40, 20), 64, dtype=torch.uint8)
    drawn = to_pixels(grey, torch.Generator().manual_seed(0))
    assert drawn.dtype == torch.float32 and set(drawn.unique().tolist()) == {0.0, 1.0}
    assert float(drawn.mean()) == pytest.approx(64 / 255, abs=4 * 0.00097)
    # Black stays 0 and white stays 1 (u < p with u in [0, 1)); floats in [0, 1] are read as probabilities.
    ends = torch.tensor([[[[0, 255]]]], dtype=torch.uint8).expand(1000, 1, 1, 2)
    assert torch.equal(to_pixels(ends, torch.Generator().manual_seed(1))[:, 0, 0], torch.tensor([[0.0, 1.0]] * 1000))
    floats = torch.full((1000, 1, 10, 10), 0.75)
    assert float(to_pixels(floats, torch.Generator().manual_seed(2)).mean()) == pytest.approx(0.75, abs=4 * 0.0044)
    # Without a generator: the grey levels, as always.
    assert torch.equal(to_pixels(grey), grey.float() / 255)


def test_a_split_drawn_once_keeps_its_storage_and_its_seed_decides():
    grey = torch.randint(0, 256, (25_000, 1, 4, 4), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    once = binarized(grey, seed=5)  # in chunks of 10,000: one stream, as if drawn whole
    assert once.dtype == torch.uint8 and set(once.unique().tolist()) == {0, 255}
    assert torch.equal(once, binarized(grey, seed=5)) and not torch.equal(once, binarized(grey, seed=6))
    whole = to_pixels(grey, torch.Generator().manual_seed(5))
    assert torch.equal(once.float() / 255, whole)
    floats = binarized(grey.float() / 255, seed=5)
    assert floats.dtype == torch.float32 and torch.equal(floats, whole)


def test_batch_seeds_differ_by_epoch_batch_and_process_and_only_by_them():
    seeds = {batch_seed(42, epoch, batch, rank, 2) for epoch in range(5) for batch in range(300) for rank in (0, 1)}
    assert len(seeds) == 5 * 300 * 2
    assert batch_seed(42, 3, 7) == batch_seed(42, 3, 7) != batch_seed(43, 3, 7)
    sampler = BatchIndices(100, 32, shuffle=True, seed=42, seeded=True)
    sampler.set_epoch(3)
    items = list(sampler)
    assert [seed for _, seed in items] == [batch_seed(42, 3, number) for number in range(4)]
    plain = BatchIndices(100, 32, shuffle=True, seed=42)
    plain.set_epoch(3)
    assert all(torch.equal(indices, other) for (indices, _), other in zip(items, plain))  # the same order


def binary(images: torch.Tensor) -> bool:
    return set(images.unique().tolist()) <= {0.0, 1.0}


def module(binarize: str, seed: int = 0, split_seed: int = 0) -> ImageDataModule:
    data = ImageDataModule(
        name="synthetic", batch_size=64, val_size=64, seed=seed, split_seed=split_seed, binarize=binarize
    )
    data.setup()
    return data


def test_fixed_draws_every_split_once_from_the_split_seed():
    grey, fixed = module("none"), module("fixed", seed=1)
    for split in ("train", "val", "test"):
        images = fixed.pixels(split)[0]
        assert binary(images) and images.shape == grey.pixels(split)[0].shape
        # The same images drawn: a pixel is 1 only where the grey image is not black, and pixels
        # of each grey range are 1 as often as their grey level says (>= 6,000 draws per range).
        pixels = grey.pixels(split)[0]
        assert not images[pixels == 0].any()
        for inside in (pixels < 0.5, pixels >= 0.5):
            assert float(images[inside].mean()) == pytest.approx(float(pixels[inside].mean()), abs=0.02)
        assert torch.equal(images, module("fixed", seed=2).pixels(split)[0])  # whatever the run's seed
    # The test split holds the same images whatever data.split_seed; their draw follows it.
    assert not torch.equal(fixed.pixels("test")[0], module("fixed", split_seed=1).pixels("test")[0])
    x, _ = next(iter(fixed.train_dataloader()))
    assert binary(x)
    assert fixed.describe()["binarize"] == "fixed" and "binarize" not in grey.describe()


def test_dynamic_draws_each_training_batch_afresh_and_reproducibly():
    fixed, dynamic = module("fixed", seed=1), module("dynamic", seed=1)
    for split in ("train", "val", "test"):  # what readers and evaluation see: the fixed draw
        assert torch.equal(dynamic.pixels(split)[0], fixed.pixels(split)[0])
    assert torch.equal(dynamic.grey_train, module("none").train_set.tensors[0])  # the draws come from the grey levels

    def epoch_batches(data: ImageDataModule, epoch: int) -> list[torch.Tensor]:
        loader = data.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return [x for x, _ in loader]

    first, again = epoch_batches(dynamic, 0), epoch_batches(module("dynamic", seed=1), 0)  # a fresh module: a resume
    assert all(binary(x) for x in first) and all(torch.equal(a, b) for a, b in zip(first, again))
    other_epoch, other_seed = epoch_batches(dynamic, 1), epoch_batches(module("dynamic", seed=2), 0)
    # Epoch 1 shows the images in another order; sorted by image, each image's draw still differs.
    order0, order1 = (torch.cat([indices for indices, _ in _seeded(dynamic, epoch)]) for epoch in (0, 1))
    by_image0, by_image1 = torch.cat(first)[order0.argsort()], torch.cat(other_epoch)[order1.argsort()]
    assert (by_image0 != by_image1).any((1, 2, 3)).float().mean() > 0.99
    assert not torch.equal(first[0], other_seed[0])
    # Each image's draws over many epochs average to its grey levels (hand check of x ~ Bernoulli(pixel)).
    grey = dynamic.grey_train.float() / 255
    source = PixelBatches(dynamic.grey_train, dynamic.train_set.tensors[1])
    indices = torch.arange(8)
    mean = torch.stack([source[(indices, batch_seed(1, epoch, 0))][0] for epoch in range(400)]).mean(0)
    assert (mean - grey[:8]).abs().max() < 0.1  # 400 draws: standard error <= 0.025 per pixel


def _seeded(data: ImageDataModule, epoch: int) -> list:
    sampler = data.train_dataloader().sampler
    sampler.set_epoch(epoch)
    return list(sampler)


def test_the_device_path_draws_from_the_batch_seed():
    dynamic = module("dynamic", seed=1)
    indices = torch.tensor([5, 2, 9])
    cpu = torch.device("cpu")
    on_device = dynamic.transfer_batch_to_device(("train", indices, 77), cpu, 0)
    again = dynamic.on_device.gather("train", indices, cpu, seed=77)
    assert binary(on_device[0]) and torch.equal(on_device[0], again[0]) and torch.equal(on_device[1], again[1])
    assert not torch.equal(on_device[0], dynamic.on_device.gather("train", indices, cpu, seed=78)[0])
    plain = dynamic.transfer_batch_to_device(("val", indices), cpu, 0)  # val: the fixed draw, no seed
    assert torch.equal(plain[0], dynamic.pixels("val", indices)[0])


def test_an_unknown_binarisation_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match=r"data.binarize.*none, fixed, dynamic"):
        ImageDataModule(name="synthetic", binarize="stochastic")
