"""What `ae-predict` feeds a trained model: a folder of PNG/JPEG images, a data=npz file, a split of
the run's own data, or (for --decode) a file of codes; each checked against what the run was
trained on before any model work starts, so a mismatch costs nothing and writes nothing.

Pixels go to the model as the DataModule gives them in training: floats in [0, 1] (uint8
divided by 255, float files as stored). Nothing is resized unless --resize asks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from autoencoders.data.batches import to_pixels
from autoencoders.data.folder import SUFFIXES, image_files, image_shape, read_image
from autoencoders.data.npz import load_arrays
from autoencoders.errors import ConfigError, DataUnavailable
from autoencoders.machinery.contract import is_conditional
from autoencoders.rundir.loading import instantiate

SPLITS = ("train", "val", "test")
RESIZE = "bilinear, antialiased (torch.nn.functional.interpolate)"


@dataclass
class Inputs:
    """Images to predict on, read `chunk` at a time: `read(start, stop)` gives those images as a
    list of (n, C, H, W) batches (uint8, or floats in [0, 1]); `shapes` maps each (C, H, W) found
    to the name of one image that has it."""

    description: str
    names: list[str]
    labels: Tensor | None
    shapes: dict[tuple[int, int, int], str]
    read: Callable[[int, int], list[Tensor]]
    pixels: str

    def __len__(self) -> int:
        return len(self.names)


def open_input(source: str | Path) -> Inputs:
    """A folder of images, one image file, or an .npz file, by what `source` is."""
    source = Path(source).expanduser()
    if source.is_dir():
        return open_images(image_files(source), f"folder {source}")
    if source.is_file() and source.suffix.lower() in SUFFIXES:
        return open_images([source], f"image {source}")
    if source.is_file():
        return open_npz(source)
    raise DataUnavailable(
        f"{source} does not exist; give a folder of PNG or JPEG images, an .npz file "
        "(data=npz format) or --split train|val|test."
    )


def open_images(files: list[Path], where: str) -> Inputs:
    """Image files; their headers are read now (size, mode), their pixels chunk by chunk."""
    shapes: dict[tuple[int, int, int], str] = {}
    for path in files:
        shapes.setdefault(image_shape(path), path.name)
    read = lambda start, stop: [read_image(path)[None] for path in files[start:stop]]  # noqa: E731
    return Inputs(
        f"{where} ({len(files)} image{'s' * (len(files) != 1)})",
        [path.name for path in files],
        None,
        shapes,
        read,
        "uint8 0..255 divided by 255",
    )


def open_npz(path: Path) -> Inputs:
    """An .npz file in the data=npz format: `images` then `test_images`, with their labels if any."""
    arrays = load_arrays(path)
    images = [images for _, images, _ in arrays]
    offsets = np.cumsum([0] + [len(part) for part in images])
    names = [f"{name}[{index}]" for name, part, _ in arrays for index in range(len(part))]
    shapes = {}
    for name, part, _ in arrays:
        shapes.setdefault(tuple(part.shape[1:]), f"{name}[0]")
    labels = torch.cat([labels for _, _, labels in arrays]) if arrays[0][2] is not None else None

    def read(start: int, stop: int) -> list[Tensor]:
        return [
            part[max(start - low, 0) : stop - low]
            for part, low in zip(images, offsets)
            if start < low + len(part) and stop > low
        ]

    pixels = "uint8 0..255 divided by 255" if images[0].dtype == torch.uint8 else "float32 in [0, 1] as stored"
    return Inputs(f"npz file {path} ({len(names)} images)", names, labels, shapes, read, pixels)


def open_split(cfg: Any, split: str) -> Inputs:
    """One split of the run's own data, as its DataModule made it (the same validation images,
    and for anomaly runs the same normal-class filter of train and val)."""
    if split not in SPLITS:
        raise DataUnavailable(f"--split {split} is not a split; choose one of {', '.join(SPLITS)}.")
    datamodule = instantiate(cfg.data, seed=cfg.seed)
    datamodule.setup("test")
    labels = datamodule.labels(split)
    return Inputs(
        f"the run's {split} split (data={datamodule.name}, {len(labels)} images)",
        [f"{split}[{index}]" for index in range(len(labels))],
        labels if datamodule.has_labels else None,
        {datamodule.input_shape: f"{split}[0]"},
        lambda start, stop: [datamodule.pixels(split, slice(start, stop))[0]],
        "as the run's DataModule gives them (floats in [0, 1])",
    )


def check_shapes(inputs: Inputs, trained: tuple[int, int, int], resize: bool) -> bool:
    """Raise DataUnavailable, naming both, when an image's channels differ from the run's, or its
    size does without `resize`. Returns whether any image will be resized."""
    channels, height, width = trained
    for (given_channels, given_height, given_width), example in sorted(inputs.shapes.items()):
        if given_channels != channels:
            raise DataUnavailable(
                f"{inputs.description}: {example} is {_kind(given_channels)} ({_shape(given_channels, given_height, given_width)}), "
                f"but the run was trained on {_kind(channels)} images ({_shape(*trained)}). Convert the images to "
                f"{_kind(channels)} first (e.g. PIL's Image.convert('{'L' if channels == 1 else 'RGB'}')); "
                "--resize changes sizes, never channels."
            )
        if (given_height, given_width) != (height, width) and not resize:
            raise DataUnavailable(
                f"{inputs.description}: {example} is {given_height}×{given_width} pixels, but the run was trained on "
                f"{height}×{width}. Pass --resize to scale every image to {height}×{width} ({RESIZE}), or resize "
                "them yourself."
            )
    return any(shape[1:] != (height, width) for shape in inputs.shapes)


def check_labels(inputs: Inputs, model: Any) -> None:
    """Conditional models (the cvae) need each image's class, within the classes they know."""
    if not is_conditional(model):
        return
    classes = model.hparams.num_classes
    if inputs.labels is None:
        raise DataUnavailable(
            f"The run's model ({type(model).__name__}) is conditional: it encodes and decodes every image with its "
            f"class label, and {inputs.description} has none. Give an .npz file with a 'labels' array (one class "
            f"index 0..{classes - 1} per image), or --split of the run's own data."
        )
    if len(inputs.labels) and not 0 <= int(inputs.labels.min()) <= int(inputs.labels.max()) < classes:
        raise DataUnavailable(
            f"{inputs.description} has labels {int(inputs.labels.min())}..{int(inputs.labels.max())}, "
            f"but the run's {type(model).__name__} knows classes 0..{classes - 1}."
        )


