"""The convolutional network of Burgess et al. 2018 ("Understanding disentangling in β-VAE"), as
disentanglement_lib builds it for Locatello et al. 2019 (model/net=burgess): 64 x 64 images only.

Encoder: four 4 x 4 stride-2 convolutions of 32, 32, 64 and 64 channels with ReLU, flattened
(64 x 4 x 4), a 256-unit dense layer, then the code. Decoder: 256 and 1,024 units, reshaped to
64 x 4 x 4, transposed convolutions of 64, 32 and 32 channels and one to the image's channels.
No batch norm (disentanglement_lib's conv_encoder and deconv_decoder); the sigmoid output is its
Bernoulli decoder's mean.
"""

from __future__ import annotations

from autoencoders.errors import ConfigError
from autoencoders.nets.conv import ConvDecoder, ConvEncoder

SIDE = 64
SIZES = {"channels": (32, 32, 64, 64), "kernel": 4, "stride": 2, "batch_norm": False, "dense": (256,)}


def _check_side(input_shape: tuple[int, int, int]) -> None:
    if tuple(input_shape[1:]) != (SIDE, SIDE):
        raise ConfigError(
            f"The burgess network takes {SIDE}x{SIDE} images (as disentanglement_lib builds it), got "
            f"{input_shape[1]}x{input_shape[2]}. For other sides use model/net=conv with its sizes: "
            "model.net.channels=[32,32,64,64] model.net.kernel=4 model.net.batch_norm=false model.net.dense=[256]."
        )


class BurgessDecoder(ConvDecoder):
    def __init__(self, input_shape: tuple[int, int, int], latent_dim: int) -> None:
        _check_side(input_shape)
        super().__init__(input_shape, latent_dim, **SIZES, feature_activation=True)


class BurgessEncoder(ConvEncoder):
    mirror = BurgessDecoder

    def __init__(self, input_shape: tuple[int, int, int], out_dim: int, condition_dim: int = 0) -> None:
        _check_side(input_shape)
        super().__init__(input_shape, out_dim, condition_dim, **SIZES)
