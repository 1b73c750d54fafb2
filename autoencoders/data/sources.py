"""Dataset sources: idx files (our folders, or torchvision's own layout of an earlier download),
Debian's FashionMNIST, torchvision's downloader, the offline MNIST subset, and a generated set,
each loaded whole into memory as uint8 tensors.

We parse the idx files ourselves (numpy over the gzip bytes) rather than going through
torchvision's per-image datasets: one read gives the whole tensor, and a corrupt file can be
named in the error with how to get a good copy.
"""

from __future__ import annotations

import gzip
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from autoencoders.data.cache import CACHE_FOLDER, cached
from autoencoders.errors import DataUnavailable

log = logging.getLogger(__name__)
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
DIGIT_CLASSES = [str(digit) for digit in range(10)]


@dataclass
class ImageSet:
    """A dataset in memory: images (N, C, H, W; uint8, or float in [0, 1]), int64 labels (-1 when
    the set has none, and then no class names), and where it came from. Sets with known
    generating factors also hold their integer levels (N, K) per split, one name and level count
    per factor, and whether the set is a uniform sample of a full factorial grid (data/shapes.py)."""

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    source: str
    class_names: list[str]
    note: str = ""
    train_factors: Tensor | None = None
    test_factors: Tensor | None = None
    factor_names: list[str] = field(default_factory=list)
    factor_sizes: list[int] = field(default_factory=list)
    factorial: bool = False


# --- idx files ------------------------------------------------------------------------------
def read_idx(path: Path, expected_ndim: int, cache_dir: Path | None = None) -> np.ndarray:
    """One idx file (.gz or plain) as an array; decoded once and cached in `cache_dir` (data/cache.py)."""
    array = cached(path, lambda source: decode_idx(source, expected_ndim), cache_dir)
    if array.ndim != expected_ndim:  # an entry of another file that happens to share the key: decode it
        array = decode_idx(path, expected_ndim)
    return array


def decode_idx(path: Path, expected_ndim: int) -> np.ndarray:
    """Parse one idx file (.gz or plain), checking magic number, dimensions and size."""
    how_to_fix = "Delete it and get a good copy (see docs/data.md)."
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


def read_idx_folder(folder: Path, cache_dir: Path | None = None) -> dict[str, Tensor] | None:
    """The four standard idx files of `folder` as tensors, or None if any is missing."""
    paths = {key: _idx_path(folder, stem) for key, stem in IDX_FILES.items()}
    if any(path is None for path in paths.values()):
        return None
    arrays = {key: read_idx(path, 3 if key.endswith("images") else 1, cache_dir) for key, path in paths.items()}
    for split in ("train", "test"):
        if len(arrays[f"{split}_images"]) != len(arrays[f"{split}_labels"]):
            raise DataUnavailable(
                f"{folder}: {split} images and labels differ in count "
                f"({len(arrays[f'{split}_images'])} vs {len(arrays[f'{split}_labels'])}). "
                "Replace the folder's files with a matching set."
            )
    # The cache's arrays themselves (data/cache.py), shared by a multirun's jobs: never written to in place.
    tensors = {key: torch.from_numpy(array) for key, array in arrays.items()}
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


def _from_folder(
    folder: Path, label: str, class_names: list[str], tried: list[str], cache_dir: Path | None = None
) -> ImageSet | None:
    """The idx files of `folder`, or None (noting in `tried` that they were not there)."""
    tensors = read_idx_folder(folder, cache_dir)
    if tensors is None:
        tried.append(f"no idx files in {folder}")
        return None
    return ImageSet(**tensors, source=f"{label} in {folder}", class_names=class_names)


def _from_torchvision_files(
    dataset_class_name: str, root: Path, class_names: list[str], tried: list[str]
) -> ImageSet | None:
    """An earlier torchvision download under `root`, in torchvision's own layout: <root>/FashionMNIST/raw
    (torchvision's datasets.FashionMNIST(root) anywhere), then <root>/torchvision/FashionMNIST/raw
    (where data.download=true puts it). Read like any idx folder, .gz or unzipped."""
    for folder in (root / dataset_class_name / "raw", root / "torchvision" / dataset_class_name / "raw"):
        image_set = _from_folder(folder, "torchvision files", class_names, tried, root / CACHE_FOLDER)
        if image_set:
            return image_set
    return None


