"""The multilayer perceptron encoder and decoder (model/net=mlp), sized from the data's input shape.

The default, hidden [256, 64] with ReLU, is the fully connected network of Diaz 2026 ("Autoencoder
Architecture"); Chen et al. 2018's is hidden [1200, 1200], Burda et al. 2016's IWAE hidden
[200, 200] with tanh. The decoder mirrors the encoder: `hidden` lists the widths from the image
side, and the decoder goes through them in reverse. Any image shape is accepted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from autoencoders.errors import ConfigError

# model.net.activation -> the layer between hidden layers; the names are config_keys.NET_ACTIVATIONS.
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}


def activation(name: str) -> nn.Module:
    """A new layer of the activation `name` (model.net.activation)."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"model.net.activation={name!r} is not allowed: it must be one of {', '.join(ACTIVATIONS)}.")
    return ACTIVATIONS[name]()


def dense_stack(widths: Sequence[int], act: str) -> list[nn.Module]:
    """Linear layers through `widths` (inputs first), the activation after every one but the last."""
    layers: list[nn.Module] = []
    for index, (inputs, outputs) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(inputs, outputs))
        if index < len(widths) - 2:
            layers.append(activation(act))
    return layers


class MLPDecoder(nn.Module):
    """latent_dim -> hidden[-1] -> ... -> hidden[0] -> pixels, sigmoid output, reshaped to the input shape."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        latent_dim: int,
        hidden: Sequence[int] = (256, 64),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        widths = [latent_dim, *reversed(list(hidden)), math.prod(input_shape)]
        self.layers = nn.Sequential(*dense_stack(widths, activation), nn.Sigmoid())

    def forward(self, z: Tensor) -> Tensor:
        return self.layers(z).view(-1, *self.input_shape)


class MLPEncoder(nn.Sequential):
    """Flatten -> hidden[0] -> ... -> hidden[-1] -> out_dim, the activation between layers, linear output.

    A conditional model's `condition_dim` inputs join the flattened image."""

    mirror = MLPDecoder  # the decoder built when model.net.decoder names no class of its own

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        out_dim: int,
        condition_dim: int = 0,
        hidden: Sequence[int] = (256, 64),
        activation: str = "relu",
    ) -> None:
        widths = [math.prod(input_shape) + condition_dim, *hidden, out_dim]
        super().__init__(nn.Flatten(), *dense_stack(widths, activation))

    def forward(self, x: Tensor, *condition: Tensor) -> Tensor:
        """x (B, C, H, W); condition: (B, condition_dim) joined to the flattened image (none: plain)."""
        if condition:
            x = torch.cat([x.flatten(1), *condition], dim=1)  # Flatten then leaves it as it is
        return super().forward(x)
