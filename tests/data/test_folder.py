"""A folder of PNG/JPEG images for a trained model: which files, their shapes from the header,
their exact pixels, and the modes refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from autoencoders.data.folder import image_files, image_shape, read_image
from autoencoders.errors import DataUnavailable


def test_files_are_the_folders_images_by_name_and_pixels_are_exact(tmp_path):
    grey = np.arange(6 * 5, dtype=np.uint8).reshape(6, 5) * 8
    colour = np.random.default_rng(0).integers(0, 256, (4, 3, 3), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "b.png")
    Image.fromarray(colour).save(tmp_path / "a.PNG")
    Image.fromarray(grey).save(tmp_path / "c.jpeg", quality=95)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    Image.fromarray(grey).save(tmp_path / "sub" / "skipped.png")
    files = image_files(tmp_path)
    assert [path.name for path in files] == ["a.PNG", "b.png", "c.jpeg"]
    assert [image_shape(path) for path in files] == [(3, 4, 3), (1, 6, 5), (1, 6, 5)]
    assert torch.equal(read_image(files[0]), torch.from_numpy(colour).permute(2, 0, 1))
    assert torch.equal(read_image(files[1]), torch.from_numpy(grey)[None])
    jpeg = read_image(files[2])
    assert jpeg.dtype == torch.uint8 and jpeg.shape == (1, 6, 5)
    assert (jpeg.int() - torch.from_numpy(grey)[None].int()).abs().max() <= 8  # lossy, but the same picture


def test_other_modes_are_refused_not_guessed(tmp_path):
    Image.fromarray(np.zeros((4, 4, 4), dtype=np.uint8), mode="RGBA").save(tmp_path / "alpha.png")
    with pytest.raises(DataUnavailable, match=r"alpha.png has PIL mode RGBA; .* Image.convert\('L'\)"):
        image_shape(tmp_path / "alpha.png")
    with pytest.raises(DataUnavailable, match="is not a folder"):
        image_files(tmp_path / "alpha.png")
