"""The DataModule: an in-memory image set split into train/val/test, batches by slicing
(data/batches.py says why, and how they are sharded and kept on an accelerator). The sources
are in data/sources.py.

Splits are stored as loaded (uint8, or an npz file's floats) and become float32 pixels in [0, 1]
per batch; everything else that reads a split's images (evaluations, views, ae-predict) asks
`pixels(split, index)`, which converts only the images asked for.

`data.binarize` (docs/data.md): `fixed` draws every split once, x ~ Bernoulli(pixel), seeded by
data.split_seed, so runs of any seed see the same binary images; `dynamic` (Burda et al. 2016)
keeps the training split's grey levels and draws each training batch afresh (data/batches.py),
while validation, test and every other reader of the training split see the fixed draw.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from autoencoders.data.batches import BatchIndices, DeviceCopies, IndexBatches, PixelBatches, binarized, to_pixels
from autoencoders.data.npz import load_npz
from autoencoders.data.settings import check_choices
from autoencoders.data.shapes import load_dsprites, load_shapes
from autoencoders.data.sources import ImageSet, load_image_set
from autoencoders.errors import ConfigError
from autoencoders.machinery.contract import training_draws
from autoencoders.schema import check_section

log = logging.getLogger(__name__)
EVAL_BATCH_SIZE = 1024


class ImageDataModule(L.LightningDataModule):
    """Train/val/test splits of an in-memory image set, stored as loaded (uint8 for the sets we
    decode or generate); batches and `pixels()` give float32 in [0, 1].

    Training batches are `data.batch_size` images, or, for a model that declares
    `training_draws = k` (the factorvae: 2), k independent batches of that size stacked along the
    batch dimension, each slice from its own shuffled order (data/batches.py); `x, labels = batch`
    either way.
    """

    def __init__(
        self,
        name: str = "fashionmnist",
        root: str = "~/.cache/autoencoders",
        batch_size: int = 256,
        val_size: int = 5000,
        split_seed: int = 0,
        download: bool = True,
        seed: int = 0,
        normal_classes: list[int] | None = None,
        holdout_class: int | list[int] | None = None,
        path: str | None = None,
        test_size: int = 1000,
        resolution: int = 64,
        scales: int = 6,
        orientations: int = 40,
        positions: int = 32,
        subsample: int | None = None,
        binarize: str = "none",
    ) -> None:
        super().__init__()
        check_section(
            "data",
            {
                "batch_size": batch_size,
                "val_size": val_size,
                "split_seed": split_seed,
                "download": download,
                "path": path,
                "test_size": test_size,
                "resolution": resolution,
                "scales": scales,
                "orientations": orientations,
                "positions": positions,
                "subsample": subsample,
                "binarize": binarize,
            },
        )
        grid = {"resolution": resolution, "scales": scales, "orientations": orientations, "positions": positions}
        check_choices(name, path, normal_classes, holdout_class, grid, subsample)
        self.path, self.test_size = path, test_size
        self.shapes_grid = grid
        self.subsample, self.binarize = subsample, binarize
        self.name, self.root, self.batch_size = name, root, batch_size
        self.val_size, self.split_seed, self.download, self.seed = val_size, split_seed, download, seed
        self._normal_classes, self._holdout_class = normal_classes, holdout_class
        self.normal_classes: list[int] | None = None  # resolved in setup(), once the classes are known
        self.image_set: ImageSet | None = None
        self.factors: dict[str, Tensor] = {}  # split -> (N, K) factor levels, for sets that have them
        # The training split's grey levels, which data.binarize=dynamic draws each batch from.
        self.grey_train: Tensor | None = None
        self.on_device = DeviceCopies(self._batch_source)

    def setup(self, stage: str | None = None) -> None:
        if self.image_set is not None:
            return
        if self.name == "npz":
            image_set = load_npz(self.path, self.test_size, self.split_seed)
        elif self.name == "shapes":
            image_set = load_shapes(self.root, **self.shapes_grid, subsample=self.subsample, test_size=self.test_size)
        elif self.name == "dsprites":
            image_set = load_dsprites(self.path, self.subsample, self.test_size)
        else:
            image_set = load_image_set(self.name, self.root, self.download)
        n_train = len(image_set.train_images)
        if n_train < 2:
            raise ConfigError(
                f"{self.name} has {n_train} training image(s): data.val_size of them are held out for "
                "validation, which needs at least 2 (one to validate, one to train). Use more images"
                + (" (data.subsample)." if self.name in ("shapes", "dsprites") else ".")
            )
        if not 0 < self.val_size < n_train:
            drawn = " (data.subsample draws them)" if self.name in ("shapes", "dsprites") else ""
            raise ConfigError(
                f"data.val_size must be between 1 and {n_train - 1} for {self.name}, whose training split has "
                f"{n_train} images{drawn}; got {self.val_size}."
            )
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(self.split_seed))
        val_index, train_index = order[: self.val_size], order[self.val_size :]
        # Anomaly detection: train and val see only the normal classes; test keeps every class.
        # Filtering after the split keeps the same validation images as an unfiltered run, minus anomalies.
        self.normal_classes = self._resolve_normal_classes(len(image_set.class_names))
        if self.normal_classes is not None:
            is_normal = torch.isin(image_set.train_labels, torch.tensor(self.normal_classes))
            val_index, train_index = val_index[is_normal[val_index]], train_index[is_normal[train_index]]
        # Stored as loaded: a batch's images become floats when it is taken (data/batches.py).
        images, labels = image_set.train_images, image_set.train_labels  # index_select: copies, faster than [index]
        self.train_set = TensorDataset(images.index_select(0, train_index), labels.index_select(0, train_index))
        self.val_set = TensorDataset(images.index_select(0, val_index), labels.index_select(0, val_index))
        self.test_set = TensorDataset(image_set.test_images, image_set.test_labels)
        if image_set.train_factors is not None:  # beside the splits, not in the batches: `x, labels = batch` holds
            self.factors = {
                "train": image_set.train_factors[train_index],
                "val": image_set.train_factors[val_index],
                "test": image_set.test_factors,
            }
        if self.binarize != "none":
            self._binarize_splits()
        self.image_set = image_set
        log.info("Data %s from %s: %s", self.name, image_set.source, self.sizes)

    def _binarize_splits(self) -> None:
        """Each split drawn once from its own seed (data.split_seed's, so every run sees the same
        binary images); for `dynamic`, the training split's grey levels kept for the batches' draws."""
        if self.binarize == "dynamic":
            self.grey_train = self.train_set.tensors[0]
        for number, split in enumerate(("train", "val", "test")):
            images, labels = getattr(self, f"{split}_set").tensors
            setattr(self, f"{split}_set", TensorDataset(binarized(images, self.split_seed * 3 + number), labels))

    def _batch_source(self, split: str) -> tuple[Tensor, Tensor]:
        """What a split's batches are taken from: the stored split, or for dynamic binarisation's
        training batches the grey levels they are drawn from."""
        images, labels = getattr(self, f"{split}_set").tensors
        return (self.grey_train, labels) if split == "train" and self.grey_train is not None else (images, labels)

    def _resolve_normal_classes(self, n_classes: int) -> list[int] | None:
        """The sorted normal classes from data.normal_classes or data.holdout_class (None: all)."""
        if self._normal_classes is None and self._holdout_class is None:
            return None
        given = self._normal_classes if self._normal_classes is not None else self._holdout_class
        key = "data.normal_classes" if self._normal_classes is not None else "data.holdout_class"
        if n_classes == 0:
            raise ConfigError(f"{key} needs class labels, and {self.name} has none (an npz file without 'labels').")
        chosen = [given] if isinstance(given, int) else list(given)
        if not chosen or any(isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < n_classes for c in chosen):
            raise ConfigError(
                f"{key}={given!r} is not allowed: it must name classes 0..{n_classes - 1} of {self.name}."
            )
        normal = sorted(set(chosen)) if key == "data.normal_classes" else sorted(set(range(n_classes)) - set(chosen))
        if not normal or len(normal) == n_classes:
            raise ConfigError(
                f"{key}={given!r} leaves {'no' if not normal else 'no anomalous'} class; "
                "anomaly detection needs both normal and held-out classes."
            )
        return normal

    def pixels(self, split: str, index: Tensor | slice | None = None) -> tuple[Tensor, Tensor]:
        """A split's images as float32 in [0, 1] (uint8 divided by 255, float files as stored) and
        their labels; only those at `index` (indices or a slice) when given. Indexed first, then
        converted: a float copy of a whole large split is what the stored bytes avoid."""
        images, labels = getattr(self, f"{split}_set").tensors
        if index is not None:
            images, labels = images[index], labels[index]
        return to_pixels(images), labels

    def stored(self, split: str) -> tuple[Tensor, Tensor]:
        """A split as it is kept (uint8 bytes, or a float file's pixels) and its labels, for readers
        that convert each batch themselves with `to_pixels` (the reference network): no float copy."""
        images, labels = getattr(self, f"{split}_set").tensors
        return images, labels

    def labels(self, split: str) -> Tensor:
        """A split's labels (-1 throughout for a set without them)."""
        return getattr(self, f"{split}_set").tensors[1]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_set.tensors[0].shape[1:])

    @property
    def class_names(self) -> list[str]:
        """One name per class; empty for a set without labels (all labels are then -1)."""
        return self.image_set.class_names

    @property
    def has_labels(self) -> bool:
        """Whether the images have class labels (known after setup). Without them, the views and
        evaluations that need classes skip themselves, and models that need labels refuse to start."""
        return bool(self.image_set.class_names)

    @property
    def has_factors(self) -> bool:
        """Whether the images come with the levels of the factors that generated them (shapes,
        dsprites, an npz file with `factors`); then the disentanglement metrics run."""
        return bool(self.factors)

    @property
    def factor_names(self) -> list[str]:
        return self.image_set.factor_names

    @property
    def factorial(self) -> bool:
        """Whether the set is a uniform sample of a full factorial grid (what the FactorVAE score needs)."""
        return self.image_set.factorial

    @property
    def num_classes(self) -> int | None:
        """How many classes the labels index (all of them, also with normal_classes); None without labels."""
        return len(self.class_names) or None

    @property
    def dataset_size(self) -> int:
        """Training images: what is left after the validation split and any class filter."""
        return len(self.train_set)

    @property
    def sizes(self) -> dict[str, int]:
        return {split: len(getattr(self, f"{split}_set")) for split in ("train", "val", "test")}

    def describe(self) -> dict:
        """What metrics.json records about the data."""
        described = {"name": self.name, "source": self.image_set.source, "note": self.image_set.note, **self.sizes}
        if self.normal_classes is not None:  # only then, so unfiltered runs keep their schema
            described["normal_classes"] = self.normal_classes
        if self.binarize != "none":  # only then, so other runs keep their schema
            described["binarize"] = self.binarize
        if self.has_factors:
            described["factors"] = dict(zip(self.image_set.factor_names, self.image_set.factor_sizes))
        return described

    def _training_epoch(self) -> int:
        """The epoch Lightning is training. Its set_epoch comes too late after a resume: the
        first batch of the resumed epoch is fetched before it, so the sampler asks here."""
        return self.trainer.fit_loop.epoch_progress.current.processed if self.trainer is not None else 0

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = PixelBatches(*self._batch_source(split))
        epoch_source = self._training_epoch if shuffle and self.trainer is not None else None
        # Evaluation needs no gradients: larger batches, fewer trips through Lightning's loop (~0.3 ms each).
        batch_size = self.batch_size if shuffle else max(self.batch_size, EVAL_BATCH_SIZE)
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        # A model may ask for several independent batches per training step, stacked (BatchIndices).
        draws = training_draws(self.trainer) if shuffle else 1
        seeded = shuffle and self.grey_train is not None  # each training batch a fresh binary draw
        sampler = BatchIndices(len(dataset), batch_size, shuffle, self.seed, epoch_source, rank, world, draws, seeded)
        if self._device().type != "cpu":  # batches are gathered on the device: only indices travel
            dataset = IndexBatches(split, len(dataset))
        # Its own generator: creating an iterator then draws no number from torch's global RNG,
        # whose state a checkpoint carries for the model's noise.
        return DataLoader(dataset, batch_size=None, sampler=sampler, generator=torch.Generator())

    def _device(self) -> torch.device:
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        if isinstance(batch, (tuple, list)) and isinstance(batch[0], str):  # (split, indices[, seed]): IndexBatches
            split, indices, *seed = batch
            return self.on_device.gather(split, indices, device, *seed)
        # Batches made on the CPU: Lightning's walk over them would move nothing.
        return batch if device.type == "cpu" else super().transfer_batch_to_device(batch, device, dataloader_idx)

    def teardown(self, stage: str) -> None:
        self.on_device.clear()  # the device's memory back once a fit or test is over

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
