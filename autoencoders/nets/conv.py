"""The convolutional encoder and decoder (model.net=conv): two stride-2 convolutions, sized from
the data's input shape.

Every encoder maps images (B, C, H, W) to (B, out_dim) and every decoder maps (B, latent_dim)
to images of the input shape, with a sigmoid output so pixels stay in [0, 1]. A conditional
model's encoder takes `condition_dim` extra inputs beside the image (nets/families.py).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from autoencoders.errors import ConfigError


def _conv_feature_shape(input_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """Shape after the two stride-2 convolutions (k3, p1): each halves H and W, rounding up."""
    _, height, width = input_shape
    for _ in range(2):
        height, width = (height + 1) // 2, (width + 1) // 2
    return (32, height, width)


class ConvEncoder(nn.Module):
    """Conv(C->16, s2)+BN+ReLU, Conv(16->32, s2)+BN+ReLU, Linear -> out_dim."""

    def __init__(self, input_shape: tuple[int, int, int], out_dim: int, condition_dim: int = 0) -> None:
        super().__init__()
        channels = input_shape[0]
        self.features = nn.Sequential(
            nn.Conv2d(channels, 16, kernel_size=3, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, stride=2, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.head = nn.Linear(math.prod(_conv_feature_shape(input_shape)) + condition_dim, out_dim)

    def forward(self, x: Tensor, *condition: Tensor) -> Tensor:
        """x (B, C, H, W); condition: (B, condition_dim) joined to the flattened features (none: plain)."""
        features = self.features(x)
        if condition:
            features = torch.cat([features, *condition], dim=1)
        return self.head(features)


class ConvDecoder(nn.Module):
    """Linear -> 32xH/4xW/4, ConvT(32->16, s2)+BN+ReLU, ConvT(16->C, s2), sigmoid."""

    def __init__(self, input_shape: tuple[int, int, int], latent_dim: int) -> None:
        super().__init__()
        self.input_shape = input_shape
        self.feature_shape = _conv_feature_shape(input_shape)
        channels, height, width = input_shape
        self.head = nn.Linear(latent_dim, math.prod(self.feature_shape))
        self.layers = nn.Sequential(
            nn.ConvTranspose2d(32, 16, kernel_size=3, stride=2, padding=1, output_padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.ConvTranspose2d(16, channels, kernel_size=3, stride=2, padding=1, output_padding=1),
            nn.Sigmoid(),
        )
        if (4 * self.feature_shape[1], 4 * self.feature_shape[2]) != (height, width):
            raise ConfigError(
                f"The conv network needs image sides divisible by 4, got {height}x{width}; "
                "use model.net=mlp for this data."
            )

    def forward(self, z: Tensor) -> Tensor:
        return self.layers(self.head(z).view(-1, *self.feature_shape))
