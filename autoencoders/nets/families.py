"""The network families model.net names, and build_nets: an encoder and a decoder sized from the
data's input shape.

Every encoder maps images (B, C, H, W) to (B, out_dim) and every decoder maps (B, latent_dim)
to images of the input shape, with a sigmoid output so pixels stay in [0, 1]. Models that need
two encoder heads (the VAE's mean and log-variance) ask for out_dim = 2 * latent_dim.

Conditional models (the cvae) give the encoders `condition_dim` extra inputs: the mlp encoder
takes them beside the flattened image, the conv encoder beside its flattened features, just
before the latent head. Their decoders take [z, condition], so they are built for
latent_dim + condition_dim inputs.
"""

from __future__ import annotations

from torch import nn

from autoencoders.nets.conv import ConvDecoder, ConvEncoder
from autoencoders.nets.mlp import MLPDecoder, MLPEncoder
from autoencoders.schema import check_value

InputShape = tuple[int, int, int]

# model.net -> (encoder, decoder); the names are config_keys.NETS.
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
