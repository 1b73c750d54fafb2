"""Your own images from one NumPy .npz file: `ae-train data=npz data.path=<file>`.

Arrays, by name: `images` (N×H×W, or N×H×W×C with C = 1 or 3 channels last; uint8 0..255, or
floats in [0, 1]) and optional `labels` (N integers >= 0), `test_images` and `test_labels`.
Without `test_images`, `test_size` of the images are held out as the test set, chosen by
`split_seed`. Optional `factors` (N×K integer levels >= 0 of the factors that generated each
image; with `test_images`, also `test_factors`) and `factor_names` (K strings) make the
disentanglement metrics run (evaluation/disentanglement.py); the FactorVAE score is skipped for
them, since an npz file does not say that its images cover a full factorial grid. A set without labels gets label -1 everywhere and no class names; the views and
evaluations that need classes skip themselves. Every problem with the file is one
DataUnavailable naming the file and the array.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from autoencoders.data.sources import ImageSet
from autoencoders.errors import DataUnavailable

ARRAYS = ("images", "labels", "test_images", "test_labels", "factors", "test_factors", "factor_names")
NO_LABEL = -1
HOW_TO_SAVE = "Save it with np.savez(path, images=..., labels=...) (docs/data.md)."


def _read(path: Path) -> dict[str, np.ndarray]:
    """The known arrays of the file, refusing unknown names (a typo would silently drop labels)."""
    if not path.is_file():
        raise DataUnavailable(
            f"data.path={path} is not a file. Give the .npz file's path (absolute, or relative "
            "to the directory ae-train runs in)."
        )
    try:
        archive = np.load(path, allow_pickle=False)  # never unpickle objects from a data file
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        # numpy's own words for a text or pickle file advise loading it unsafely: never that.
        reason = "" if "pickle" in str(error) else f" ({error})"
        raise DataUnavailable(
            f"{path} is not an npz file{reason}: data=npz reads NumPy's .npz archives of named arrays. {HOW_TO_SAVE}"
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataUnavailable(f"{path} holds one unnamed array, not an .npz of named arrays. {HOW_TO_SAVE}")
    with archive:
        unknown = sorted(set(archive.files) - set(ARRAYS))
        if "images" not in archive.files or unknown:
            problems = ["no array named 'images'"] * ("images" not in archive.files)
            problem = " and ".join(problems + [f"unknown arrays {', '.join(unknown)}"] * bool(unknown))
            raise DataUnavailable(
                f"{path} has {problem}; its arrays are {', '.join(archive.files) or '(none)'}, "
                f"and the ones read are {', '.join(ARRAYS)}. {HOW_TO_SAVE}"
            )
        arrays = {}
        for name in archive.files:
            try:
                arrays[name] = archive[name]
            except (OSError, ValueError, zipfile.BadZipFile) as error:  # object arrays, a damaged member
                raise DataUnavailable(f"{path}: array '{name}' cannot be read ({error}). {HOW_TO_SAVE}") from None
    return arrays


def _images(path: Path, name: str, array: np.ndarray) -> Tensor:
    """(N, C, H, W): uint8 as it is, floats as float32; checked for shape, type and range."""
    where = f"{path}: array '{name}'"
    if array.ndim == 4 and array.shape[-1] not in (1, 3):
        hint = " (it looks like N×C×H×W; move the channels last)" if array.shape[1] in (1, 3) else ""
        raise DataUnavailable(f"{where} has shape {array.shape}: its last axis must be 1 or 3 channels{hint}.")
    if array.ndim not in (3, 4) or 0 in array.shape:
        raise DataUnavailable(f"{where} has shape {array.shape}; images are N×H×W (grey) or N×H×W×C (C = 1 or 3).")
    if array.dtype == np.uint8:
        pixels = torch.from_numpy(array.copy())
    elif np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array)
        if not finite.all():
            raise DataUnavailable(
                f"{where} has {array.size - int(finite.sum())} values that are NaN or infinite; "
                "every pixel must be a number in [0, 1]."
            )
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 1:
            raise DataUnavailable(
                f"{where} has floats from {low:g} to {high:g}; float pixels must lie in [0, 1] "
                "(divide 0..255 values by 255, or store them as uint8)."
            )
        pixels = torch.from_numpy(array.astype(np.float32))
    else:
        raise DataUnavailable(
            f"{where} has type {array.dtype}; pixels are uint8 (0..255) or floats in [0, 1] "
            f"(np.asarray({name}, dtype=np.uint8) converts 0..255 integers)."
        )
    pixels = pixels.unsqueeze(-1) if array.ndim == 3 else pixels
    return pixels.permute(0, 3, 1, 2).contiguous()


def _labels(path: Path, name: str, array: np.ndarray, count: int) -> Tensor:
    where = f"{path}: array '{name}'"
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise DataUnavailable(
            f"{where} has shape {array.shape} and type {array.dtype}; labels are one integer class index per image."
        )
    if len(array) != count:
        images = "test_images" if name.startswith("test_") else "images"
        raise DataUnavailable(
            f"{where} has {len(array)} labels for {count} images in '{images}'; they must match one to one."
        )
    if count and array.min() < 0:
        raise DataUnavailable(
            f"{where} has negative values (down to {array.min()}); labels are class indices 0, 1, 2 ..."
        )
    return torch.from_numpy(array.astype(np.int64))


def _factors(path: Path, name: str, array: np.ndarray, count: int) -> Tensor:
    where = f"{path}: array '{name}'"
    if array.ndim != 2 or len(array) != count or not np.issubdtype(array.dtype, np.integer) or array.shape[1] == 0:
        raise DataUnavailable(
            f"{where} has shape {array.shape} and type {array.dtype}; factors are {count}×K "
            "integers, the level of each of K factors for each image."
        )
    if array.min() < 0:
        raise DataUnavailable(f"{where} has negative values; factor levels are 0, 1, 2 ...")
    return torch.from_numpy(array.astype(np.int64))


def _attach_factors(
    path: Path,
    arrays: dict[str, np.ndarray],
    image_set: ImageSet,
    train_index: Tensor | None,
    test_index: Tensor | None,
) -> ImageSet:
    """The file's factors beside the splits (indexed like the images when the test set was held out)."""
    if "factors" not in arrays:
        for extra in ("test_factors", "factor_names"):
            if extra in arrays:
                raise DataUnavailable(f"{path} has '{extra}' but no 'factors'.")
        return image_set
    if ("test_images" in arrays) != ("test_factors" in arrays):
        raise DataUnavailable(f"{path}: 'test_factors' go with 'test_images', one row per test image.")
    if train_index is None:
        train = _factors(path, "factors", arrays["factors"], len(image_set.train_images))
        test = _factors(path, "test_factors", arrays["test_factors"], len(image_set.test_images))
    else:
        every = _factors(path, "factors", arrays["factors"], len(train_index) + len(test_index))
        train, test = every[train_index], every[test_index]
    if test.shape[1] != train.shape[1]:
        raise DataUnavailable(f"{path}: 'factors' has {train.shape[1]} columns and 'test_factors' {test.shape[1]}.")
    n_factors = train.shape[1]
    names = [f"factor_{k}" for k in range(n_factors)]
    if "factor_names" in arrays:
        given = arrays["factor_names"]
        if given.shape != (n_factors,) or given.dtype.kind != "U":
            raise DataUnavailable(
                f"{path}: 'factor_names' must be {n_factors} strings (one per column of 'factors'), "
                f"got shape {given.shape} and type {given.dtype}."
            )
        names = [str(name) for name in given]
    image_set.train_factors, image_set.test_factors, image_set.factor_names = train, test, names
    image_set.factor_sizes = [int(size) for size in torch.maximum(train.max(0).values, test.max(0).values) + 1]
    return image_set


