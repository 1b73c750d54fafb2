"""The plain autoencoder's loss terms against hand computation."""

import pytest
import torch

from autoencoders import losses
from autoencoders.errors import ConfigError
from autoencoders.models.autoencoder import Autoencoder


def test_squared_error_and_bce_per_image():
    x = torch.tensor([[[[0.0, 1.0], [0.5, 0.25]]]])
    x_hat = torch.tensor([[[[0.5, 0.5], [0.5, 0.75]]]])
    assert losses.squared_error(x_hat, x).item() == pytest.approx(0.25 + 0.25 + 0 + 0.25)
    bce = -(
        torch.log(torch.tensor(0.5)) * 2  # x=0 and x=1 against 0.5
        + 0.5 * torch.log(torch.tensor(0.5)) + 0.5 * torch.log(torch.tensor(0.5))
        + 0.25 * torch.log(torch.tensor(0.75)) + 0.75 * torch.log(torch.tensor(0.25))
    )  # fmt: skip
    assert losses.binary_cross_entropy(x_hat, x).item() == pytest.approx(bce.item(), rel=1e-6)


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_loss_is_per_pixel_mean_of_the_reconstruction_loss(loss):
    torch.manual_seed(0)
    model = Autoencoder(input_shape=[1, 28, 28], net="mlp", latent_dim=4, loss=loss)
    x = torch.rand(3, 1, 28, 28)
    terms, x_hat = model.loss_terms(x)
    x_hat_again = model.reconstruct(x)
    if loss == "mse":
        expected = torch.nn.functional.mse_loss(x_hat_again, x)  # mean over batch and pixels
    else:
        expected = torch.nn.functional.binary_cross_entropy(x_hat_again, x)
    assert torch.allclose(terms["loss"], expected, rtol=1e-5)
    assert torch.equal(x_hat, x_hat_again)


def test_unknown_loss_is_a_config_error():
    with pytest.raises(ConfigError, match="model.loss='l1'.*bce.*mse"):
        Autoencoder(input_shape=[1, 28, 28], loss="l1")


def test_test_mse_is_per_pixel_mean_squared_error():
    torch.manual_seed(0)
    model = Autoencoder(input_shape=[1, 8, 8], net="mlp", latent_dim=3).eval()
    x = torch.rand(10, 1, 8, 8)
    model._evaluation_step("test", (x, torch.zeros(10)))
    assert model._means["test"].compute()["mse"].item() == pytest.approx(((model.reconstruct(x) - x) ** 2).mean().item(), rel=1e-6)
