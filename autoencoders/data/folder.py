"""A folder of PNG or JPEG images, read for a trained model (ae-predict): the file list, each
file's size and mode from its header, and the pixels of a few files at a time, so a large folder
never sits in memory whole.

Greyscale (PIL mode L) and RGB images are read as they are; other modes (palette, transparency,
16-bit) are refused rather than converted, since any conversion would be a guess.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from autoencoders.errors import DataUnavailable

SUFFIXES = (".png", ".jpg", ".jpeg")
CHANNELS = {"L": 1, "RGB": 3}  # PIL mode -> channels


def image_files(folder: str | Path) -> list[Path]:
    """The folder's *.png, *.jpg and *.jpeg files (any case), sorted by name; not its subfolders."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataUnavailable(f"{folder} is not a folder; give a folder of PNG or JPEG images or an .npz file.")
    files = sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in SUFFIXES)
    if not files:
        raise DataUnavailable(
            f"{folder} holds no PNG or JPEG images (files ending in {', '.join(SUFFIXES)}; "
            "subfolders are not searched). Put the images in the folder itself, or give an .npz."
        )
    return files


def image_shape(path: Path) -> tuple[int, int, int]:
    """(channels, height, width) from the file's header, without decoding its pixels."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            mode, (width, height) = image.mode, image.size
    except Exception as error:  # noqa: BLE001 - PIL raises many types for a file that is no image
        raise DataUnavailable(_unreadable(path, error)) from None
    if mode not in CHANNELS:
        raise DataUnavailable(
            f"{path} has PIL mode {mode}; images are read as greyscale (L) or RGB as they are. "
            "Save it as greyscale or RGB without transparency (e.g. Image.convert('L') or "
            "Image.convert('RGB'))."
        )
    return CHANNELS[mode], height, width


def read_image(path: Path) -> Tensor:
    """The pixels of one image, (C, H, W) uint8."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in CHANNELS:
                image_shape(path)  # raises the message about modes
            pixels = np.asarray(image, dtype=np.uint8)
    except DataUnavailable:
        raise
    except Exception as error:  # noqa: BLE001 - truncated data, bad checksums: all mean "unreadable"
        raise DataUnavailable(_unreadable(path, error)) from None
    pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)


def _unreadable(path: Path, error: Exception) -> str:
    reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'no details'}"
    return f"{path} cannot be read as an image ({reason}). Replace or remove the file."
