"""The convolutional encoder and decoder (model/net=conv), sized from the data's input shape.

Stages of one convolution each (`channels`, `kernel`, `stride`, padding (kernel - 1) // 2), with
batch norm (`batch_norm`) and ReLU after each; the features are flattened and pass through
`dense` hidden layers (ReLU) to the code. The decoder mirrors it: dense layers up to the feature
map, transposed convolutions back to the image, a sigmoid at the end. The defaults, two 16/32-channel
3 x 3 stride-2 stages and no dense layer, are the convolutional network of Diaz 2026 ("Autoencoder
Architecture"). Image sides must be divisible by stride ** stages (4 by default): the transposed
stack then gives back exactly the input's size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from autoencoders.errors import ConfigError
from autoencoders.nets.mlp import dense_stack


def padding_of(kernel: int, stride: int) -> tuple[int, int]:
    """(padding, output_padding) that make each convolution divide a side by `stride` and each
    transposed one multiply it back: a transposed convolution gives (H - 1) s - 2p + k + op = s H."""
    padding = (kernel - 1) // 2
    output_padding = stride - kernel + 2 * padding
    if not 0 <= output_padding < max(stride, 1):
        raise ConfigError(
            f"model.net: kernel {kernel} with stride {stride} cannot be inverted exactly by a transposed "
            "convolution; use a kernel of stride + 1 or stride + 2 (3 or 4 for stride 2)."
        )
    return padding, output_padding


def feature_shape(
    input_shape: Sequence[int], channels: Sequence[int], stride: int, family: str = "conv"
) -> tuple[int, int, int]:
    """The feature map after the convolutions; ConfigError unless both sides divide by stride ** stages."""
    _, height, width = input_shape
    factor = stride ** len(channels)
    if height % factor or width % factor:
        raise ConfigError(
            f"The {family} network needs image sides divisible by {factor} (stride {stride}, "
            f"{len(channels)} stages), got {height}x{width}; use model/net=mlp for this data, or fewer stages."
        )
    return (channels[-1], height // factor, width // factor)


class ConvDecoder(nn.Module):
    """dense layers -> feature map, then per stage ConvT (+BN) + ReLU, the last ConvT to the image's
    channels with a sigmoid. `feature_activation`: a ReLU on the feature map itself (the Burgess net)."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        latent_dim: int,
        channels: Sequence[int] = (16, 32),
        kernel: int = 3,
        stride: int = 2,
        batch_norm: bool = True,
        dense: Sequence[int] = (),
        feature_activation: bool = False,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.feature_shape = feature_shape(input_shape, channels, stride)
        padding, output_padding = padding_of(kernel, stride)
        head = dense_stack([latent_dim, *reversed(list(dense)), math.prod(self.feature_shape)], "relu")
        if feature_activation:
            head.append(nn.ReLU())
        self.head = head[0] if len(head) == 1 else nn.Sequential(*head)
        layers: list[nn.Module] = []
        outputs = [input_shape[0], *channels[:-1]]
        for stage in reversed(range(len(channels))):
            layers.append(nn.ConvTranspose2d(channels[stage], outputs[stage], kernel, stride, padding, output_padding))
            if stage > 0:
                layers += [nn.BatchNorm2d(outputs[stage])] if batch_norm else []
                layers.append(nn.ReLU())
        self.layers = nn.Sequential(*layers, nn.Sigmoid())

    def forward(self, z: Tensor) -> Tensor:
        return self.layers(self.head(z).view(-1, *self.feature_shape))


class ConvEncoder(nn.Module):
    """Per stage Conv (+BN) + ReLU, flatten, dense layers (ReLU) -> out_dim.

    A conditional model's `condition_dim` inputs join the flattened features, before the dense layers."""

    mirror = ConvDecoder  # the decoder built when model.net.decoder names no class of its own

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        out_dim: int,
        condition_dim: int = 0,
        channels: Sequence[int] = (16, 32),
        kernel: int = 3,
        stride: int = 2,
        batch_norm: bool = True,
        dense: Sequence[int] = (),
    ) -> None:
        super().__init__()
        features = feature_shape(input_shape, channels, stride)
        padding, _ = padding_of(kernel, stride)
        layers: list[nn.Module] = []
        for inputs, outputs in zip([input_shape[0], *channels[:-1]], channels):
            layers.append(nn.Conv2d(inputs, outputs, kernel, stride, padding))
            layers += [nn.BatchNorm2d(outputs)] if batch_norm else []
            layers.append(nn.ReLU())
        self.features = nn.Sequential(*layers, nn.Flatten())
        head = dense_stack([math.prod(features) + condition_dim, *dense, out_dim], "relu")
        self.head = head[0] if len(head) == 1 else nn.Sequential(*head)

    def forward(self, x: Tensor, *condition: Tensor) -> Tensor:
        """x (B, C, H, W); condition: (B, condition_dim) joined to the flattened features (none: plain)."""
        features = self.features(x)
        if condition:
            features = torch.cat([features, *condition], dim=1)
        return self.head(features)
