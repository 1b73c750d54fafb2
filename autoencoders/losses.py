"""Pure loss functions. Each returns one value per image (shape (B,)); callers average.

Per-image values keep the units explicit: a model decides whether its objective is a
per-pixel mean (the plain autoencoders, as in tutorial 000) or a per-image sum (the VAE's
likelihood), and `test/mse` is always `squared_error(...).mean() / pixels`.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from autoencoders.errors import ConfigError


def squared_error(x_hat: Tensor, x: Tensor) -> Tensor:
    """Sum of squared pixel errors per image."""
    return (x_hat - x).pow(2).flatten(1).sum(1)


def binary_cross_entropy(x_hat: Tensor, x: Tensor) -> Tensor:
    """Sum of per-pixel binary cross-entropies per image (x_hat are probabilities)."""
    # F.binary_cross_entropy clamps log(0) to -100, so a saturated sigmoid stays finite.
    return F.binary_cross_entropy(x_hat, x, reduction="none").flatten(1).sum(1)


RECONSTRUCTION_LOSSES = {"mse": squared_error, "bce": binary_cross_entropy}


def reconstruction(name: str, x_hat: Tensor, x: Tensor) -> Tensor:
    """Per-image reconstruction loss summed over pixels; `name` is mse or bce."""
    if name not in RECONSTRUCTION_LOSSES:
        raise ConfigError(f"model.loss={name!r} is not a loss; choose one of {sorted(RECONSTRUCTION_LOSSES)}.")
    return RECONSTRUCTION_LOSSES[name](x_hat, x)


def pixels(x: Tensor) -> int:
    """Number of pixel values in one image of a batch."""
    return x[0].numel()


def mean_per_pixel(per_image: Tensor, x: Tensor) -> Tensor:
    """Batch mean of a per-image sum, divided by pixels: the per-pixel mean."""
    return per_image.mean() / pixels(x)