def _from_download(dataset_class_name: str, root: Path, class_names: list[str], tried: list[str]) -> ImageSet | None:
    """torchvision's download, or None (noting in `tried` why it failed)."""
    tensors, reason = _download(dataset_class_name, root)
    if tensors is None:
        tried.append(f"torchvision's download failed ({reason})")
        return None
    return ImageSet(**tensors, source=f"torchvision download in {root / 'torchvision'}", class_names=class_names)


def load_fashionmnist(root: Path, download: bool) -> ImageSet:
    tried: list[str] = []
    # Files under data.root come first, the user's own idx folder then a torchvision download: the
    # user pointed at that folder, and a download there is not passed over for the system's copy.
    image_set = (
        _from_folder(root / "fashionmnist", "idx files", FASHION_CLASSES, tried, root / CACHE_FOLDER)
        or _from_torchvision_files("FashionMNIST", root, FASHION_CLASSES, tried)
        or _from_folder(DEBIAN_FASHION_MNIST, "Debian package", FASHION_CLASSES, tried, root / CACHE_FOLDER)
        or (download and _from_download("FashionMNIST", root, FASHION_CLASSES, tried))
    )
    if image_set:
        return image_set
    raise DataUnavailable(
        "FashionMNIST is not available: " + "; ".join(tried) + ". Get it in one of these ways: "
        "`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu); or copy the four idx .gz "
        f"files (train-images-idx3-ubyte.gz ...) into {root / 'fashionmnist'}; or set data.root to a folder "
        "holding torchvision's FashionMNIST/raw/ download; or, with internet, "
        "run with data.download=true so torchvision downloads it."
    )


def load_mnist(root: Path, download: bool) -> ImageSet:
    tried: list[str] = []
    image_set = (
        _from_folder(root / "mnist", "idx files", DIGIT_CLASSES, tried, root / CACHE_FOLDER)
        or _from_torchvision_files("MNIST", root, DIGIT_CLASSES, tried)
        or (download and _from_download("MNIST", root, DIGIT_CLASSES, tried))
    )
    if image_set:
        return image_set
    subset = root / "mnist-npm"
    image_set = _from_folder(subset, "npm package mnist", DIGIT_CLASSES, tried, root / CACHE_FOLDER)
    if image_set:
        image_set.note = (
            f"offline SUBSET of MNIST built from the npm package `mnist`: {len(image_set.train_images)} "
            f"train / {len(image_set.test_images)} test digits, not the full 60,000/10,000"
        )
        log.warning("MNIST: using the %s", image_set.note)
        return image_set
    raise DataUnavailable(
        "MNIST is not available: " + "; ".join(tried) + ". Get it in one of these ways: with "
        "internet, run with data.download=true so torchvision downloads it; or copy the four idx "
        f".gz files (train-images-idx3-ubyte.gz ...) into {root / 'mnist'}; or set data.root to a folder holding "
        "torchvision's MNIST/raw/ download; or, offline, run "
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
        images[:train_size],
        labels[:train_size],
        images[train_size:],
        labels[train_size:],
        source="generated (autoencoders.data.sources.make_synthetic)",
        class_names=[f"bar-{k}" for k in range(10)],
    )


def load_image_set(name: str, root: str | Path, download: bool) -> ImageSet:
    root = Path(root).expanduser()
    if name == "fashionmnist":
        return load_fashionmnist(root, download)
    if name == "mnist":
        return load_mnist(root, download)
    if name == "synthetic":
        return make_synthetic()
    raise DataUnavailable(
        f"data.name={name!r} is not a dataset; choose fashionmnist, mnist, synthetic or npz "
        "(with data.path=<file.npz>)."
    )
