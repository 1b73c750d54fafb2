"""Batches as slices of in-memory tensors: their order, the shard of each DDP process, and, on an
accelerator, copies of the whole split on the device so that batches are sliced there.

Loading a whole dataset once and slicing batches from one tensor is what makes training fast
on a CPU: the torchvision `ToTensor` + `DataLoader` pipeline of Diaz 2026's tutorial fed the mlp at
~11,600 images/s on our 2-core machine, a loop over an in-memory tensor at ~43,000
(scripts/bench.py; per-image PIL conversion and collation dominate the former). On a GPU the
same idea goes one step further: FashionMNIST is 47 MB as bytes (188 MB as float32), so the
split moves to the device once and each batch is an index gather there, instead of a host-to-
device copy of every batch.

Splits are kept as they were loaded, uint8 for the image sets we decode and generate (an npz
file's float images stay float), and each batch becomes float32 in [0, 1] when it is taken
(`to_pixels`): on the device for an accelerator, so the split's copy there is bytes too.
737,280 images of 64 × 64 (the dSprites grid) are 3 GB as bytes and would be 12 GB as float32.

Binarised images (`data.binarize`, Burda et al. 2016's dynamic binarisation): each training batch
is drawn there too, x ~ Bernoulli(pixel), from a generator seeded by the batch's own seed
(`BatchIndices` gives it beside the indices: from the run's seed, the epoch, the batch's place and
the process), so a draw is the same whether the run was resumed or not, and on an accelerator it
is drawn on the device (a seeded device generator: no host sync, no copy of the noise).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

# Seeds of the orders of a step's second (third, ...) draw: draw d adds d times this.
DRAW_SEED_STRIDE = 1_000_000_007
# Images binarised at a time when a whole split is drawn once (`binarized`): bounds the float copy.
BINARIZE_CHUNK = 10_000


def to_pixels(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """uint8 images as float32 in [0, 1] (divided by 255); float images (an npz file's) are in [0, 1] already.
    With `generator` (on the images' device), each pixel becomes 1 with probability its value and 0
    otherwise, x ~ Bernoulli(pixel): a binarised draw (Burda et al. 2016)."""
    pixels = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
    if generator is None:
        return pixels
    # u < p with u ~ U[0, 1) is 1 with probability p: 0 stays 0 and 1 stays 1.
    return torch.rand(pixels.shape, generator=generator, device=pixels.device).lt_(pixels).float()


def binarized(images: Tensor, seed: int) -> Tensor:
    """A split drawn once, x ~ Bernoulli(pixel), from a generator seeded with `seed`, kept as it is
    stored: uint8 images become 0/255, float images 0/1. Chunk by chunk, so no float copy of a large split."""
    generator = torch.Generator().manual_seed(seed)
    scale = 255 if images.dtype == torch.uint8 else 1
    parts = [to_pixels(chunk, generator).mul_(scale).to(images.dtype) for chunk in images.split(BINARIZE_CHUNK)]
    return torch.cat(parts) if parts else images.clone()


def batch_seed(seed: int, epoch: int, batch: int, rank: int = 0, world: int = 1) -> int:
    """The seed of one training batch's binarisation: distinct for every (epoch < 100,003, batch <
    1,000,003, process) of a run, and a function of them alone, so a resumed run draws what an
    uninterrupted one would."""
    return ((seed * 100_003 + epoch) * 1_000_003 + batch) * world + rank


class BatchIndices(Sampler):
    """Index batches over n items, shuffled from (seed, epoch) or in order; this process's shard.

    Used with `DataLoader(batch_size=None)`, each element is a tensor of indices that becomes one
    batch by fancy indexing. Lightning calls `set_epoch`, so the order of each epoch follows from
    the seed and the epoch alone (a resumed run sees the same order as an uninterrupted one).
    With several processes (`world` > 1), process `rank` takes every world-th index of that order:
    shuffled (training) orders are first padded by wrapping around so that every process gets as
    many batches as the others (DDP steps in lockstep); evaluation orders are not, so that each
    image is counted exactly once.

    `draws` > 1 (training only) gives each step that many independent batches, stacked: one
    shuffled order per draw, each from (seed, epoch, draw) and sharded alike, and batch i is the
    i-th slice of every order joined. A model that needs a second, independent minibatch beside
    its own (the factorvae's permuted codes) asks for it with `training_draws = 2`; an epoch
    still has as many steps, and each order passes over every image once.

    `seeded` (training with `data.binarize=dynamic`): each element is `(indices, seed)`, the
    batch's binarisation seed (`batch_seed`) beside its indices.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        epoch_source: Callable[[], int] | None = None,
        rank: int = 0,
        world: int = 1,
        draws: int = 1,
        seeded: bool = False,
    ) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.epoch = 0
        self.epoch_source = epoch_source
        self.rank, self.world = rank, world
        self.draws = draws if shuffle else 1
        self.seeded = seeded

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _shard_size(self) -> int:
        if self.shuffle:
            return math.ceil(self.n / self.world)
        return len(range(self.rank, self.n, self.world))

    def __len__(self) -> int:
        return math.ceil(self._shard_size() / self.batch_size)

    def __iter__(self) -> Iterator[Tensor] | Iterator[tuple[Tensor, int]]:
        epoch = self.epoch_source() if self.epoch_source is not None and self.shuffle else self.epoch
        batches = self._batches(epoch)
        if not self.seeded:
            return batches
        return (
            (indices, batch_seed(self.seed, epoch, number, self.rank, self.world))
            for number, indices in enumerate(batches)
        )

    def _batches(self, epoch: int) -> Iterator[Tensor]:
        if not self.shuffle:
            return iter(torch.arange(self.n)[self.rank :: self.world].split(self.batch_size))
        padding = math.ceil(self.n / self.world) * self.world - self.n
        shards = []
        for draw in range(self.draws):
            # Draw 0's seed is the one a single-draw run uses; the others' lie far from any epoch's.
            seed = self.seed * 100_003 + epoch + draw * DRAW_SEED_STRIDE
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(seed))
            shards.append(torch.cat([order, order[:padding]])[self.rank :: self.world].split(self.batch_size))
        if self.draws == 1:
            return iter(shards[0])
        return iter(torch.cat(parts) for parts in zip(*shards))


