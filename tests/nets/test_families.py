"""Networks as configs: the shipped families, the defaults bit for bit, sizes, keys and shape checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from autoencoders.errors import ConfigError
from autoencoders.models.autoencoder import Autoencoder
from autoencoders.nets.families import build_nets, check_shapes, family_name, network_size
from autoencoders.schema import check_value, shipped_nets


def old_mlp(input_shape, out_dim, latent_dim):
    """The mlp networks as written before networks were configs (Diaz 2026: 256-64, ReLU)."""
    pixels = math.prod(input_shape)
    encoder = nn.Sequential(
        nn.Flatten(), nn.Linear(pixels, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, out_dim)
    )
    decoder = nn.Module()
    decoder.layers = nn.Sequential(
        nn.Linear(latent_dim, 64), nn.ReLU(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, pixels), nn.Sigmoid()
    )
    return encoder, decoder


class ConvParts(nn.Module):
    """features then head, as the old conv encoder ran them."""

    def forward(self, x):
        return self.head(self.features(x))


def old_conv(input_shape, out_dim, latent_dim):
    """The conv networks as written before: two 3x3 stride-2 convolutions of 16 and 32 channels with BN."""
    channels, height, width = input_shape
    features = 32 * (height // 4) * (width // 4)
    encoder = ConvParts()
    encoder.features = nn.Sequential(
        nn.Conv2d(channels, 16, 3, 2, 1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, 2, 1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Flatten(),
    )
    encoder.head = nn.Linear(features, out_dim)
    decoder = nn.Module()
    decoder.head = nn.Linear(latent_dim, features)
    decoder.layers = nn.Sequential(
        nn.ConvTranspose2d(32, 16, 3, 2, 1, 1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.ConvTranspose2d(16, channels, 3, 2, 1, 1),
        nn.Sigmoid(),
    )
    return encoder, decoder


@pytest.mark.parametrize(("net", "old"), [("mlp", old_mlp), ("conv", old_conv)])
@pytest.mark.parametrize("input_shape", [(1, 28, 28), (3, 32, 32)])
def test_the_default_families_are_the_old_networks_bit_for_bit(net, old, input_shape):
    # Same modules, state_dict keys and initialisation order: from one seed, the same weights; and
    # the RNG is left where the old construction left it, so every later draw of a run is the same.
    torch.manual_seed(7)
    expected = old(input_shape, 16, 8)
    after_old = torch.rand(3)
    for config in (net, shipped_nets()[net]):  # by name (old runs, model.net=conv) and as the group's mapping
        torch.manual_seed(7)
        built = build_nets(config, input_shape, 8, 16)
        assert torch.equal(torch.rand(3), after_old)
        for new, reference in zip(built, expected):
            assert list(new.state_dict()) == list(reference.state_dict())
            assert all(torch.equal(value, reference.state_dict()[key]) for key, value in new.state_dict().items())
        x = torch.rand(4, *input_shape)
        assert torch.equal(built[0].eval()(x), expected[0].eval()(x))


@pytest.mark.parametrize(
    ("net", "input_shape"),
    [
        ("mlp", (1, 28, 28)),
        ({"_target_": "autoencoders.nets.mlp.MLPEncoder", "hidden": [200, 200], "activation": "tanh"}, (1, 28, 28)),
        ("conv", (3, 32, 32)),
        (
            {"_target_": "autoencoders.nets.conv.ConvEncoder", "channels": [8, 8, 8], "kernel": 4, "dense": [32]},
            (3, 64, 64),
        ),
        ("burgess", (1, 64, 64)),
        ("residual", (3, 32, 32)),
        ("residual", (3, 64, 64)),
    ],
)
def test_every_family_round_trips_images_with_conditions(net, input_shape):
    encoder, decoder = build_nets(net, input_shape, 6, 12, condition_dim=3)
    x = torch.rand(5, *input_shape)
    assert encoder(x, torch.zeros(5, 3)).shape == (5, 12)
    x_hat = decoder(torch.rand(5, 9))
    assert x_hat.shape == x.shape and x_hat.min() >= 0 and x_hat.max() <= 1
    check_shapes(encoder, decoder, x, 12, 9, 3)  # passes


def test_the_burgess_net_is_disentanglement_libs():
    encoder, decoder = build_nets("burgess", (1, 64, 64), 10, 20)
    convs = [layer for layer in encoder.features if isinstance(layer, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(32, (4, 4), (2, 2))] * 2 + [
        (64, (4, 4), (2, 2))
    ] * 2
    assert not any(isinstance(layer, nn.BatchNorm2d) for layer in encoder.modules())
    assert [layer.out_features for layer in encoder.head if isinstance(layer, nn.Linear)] == [256, 20]
    assert [layer.out_features for layer in decoder.head if isinstance(layer, nn.Linear)] == [256, 1024]
    assert isinstance(decoder.head[-1], nn.ReLU)  # dense(1024, relu), then the reshape to 64 x 4 x 4
    assert [layer.out_channels for layer in decoder.layers if isinstance(layer, nn.ConvTranspose2d)] == [64, 32, 32, 1]


def test_the_sides_each_family_accepts_are_checked_up_front():
    with pytest.raises(ConfigError, match=r"burgess network takes 64x64 images.*got 32x32.*model/net=conv"):
        build_nets("burgess", (1, 32, 32), 4, 4)
    with pytest.raises(ConfigError, match=r"residual network needs image sides divisible by 8 .*got 28x28"):
        build_nets("residual", (1, 28, 28), 4, 4)
    with pytest.raises(ConfigError, match=r"divisible by 8 \(stride 2, 3 stages\)"):
        build_nets({**shipped_nets()["conv"], "channels": [4, 4, 4]}, (1, 28, 28), 4, 4)
    with pytest.raises(ConfigError, match="kernel 4 with stride 1 cannot be inverted"):
        build_nets({**shipped_nets()["conv"], "kernel": 4, "stride": 1}, (1, 28, 28), 4, 4)
    for kernel in (2, 3, 4, 5, 6):  # every kernel inverts exactly at stride 2
        encoder, decoder = build_nets({**shipped_nets()["conv"], "kernel": kernel}, (1, 28, 28), 4, 4)
        assert decoder(encoder(torch.rand(2, 1, 28, 28))).shape == (2, 1, 28, 28)
    build_nets({**shipped_nets()["residual"], "channels": [8, 16]}, (1, 28, 28), 4, 4)  # 28 divides by 4


def test_the_decoder_is_set_apart_by_its_own_keys():
    config = {**shipped_nets()["mlp"], "decoder": {"hidden": [32], "activation": "tanh"}}
    encoder, decoder = build_nets(config, (1, 28, 28), 4, 4)
    assert [layer.out_features for layer in encoder if isinstance(layer, nn.Linear)] == [256, 64, 4]
    assert [layer.out_features for layer in decoder.layers if isinstance(layer, nn.Linear)] == [32, 784]
    assert isinstance(decoder.layers[1], nn.Tanh) and isinstance(encoder[2], nn.ReLU)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {**shipped_nets()["mlp"], "hiden": [8]},
            r"model.net.hiden is not a setting of the mlp network; its settings are activation, hidden",
        ),
        (
            {**shipped_nets()["mlp"], "hidden": [0]},
            r"model.net.hidden=\[0\] is not allowed: it must be a list of integers >= 1",
        ),
        ({**shipped_nets()["conv"], "channels": []}, r"model.net.channels=\[\] is not allowed: .* at least 1"),
        (
            {**shipped_nets()["mlp"], "activation": "gelu"},
            r"model.net.activation='gelu' is not allowed: it must be one of relu, tanh",
        ),
        (
            {**shipped_nets()["burgess"], "dense": [8]},
            r"model.net.dense is not a setting of the burgess network; its settings are none",
        ),
        (
            {**shipped_nets()["mlp"], "decoder": {"kernel": 3}},
            r"model.net.decoder.kernel is not a setting of the mlp network",
        ),
        ({**shipped_nets()["mlp"], "decoder": 3}, r"model.net.decoder=3 is not allowed: it must be a mapping"),
        (
            {"hidden": [8]},
            r"model.net=\{'hidden': \[8\]\} is not allowed: model.net must be a family .* or a mapping with a _target_",
        ),
        ("resnet", r"model.net='resnet' is not allowed"),
    ],
)
def test_bad_network_settings_name_the_key_and_what_is_allowed(value, message):
    with pytest.raises(ConfigError, match=message):
        check_value("model.net", value)


def test_a_class_of_your_own_takes_its_own_keys_and_bad_ones_are_named():
    mine = {
        "_target_": "tests.nets.user_nets.TinyEncoder",
        "width": 16,
        "decoder": {"_target_": "tests.nets.user_nets.TinyDecoder"},
    }
    check_value("model.net", mine)  # free keys: the class's constructor says which it takes
    encoder, decoder = build_nets(mine, (1, 28, 28), 4, 8)
    assert encoder.width == decoder.width == 16 and family_name(mine) == "tests.nets.user_nets.TinyEncoder"
    with pytest.raises(
        ConfigError,
        match=r"model.net: tests.nets.user_nets.TinyEncoder cannot be built with the sizes \['depth', 'width'\]",
    ):
        build_nets({**mine, "depth": 3}, (1, 28, 28), 4, 8)
    with pytest.raises(ConfigError, match=r"names no decoder of its own .* set model.net.decoder._target_"):
        build_nets({"_target_": "tests.nets.user_nets.TinyEncoder"}, (1, 28, 28), 4, 8)
    with pytest.raises(
        ConfigError, match=r"model.net._target_=nowhere.Net: cannot import its module 'nowhere' .*PYTHONPATH"
    ):
        build_nets({"_target_": "nowhere.Net"}, (1, 28, 28), 4, 8)
    with pytest.raises(
        ConfigError,
        match=r"model.net._target_=tests.nets.user_nets.nothing: tests.nets.user_nets has no nn.Module class",
    ):
        build_nets({"_target_": "tests.nets.user_nets.nothing"}, (1, 28, 28), 4, 8)


def test_wrong_shapes_are_one_paragraph_before_training():
    wrong = {
        "_target_": "tests.nets.user_nets.TinyEncoder",
        "width": 16,
        "extra_outputs": 1,
        "decoder": {"_target_": "tests.nets.user_nets.TinyDecoder"},
    }
    model = Autoencoder(input_shape=[1, 28, 28], net=wrong, latent_dim=4)
    with pytest.raises(
        ConfigError,
        match=r"model.net: the encoder turned images of shape \(2, 1, 28, 28\) into \(2, 5\); the model needs \(2, 4\)",
    ):
        model.check_network(torch.rand(2, 1, 28, 28))
    flat = {**wrong, "extra_outputs": 0, "decoder": {"_target_": "tests.nets.user_nets.FlatDecoder"}}
    with pytest.raises(
        ConfigError, match=r"model.net.decoder: codes of shape \(2, 4\) became \(2, 784\); .* \(2, 1, 28, 28\)"
    ):
        Autoencoder(input_shape=[1, 28, 28], net=flat, latent_dim=4).check_network(torch.rand(2, 1, 28, 28))


def test_the_shape_check_leaves_the_model_as_it_was():
    # Batch norm's running statistics and the train flag untouched, no random numbers drawn.
    model = Autoencoder(input_shape=[1, 28, 28], net="conv", latent_dim=4)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    torch.manual_seed(3)
    model.check_network(torch.rand(2, 1, 28, 28))
    state = torch.get_rng_state()
    torch.manual_seed(3)
    torch.rand(2, 1, 28, 28)
    assert torch.equal(torch.get_rng_state(), state)
    assert model.training and all(torch.equal(value, before[key]) for key, value in model.state_dict().items())


def test_sizes_are_counted_by_hand():
    # mlp, 784-256-64-32 and back: every multiply-add is a weight, once per image.
    mlp = Autoencoder(input_shape=[1, 28, 28], net="mlp", latent_dim=32).network_size()
    weights = 784 * 256 + 256 * 64 + 64 * 32
    assert mlp == {
        "encoder_parameters": weights + 256 + 64 + 32,
        "decoder_parameters": weights + 64 + 256 + 784,
        "multiply_adds": 2 * weights,
    }
    # conv on 28x28: a convolution costs out_positions x C_in x C_out x k^2; a transposed one in_positions x ...
    conv = Autoencoder(input_shape=[1, 28, 28], net="conv", latent_dim=32).network_size()
    encoder = 14 * 14 * 1 * 16 * 9 + 7 * 7 * 16 * 32 * 9 + 32 * 7 * 7 * 32
    decoder = 32 * 32 * 7 * 7 + 7 * 7 * 32 * 16 * 9 + 14 * 14 * 16 * 1 * 9
    assert conv["multiply_adds"] == encoder + decoder == 608_384
    assert conv["encoder_parameters"] + conv["decoder_parameters"] == 111_649
    assert network_size(*build_nets("mlp", (1, 4, 4), 2, 2), (1, 4, 4), 2)["multiply_adds"] == 2 * (
        16 * 256 + 256 * 64 + 64 * 2
    )
