"""A small residual convolutional network for colour images of 32 to 64 pixels (model/net=residual).

Encoder: a 3 x 3 stem convolution to channels[0], then per stage a 3 x 3 stride-2 convolution to
that stage's channels and `blocks` residual blocks (two 3 x 3 convolutions with batch norm and an
identity skip, He et al. 2016), flattened into `dense` hidden layers and the code. The decoder
mirrors it: dense layers to the feature map, per stage the residual blocks and a 4 x 4 stride-2
transposed convolution, a 3 x 3 convolution to the image's channels, a sigmoid. Image sides must
be divisible by 2 ** stages (8 by default); at 32 x 32 the default's feature map is 128 x 4 x 4.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from autoencoders.nets.conv import feature_shape
from autoencoders.nets.mlp import dense_stack


def conv_bn_relu(inputs: int, outputs: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU()]


class ResidualBlock(nn.Module):
    """relu(x + BN(conv(relu(BN(conv(x)))))), channels and size kept."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *conv_bn_relu(channels, channels),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x + self.body(x))


class ResidualDecoder(nn.Module):
    def __init__(
        self,
        input_shape: tuple[int, int, int],
        latent_dim: int,
        channels: Sequence[int] = (32, 64, 128),
        blocks: int = 1,
        dense: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.feature_shape = feature_shape(input_shape, channels, 2, "residual")
        self.head = nn.Sequential(
            *dense_stack([latent_dim, *reversed(list(dense)), math.prod(self.feature_shape)], "relu"), nn.ReLU()
        )
        layers: list[nn.Module] = []
        outputs = [channels[0], *channels[:-1]]
        for stage in reversed(range(len(channels))):
            layers += [ResidualBlock(channels[stage]) for _ in range(blocks)]
            layers += [
                nn.ConvTranspose2d(channels[stage], outputs[stage], 4, 2, 1, bias=False),
                nn.BatchNorm2d(outputs[stage]),
                nn.ReLU(),
            ]
        self.layers = nn.Sequential(*layers, nn.Conv2d(channels[0], input_shape[0], 3, 1, 1), nn.Sigmoid())

    def forward(self, z: Tensor) -> Tensor:
        return self.layers(self.head(z).view(-1, *self.feature_shape))


class ResidualEncoder(nn.Module):
    mirror = ResidualDecoder  # the decoder built when model.net.decoder names no class of its own

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        out_dim: int,
        condition_dim: int = 0,
        channels: Sequence[int] = (32, 64, 128),
        blocks: int = 1,
        dense: Sequence[int] = (),
    ) -> None:
        super().__init__()
        features = feature_shape(input_shape, channels, 2, "residual")
        layers = conv_bn_relu(input_shape[0], channels[0])
        for inputs, outputs in zip([channels[0], *channels[:-1]], channels):
            layers += conv_bn_relu(inputs, outputs, stride=2)
            layers += [ResidualBlock(outputs) for _ in range(blocks)]
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Sequential(*dense_stack([math.prod(features) + condition_dim, *dense, out_dim], "relu"))

    def forward(self, x: Tensor, *condition: Tensor) -> Tensor:
        """x (B, C, H, W); condition: (B, condition_dim) joined to the flattened features (none: plain)."""
        features = self.features(x)
        if condition:
            features = torch.cat([features, *condition], dim=1)
        return self.head(features)
