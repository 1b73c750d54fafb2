"""Images whose generating factors are known: `data=shapes` (generated here) and `data=dsprites`
(DeepMind's published file), each with its factor levels beside the images.

`data=shapes` has the structure of dSprites (Matthey et al. 2017, github.com/deepmind/dsprites-
dataset): a white shape (square, ellipse, heart) on black at `scales` sizes, `orientations`
angles over 2π and `positions` × `positions` places, rasterised from the factor values, one
binary pixel per sample point. The full grid is 3 × 6 × 40 × 32 × 32 = 737,280 images at the
dSprites levels; `subsample` images of it are drawn uniformly without replacement (seed 0), so
every level of every factor occurs about equally often and the set stays a uniform sample of a
full factorial grid (what the FactorVAE score assumes). The set is cached as uint8 under
`<root>/shapes/` in a file named by a hash of its settings, written atomically.

`data=dsprites data.path=<dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz>` reads the published
file: `imgs` (0/1 uint8, scaled to 0/255 here) and `latents_classes` (the level of each factor).
Its pickled `metadata` is never read (np.load without pickles); the colour factor, with one
level, is dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from autoencoders import machine
from autoencoders.data.sources import ImageSet
from autoencoders.errors import ConfigError, DataUnavailable

log = logging.getLogger(__name__)
SHAPES = ("square", "ellipse", "heart")
FACTOR_NAMES = ("shape", "scale", "orientation", "position_x", "position_y")
DSPRITES_FACTORS = ("color", "shape", "scale", "orientation", "position_x", "position_y")  # latents_classes' columns
CHUNK = 2048  # images rasterised at once: 2048 × 64 × 64 float32 sample points are 32 MB


def factor_sizes(scales: int, orientations: int, positions: int) -> tuple[int, ...]:
    return (len(SHAPES), scales, orientations, positions, positions)


def rasterise(factors: Tensor, sizes: tuple[int, ...], side: int) -> Tensor:
    """uint8 images (N, 1, side, side), 255 inside the shape, of factor levels (N, 5).

    Scales run from 0.5 to 1 (as dSprites'), orientations over [0, 2π) and positions from 0 to 1
    of the free canvas, so a shape at any scale and angle stays inside the image."""
    _, n_scales, n_orientations, n_positions, _ = sizes
    coords = (torch.arange(side, dtype=torch.float32) + 0.5) / side
    images = []
    for chunk in factors.split(CHUNK):
        shape, scale, angle, pos_x, pos_y = chunk.T.float()
        radius = 0.16 * (0.5 + 0.5 * scale / max(n_scales - 1, 1))  # half-size, a fraction of the side
        angle = 2 * math.pi * angle / n_orientations
        centre_x = 0.2 + 0.6 * pos_x / max(n_positions - 1, 1)
        centre_y = 0.2 + 0.6 * pos_y / max(n_positions - 1, 1)
        dx = coords[None, None, :] - centre_x[:, None, None]
        dy = coords[None, :, None] - centre_y[:, None, None]
        cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
        # The point in the shape's own frame, in units of its radius.
        u = (cos * dx + sin * dy) / radius[:, None, None]
        v = (-sin * dx + cos * dy) / radius[:, None, None]
        inside_square = torch.maximum(u.abs(), v.abs()) <= 0.8
        inside_ellipse = u**2 + (v / 0.5) ** 2 <= 1  # elongated, so that its orientation shows
        hx, hy = 1.15 * u, -1.15 * v + 0.25  # the heart curve (x² + y² − 1)³ ≤ x² y³, point up
        inside_heart = (hx**2 + hy**2 - 1) ** 3 - hx**2 * hy**3 <= 0
        which = shape[:, None, None]
        inside = torch.where(which == 0, inside_square, torch.where(which == 1, inside_ellipse, inside_heart))
        images.append(inside.to(torch.uint8).mul_(255).unsqueeze(1))
    return torch.cat(images)


def grid_factors(index: Tensor, sizes: tuple[int, ...]) -> Tensor:
    """Factor levels (N, K) of flat indices into the full grid (the last factor varies fastest)."""
    levels = []
    for size in reversed(sizes):
        levels.append(index % size)
        index = index // size
    return torch.stack(levels[::-1], dim=1)


def load_shapes(
    root: str | Path,
    resolution: int,
    scales: int,
    orientations: int,
    positions: int,
    subsample: int | None,
    test_size: int,
) -> ImageSet:
    """The generated set: `subsample` images of the grid (None: all) for training and validation,
    `test_size` more for testing; from the cache under `root`/shapes when it was generated before."""
    sizes = factor_sizes(scales, orientations, positions)
    total = math.prod(sizes)
    wanted = total - test_size if subsample is None else subsample
    if test_size >= total or wanted + test_size > total:
        raise DataUnavailable(
            f"data=shapes has {total} images in its grid ({' × '.join(map(str, sizes))}), fewer than "
            f"data.subsample + data.test_size = {wanted} + {test_size}; lower them, or raise "
            "data.scales, data.orientations or data.positions."
        )
    check_grid_fits(resolution, positions, wanted + test_size)
    settings = {"resolution": resolution, "sizes": sizes, "subsample": wanted, "test_size": test_size, "version": 1}
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    path = Path(root).expanduser() / "shapes" / f"shapes-{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as cached:
            images, factors = torch.from_numpy(cached["images"]), torch.from_numpy(cached["factors"])
    else:
        chosen = torch.from_numpy(np.random.default_rng(0).choice(total, wanted + test_size, replace=False))
        factors = grid_factors(chosen, sizes)
        images = rasterise(factors, sizes, resolution)
        _save_atomically(path, images=images.numpy(), factors=factors.numpy())
        log.info("Generated %d shapes images (%s) into %s", len(images), settings, path)
    return _factor_set(
        images, factors, list(FACTOR_NAMES), sizes, len(images) - test_size, f"generated shapes in {path}"
    )


def check_grid_fits(resolution: int, positions: int, images: int) -> None:
    """Refuse, before generating anything, positions finer than the pixels (they draw the same
    images, and the grid's size outgrows numpy's sampling) and a set that cannot fit in memory:
    the images as bytes, and one chunk's float32 sample points (six arrays of them in `rasterise`)."""
    if positions > resolution:
        raise ConfigError(
            f"data.positions={positions} is more than data.resolution={resolution}: positions closer than a pixel "
            f"draw the same images. Use at most {resolution} positions, or a larger data.resolution."
        )
    needed = images * resolution**2 + min(CHUNK, images) * resolution**2 * 4 * 6
    memory = machine.memory()
    if memory is not None and needed > memory:
        raise ConfigError(
            f"data.resolution={resolution}: {images} images of {resolution}×{resolution} pixels need at least "
            f"{needed / 2**30:,.1f} GiB, more than this machine's {memory / 2**30:.1f} GiB of memory. Use a smaller "
            "data.resolution (dSprites' is 64), or fewer images (data.subsample, data.test_size)."
        )


def _save_atomically(path: Path, **arrays: np.ndarray) -> None:
    """Write the cache beside its final name, then rename: a reader sees the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with open(partial, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(partial, path)


def _factor_set(
    images: Tensor, factors: Tensor, names: list[str], sizes: tuple[int, ...], n_train: int, source: str
) -> ImageSet:
    """The first n_train images for training (and validation), the rest for testing; labels are the shape."""
    factors = factors.long()
    labels = factors[:, names.index("shape")] if "shape" in names else torch.full((len(images),), -1)
    class_names = list(SHAPES) if "shape" in names else []
    return ImageSet(
        images[:n_train],
        labels[:n_train],
        images[n_train:],
        labels[n_train:],
        source=source,
        class_names=class_names,
        train_factors=factors[:n_train],
        test_factors=factors[n_train:],
        factor_names=names,
        factor_sizes=list(sizes),
        factorial=True,
    )


def load_dsprites(path: str | Path, subsample: int | None, test_size: int) -> ImageSet:
    """The published dSprites file: `subsample` images (None: all) for training and validation and
    `test_size` more for testing, drawn uniformly without replacement (seed 0)."""
    path = Path(path).expanduser()
    how = (
        "Give data.path the published dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz "
        "(github.com/deepmind/dsprites-dataset)."
    )
    if not path.is_file():
        raise DataUnavailable(f"data.path={path} is not a file. {how}")
    try:
        archive = np.load(path, allow_pickle=False)  # its `metadata` is a pickle: never loaded
        with archive:
            missing = [name for name in ("imgs", "latents_classes") if name not in archive.files]
            if missing:
                raise DataUnavailable(
                    f"{path} has no array {', '.join(missing)}; its arrays are {', '.join(archive.files)}. {how}"
                )
            imgs, classes = archive["imgs"], archive["latents_classes"]
    except (OSError, ValueError, zipfile.BadZipFile, AttributeError) as error:
        raise DataUnavailable(f"{path} is not a readable dSprites .npz file ({error}). {how}") from None
    if imgs.ndim != 3 or imgs.dtype != np.uint8 or imgs.max(initial=0) > 1:
        raise DataUnavailable(f"{path}: 'imgs' must be N×H×W uint8 of 0/1, got {imgs.shape} {imgs.dtype}. {how}")
    if classes.shape != (len(imgs), len(DSPRITES_FACTORS)) or not np.issubdtype(classes.dtype, np.integer):
        raise DataUnavailable(
            f"{path}: 'latents_classes' must be {len(imgs)}×{len(DSPRITES_FACTORS)} integers, "
            f"got {classes.shape} {classes.dtype}. {how}"
        )
    wanted = len(imgs) - test_size if subsample is None else subsample
    if not 0 < test_size < len(imgs) or wanted + test_size > len(imgs):
        raise DataUnavailable(
            f"{path} has {len(imgs)} images, fewer than data.subsample + data.test_size = "
            f"{wanted} + {test_size}; lower them."
        )
    chosen = np.sort(np.random.default_rng(0).choice(len(imgs), wanted + test_size, replace=False))
    chosen = np.random.default_rng(1).permutation(chosen)  # sorted reads, shuffled order
    sizes = classes.max(axis=0) + 1
    kept = [k for k, size in enumerate(sizes) if size > 1]  # colour has one level
    images = torch.from_numpy(imgs[chosen] * np.uint8(255)).unsqueeze(1)  # 0/1 -> 0/255, not /255
    factors = torch.from_numpy(classes[chosen][:, kept].astype(np.int64))
    return _factor_set(
        images,
        factors,
        [DSPRITES_FACTORS[k] for k in kept],
        tuple(int(sizes[k]) for k in kept),
        wanted,
        f"dSprites file {path}",
    )