def pixels(batches: list[Tensor], size: tuple[int, int]) -> Tensor:
    """One chunk's images as float32 in [0, 1], (n, C, H, W), each batch scaled to `size` if it differs."""
    scaled = []
    for batch in batches:
        batch = to_pixels(batch)
        if tuple(batch.shape[2:]) != size:
            batch = F.interpolate(batch, size=size, mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)
        scaled.append(batch)
    return torch.cat(scaled)


def open_codes(path: str | Path, model: Any) -> tuple[Tensor, Tensor | None]:
    """The `codes` (N × latent_dim) and optional `labels` of an .npz (an ae-predict output), for --decode."""
    path = Path(path).expanduser()
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in ("codes", "labels") if name in archive.files}
    except (OSError, ValueError, AttributeError) as error:  # missing, not a zip, a bare .npy (no .files)
        raise DataUnavailable(
            f"{path} is not a readable .npz file of codes ({error}); give the output of ae-predict ... --what codes."
        ) from None
    latent_dim = model.hparams.latent_dim
    codes = arrays.get("codes")
    if codes is None or codes.ndim != 2 or codes.shape[1] != latent_dim or not np.issubdtype(codes.dtype, np.floating):
        found = "no array 'codes'" if codes is None else f"'codes' of shape {codes.shape} and type {codes.dtype}"
        raise DataUnavailable(
            f"{path} has {found}; the run's model decodes float codes of shape N×{latent_dim} "
            "(ae-predict ... --what codes writes them)."
        )
    labels = arrays.get("labels")
    if labels is not None and (labels.shape != (len(codes),) or not np.issubdtype(labels.dtype, np.integer)):
        raise DataUnavailable(
            f"{path} has 'labels' of shape {labels.shape} and type {labels.dtype}; they must be one "
            f"integer class per code ({len(codes)})."
        )
    labels = torch.from_numpy(labels.astype(np.int64)) if labels is not None else None
    inputs = Inputs(f"codes file {path}", [""] * len(codes), labels, {}, lambda start, stop: [], "")
    check_labels(inputs, model)
    return torch.from_numpy(codes.astype(np.float32)), labels


def _kind(channels: int) -> str:
    return "greyscale" if channels == 1 else "RGB" if channels == 3 else f"{channels}-channel"


def _shape(channels: int, height: int, width: int) -> str:
    return f"{height}×{width}×{channels}"


def check_out(out: str | Path) -> Path:
    """`out` as a path, when it names an .npz file in a place this process can write to (a folder
    that is missing is created then): checked before any model work, which a refused write would waste."""
    out = Path(out).expanduser()
    if out.suffix != ".npz" or out.is_dir() or out.with_suffix(".json").is_dir():
        raise ConfigError(
            f"--out {out} must name an .npz file to write (e.g. --out predictions.npz); its JSON "
            "sidecar goes beside it with the suffix .json."
        )
    folder = out.absolute().parent
    while not folder.exists() and folder != folder.parent:  # the nearest folder that exists
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        why = "a file, not a folder" if not folder.is_dir() else "a folder you cannot write to"
        raise ConfigError(
            f"--out {out} cannot be written: {folder} is {why}. Nothing was computed; choose an --out in a "
            "folder you can write to (a missing folder is created)."
        )
    return out


def check_not_read(out: Path, sidecar: Path, reads: list[Path | None]) -> None:
    """Refuse an `out` (or its `sidecar`) that is one of the files this command reads: the input,
    the checkpoint, the run's record or config; the same file by any path, hard or symbolic link."""
    for written in (out, sidecar):
        for read in reads:
            if read is not None and written.exists() and Path(read).exists() and os.path.samefile(written, read):
                raise ConfigError(
                    f"--out {out} would overwrite {read}, which this command reads"
                    + (f" ({written} is the same file)" if written != Path(read) else "")
                    + ". Nothing was computed; choose another --out (its sidecar is the same name with .json)."
                )


def check_chunk_size(chunk_size: int) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigError(
            f"--chunk-size {chunk_size} is not allowed: it is how many images go through the model at "
            "once, a whole number >= 1."
        )
    return chunk_size


def choose_device(name: str | None) -> torch.device:
    """`name` ("cpu", "cuda", "cuda:1", "mps"), by default the accelerator if there is one."""
    if name is None:
        mps = getattr(torch.backends, "mps", None)
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps and mps.is_available() else "cpu")
    try:
        chosen = torch.device(name)
        torch.empty(1, device=chosen)
    except (RuntimeError, AssertionError) as error:
        raise ConfigError(
            f"--device {name} cannot be used here ({str(error).splitlines()[0]}); choose cpu, or an "
            "accelerator this machine has (cuda, cuda:1, mps)."
        ) from None
    return chosen
