"""The multilayer perceptron encoder and decoder (model.net=mlp), sized from the data's input shape.

Every encoder maps images (B, C, H, W) to (B, out_dim) and every decoder maps (B, latent_dim)
to images of the input shape, with a sigmoid output so pixels stay in [0, 1]. A conditional
model's encoder takes `condition_dim` extra inputs beside the image (nets/families.py).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class MLPEncoder(nn.Sequential):
    """Flatten -> 256 -> 64 -> out_dim, ReLU between layers, linear output."""

    def __init__(self, input_shape: tuple[int, int, int], out_dim: int, condition_dim: int = 0) -> None:
        super().__init__(
            nn.Flatten(),
            nn.Linear(math.prod(input_shape) + condition_dim, 256),
            nn.ReLU(),
            nn.Linear(256, 64),
            nn.ReLU(),
            nn.Linear(64, out_dim),
        )

    def forward(self, x: Tensor, *condition: Tensor) -> Tensor:
        """x (B, C, H, W); condition: (B, condition_dim) joined to the flattened image (none: plain)."""
        if condition:
            x = torch.cat([x.flatten(1), *condition], dim=1)  # Flatten then leaves it as it is
        return super().forward(x)


class MLPDecoder(nn.Module):
    """latent_dim -> 64 -> 256 -> pixels, sigmoid output, reshaped to the input shape."""

    def __init__(self, input_shape: tuple[int, int, int], latent_dim: int) -> None:
        super().__init__()
        self.input_shape = input_shape
        self.layers = nn.Sequential(
            nn.Linear(latent_dim, 64),
            nn.ReLU(),
            nn.Linear(64, 256),
            nn.ReLU(),
            nn.Linear(256, math.prod(input_shape)),
            nn.Sigmoid(),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.layers(z).view(-1, *self.input_shape)
