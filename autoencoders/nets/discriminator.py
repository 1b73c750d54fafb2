"""The adversarial models' discriminator on codes (the aae, FactorVAE)."""

from __future__ import annotations

from torch import nn


class Discriminator(nn.Sequential):
    """code (B, latent_dim) -> `depth` hidden layers of `width` units -> one logit (B,).

    Leaky ReLU between layers with `negative_slope` (0: ReLU). The adversarial models use it to
    tell codes from prior draws (the aae) or q(z) samples from their permuted copies."""

    def __init__(self, latent_dim: int, width: int, depth: int, negative_slope: float = 0.0) -> None:
        layers: list[nn.Module] = []
        for inputs in [latent_dim] + [width] * (depth - 1):
            layers += [nn.Linear(inputs, width), nn.LeakyReLU(negative_slope) if negative_slope else nn.ReLU()]
        super().__init__(*layers, nn.Linear(width if depth else latent_dim, 1), nn.Flatten(0))