def _check_pairs(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Labels for both splits or for neither; test labels only beside test images."""
    if "test_labels" in arrays and "test_images" not in arrays:
        raise DataUnavailable(f"{path} has 'test_labels' but no 'test_images'.")
    if "test_images" in arrays and ("labels" in arrays) != ("test_labels" in arrays):
        given, missing = ("labels", "test_labels") if "labels" in arrays else ("test_labels", "labels")
        raise DataUnavailable(f"{path} has '{given}' but no '{missing}'; label both splits or neither.")


def load_npz(path: str | Path, test_size: int, split_seed: int) -> ImageSet:
    """The file's images and labels, with `test_size` images held out when it has no test set."""
    path = Path(path).expanduser()
    arrays = _read(path)
    _check_pairs(path, arrays)
    images = _images(path, "images", arrays["images"])
    labels = _labels(path, "labels", arrays["labels"], len(images)) if "labels" in arrays else None
    train_index = test_index = None
    if "test_images" in arrays:
        test_images = _images(path, "test_images", arrays["test_images"])
        if test_images.shape[1:] != images.shape[1:]:
            raise DataUnavailable(
                f"{path}: 'test_images' are {_shape(test_images)} but 'images' are "
                f"{_shape(images)}; both splits need one image shape."
            )
        test_labels = None if labels is None else _labels(path, "test_labels", arrays["test_labels"], len(test_images))
    else:
        if len(images) < 2:
            raise DataUnavailable(
                f"{path} has {len(images)} image(s) and no 'test_images': holding data.test_size of "
                "them out for testing needs at least 2 (one to test, one to train). Add images, "
                "or give the file a 'test_images' array."
            )
        if not 0 < test_size < len(images):
            raise DataUnavailable(
                f"{path} has {len(images)} images and no 'test_images', so data.test_size of them "
                f"are held out for testing; it must be between 1 and {len(images) - 1}, "
                f"got {test_size}."
            )
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(split_seed))
        test_index, train_index = order[:test_size], order[test_size:]
        test_images, images = images[test_index], images[train_index]
        test_labels, labels = (labels[test_index], labels[train_index]) if labels is not None else (None, None)
    if labels is None:
        unlabelled = lambda tensor: torch.full((len(tensor),), NO_LABEL)  # noqa: E731
        image_set = ImageSet(
            images,
            unlabelled(images),
            test_images,
            unlabelled(test_images),
            source=f"npz file {path}",
            class_names=[],
            note="no labels",
        )
    else:
        n_classes = int(max(labels.max(), test_labels.max())) + 1
        image_set = ImageSet(
            images,
            labels,
            test_images,
            test_labels,
            source=f"npz file {path}",
            class_names=[str(index) for index in range(n_classes)],
        )
    return _attach_factors(path, arrays, image_set, train_index, test_index)


def _shape(images: Tensor) -> str:
    channels, height, width = images.shape[1:]
    return f"{height}×{width}×{channels}"


def load_arrays(path: str | Path) -> list[tuple[str, Tensor, Tensor | None]]:
    """Every image array of a data=npz file as it is, for a trained model to use (ae-predict):
    [("images", images, labels or None)], then ("test_images", ...) when the file has them.
    Images are (N, C, H, W), uint8 or float32 in [0, 1], checked as `load_npz` checks them."""
    path = Path(path).expanduser()
    arrays = _read(path)
    _check_pairs(path, arrays)
    found = []
    for name in ("images", "test_images"):
        if name in arrays:
            images = _images(path, name, arrays[name])
            label_name = "labels" if name == "images" else "test_labels"
            labels = _labels(path, label_name, arrays[label_name], len(images)) if label_name in arrays else None
            found.append((name, images, labels))
    return found
