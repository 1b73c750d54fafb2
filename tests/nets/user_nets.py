"""Networks of a user's own, as docs/models.md says to write them (importable, constructor arguments
input_shape and out_dim or latent_dim, then the keys of model.net)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class TinyEncoder(nn.Module):
    """Flatten -> width -> out_dim (+ extra_outputs, to make a wrong network on purpose)."""

    def __init__(
        self, input_shape, out_dim: int, condition_dim: int = 0, width: int = 8, extra_outputs: int = 0
    ) -> None:
        super().__init__()
        self.width = width
        self.layers = nn.Sequential(
            nn.Linear(math.prod(input_shape) + condition_dim, width),
            nn.ReLU(),
            nn.Linear(width, out_dim + extra_outputs),
        )

    def forward(self, x: Tensor, *condition: Tensor) -> Tensor:
        return self.layers(torch.cat([x.flatten(1), *condition], dim=1))


class TinyDecoder(nn.Module):
    def __init__(self, input_shape, latent_dim: int, width: int = 8, extra_outputs: int = 0) -> None:
        super().__init__()
        self.width, self.input_shape = width, tuple(input_shape)
        self.layers = nn.Sequential(
            nn.Linear(latent_dim, width), nn.ReLU(), nn.Linear(width, math.prod(input_shape)), nn.Sigmoid()
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.layers(z).view(-1, *self.input_shape)


class FlatDecoder(TinyDecoder):
    """Forgets to reshape: (B, pixels) instead of images."""

    def forward(self, z: Tensor) -> Tensor:
        return self.layers(z)
