"""The networks of Diaz 2026, "Autoencoder Architecture: From Pixel Space to Latent Space": parameter counts, shapes, sizes derived from the input."""

import pytest
import torch

from autoencoders.errors import ConfigError
from autoencoders.models.autoencoder import Autoencoder
from autoencoders.nets.families import build_nets


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(("net", "expected"), [("mlp", 439_728), ("conv", 111_649)])
def test_parameter_counts_match_tutorial_000(net, expected):
    model = Autoencoder(input_shape=[1, 28, 28], net=net, latent_dim=32)
    assert n_params(model) == expected


@pytest.mark.parametrize("net", ["mlp", "conv"])
@pytest.mark.parametrize("latent_dim", [2, 32])
def test_shapes_round_trip(net, latent_dim):
    encoder, decoder = build_nets(net, (1, 28, 28), latent_dim, latent_dim)
    x = torch.rand(5, 1, 28, 28)
    z = encoder(x)
    assert z.shape == (5, latent_dim)
    x_hat = decoder(z)
    assert x_hat.shape == x.shape
    assert x_hat.min() >= 0 and x_hat.max() <= 1  # sigmoid output


def test_conv_sizes_follow_the_input_shape():
    # 1568 = 32 * 7 * 7 only for 28x28 inputs; 32x32x3 images give 32 * 8 * 8 = 2048.
    encoder, decoder = build_nets("conv", (3, 32, 32), 16, 16)
    assert encoder.head.in_features == 2048
    assert decoder(encoder(torch.rand(2, 3, 32, 32))).shape == (2, 3, 32, 32)
    mlp_encoder, _ = build_nets("mlp", (3, 32, 32), 16, 16)
    assert mlp_encoder[1].in_features == 3 * 32 * 32


def test_unknown_net_and_bad_sides_are_config_errors():
    with pytest.raises(
        ConfigError,
        match=r"model.net='resnet' is not allowed: model.net must be a family \(mlp, conv, burgess, residual\)",
    ):
        build_nets("resnet", (1, 28, 28), 8, 8)
    with pytest.raises(ConfigError, match="divisible by 4"):
        build_nets("conv", (1, 30, 30), 8, 8)


def test_latent_dim_must_be_positive():
    with pytest.raises(
        ConfigError, match="model.latent_dim=-3 is not allowed: model.latent_dim must be an integer >= 1"
    ):
        Autoencoder(input_shape=[1, 28, 28], latent_dim=-3)