class PixelBatches(Dataset):
    """A split's stored (images, labels) whose item at a tensor of indices is that batch, its images
    as pixels; at `(indices, seed)` (BatchIndices' `seeded`) its images binarised from that seed."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item: Tensor | tuple[Tensor, int]) -> tuple[Tensor, Tensor]:
        indices, seed = item if isinstance(item, tuple) else (item, None)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        # index_select, not images[indices]: the same gather without advanced indexing's general
        # kernel; for a batch of 256 FashionMNIST images, bytes gathered and converted took a fifth
        # of the time of float32 images[indices] (one thread, side by side, shared 2-core machine).
        return to_pixels(self.images.index_select(0, indices), generator), self.labels.index_select(0, indices)


class IndexBatches(Dataset):
    """The batches of one split as their indices: the gather happens on the device (DeviceCopies)."""

    def __init__(self, split: str, n: int) -> None:
        self.split, self.n = split, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, item: Tensor | tuple[Tensor, int]) -> tuple[str, Tensor] | tuple[str, Tensor, int]:
        return (self.split, *item) if isinstance(item, tuple) else (self.split, item)


class DeviceCopies:
    """Each split's stored (images, labels) moved to a device once (per fit or test), and batches
    gathered there, their images converted to pixels there."""

    def __init__(self, splits: Callable[[str], tuple[Tensor, ...]]) -> None:
        self.splits = splits
        self.copies: dict[tuple[str, str], tuple[Tensor, ...]] = {}
        self.generators: dict[str, torch.Generator] = {}  # per device, reseeded for each binarised batch
        self.moves = 0  # how many times a split was copied to a device, for tests and logs

    def gather(self, split: str, indices: Tensor, device: torch.device, seed: int | None = None) -> tuple[Tensor, ...]:
        """The batch at `indices` of `split`, gathered on `device`; binarised from `seed` when given.
        Seeding a device generator sets its state on the host: the draw needs no sync."""
        key = (split, str(device))
        if key not in self.copies:
            self.copies[key] = tuple(tensor.to(device) for tensor in self.splits(split))
            self.moves += 1
        indices = indices.to(device, non_blocking=True)
        images, *rest = (tensor.index_select(0, indices) for tensor in self.copies[key])
        generator = None
        if seed is not None:
            if str(device) not in self.generators:
                self.generators[str(device)] = torch.Generator(device=device)
            generator = self.generators[str(device)].manual_seed(seed)
        return (to_pixels(images, generator), *rest)

    def clear(self) -> None:
        self.copies.clear()
