"""Plain encoder and decoder networks (tutorial 000), built from the data's input shape.

Every encoder maps images (B, C, H, W) to (B, out_dim) and every decoder maps (B, latent_dim)
to images of the input shape, with a sigmoid output so pixels stay in [0, 1]. Models that need
two encoder heads (the VAE's mean and log-variance) ask for out_dim = 2 * latent_dim.

Conditional models (the cvae) give the encoders `condition_dim` extra inputs: the mlp encoder
takes them beside the flattened image, the conv encoder beside its flattened features, just
before the latent head. Their decoders take [z, condition], so they are built for
latent_dim + condition_dim inputs (`build_nets`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from autoencoders.errors import ConfigError
from autoencoders.schema import check_value

InputShape = tuple[int, int, int]


class MLPEncoder(nn.Sequential):
    """Flatten -> 256 -> 64 -> out_dim, ReLU between layers, linear output."""

    def __init__(self, input_shape: InputShape, out_dim: int, condition_dim: int = 0) -> None:
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

    def __init__(self, input_shape: InputShape, latent_dim: int) -> None:
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


def _conv_feature_shape(input_shape: InputShape) -> InputShape:
    """Shape after the two stride-2 convolutions (k3, p1): each halves H and W, rounding up."""
    _, height, width = input_shape
    for _ in range(2):
        height, width = (height + 1) // 2, (width + 1) // 2
    return (32, height, width)


class ConvEncoder(nn.Module):
    """Conv(C->16, s2)+BN+ReLU, Conv(16->32, s2)+BN+ReLU, Linear -> out_dim."""

    def __init__(self, input_shape: InputShape, out_dim: int, condition_dim: int = 0) -> None:
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

    def __init__(self, input_shape: InputShape, latent_dim: int) -> None:
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


# model.net -> (encoder, decoder); the names are schema.NETS.
NETS: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "mlp": (MLPEncoder, MLPDecoder),
    "conv": (ConvEncoder, ConvDecoder),
}


def build_nets(
    net: str, input_shape: InputShape, latent_dim: int, encoder_out: int, condition_dim: int = 0
) -> tuple[nn.Module, nn.Module]:
    """Encoder and decoder of the named network family for images of `input_shape`; with
    `condition_dim` > 0, both also take that many condition inputs (see the module docstring)."""
    check_value("model.net", net)
    encoder, decoder = NETS[net]
    return encoder(input_shape, encoder_out, condition_dim), decoder(input_shape, latent_dim + condition_dim)


class Discriminator(nn.Sequential):
    """code (B, latent_dim) -> `depth` hidden layers of `width` units -> one logit (B,).

    Leaky ReLU between layers with `negative_slope` (0: ReLU). The adversarial models use it to
    tell codes from prior draws (the aae) or q(z) samples from their permuted copies."""

    def __init__(self, latent_dim: int, width: int, depth: int, negative_slope: float = 0.0) -> None:
        layers: list[nn.Module] = []
        for inputs in [latent_dim] + [width] * (depth - 1):
            layers += [nn.Linear(inputs, width), nn.LeakyReLU(negative_slope) if negative_slope else nn.ReLU()]
        super().__init__(*layers, nn.Linear(width if depth else latent_dim, 1), nn.Flatten(0))
