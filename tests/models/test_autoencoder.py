"""The plain autoencoder's loss terms against hand computation, and its fused Adam."""

import copy

import pytest
import torch

from autoencoders.errors import ConfigError
from autoencoders.losses import reconstruction
from autoencoders.models.autoencoder import Autoencoder
from tests.models.reference import PER_IMAGE_LOSSES, squared_error


def test_squared_error_and_bce_per_image():
    x = torch.tensor([[[[0.0, 1.0], [0.5, 0.25]]]])
    x_hat = torch.tensor([[[[0.5, 0.5], [0.5, 0.75]]]])
    assert squared_error(x_hat, x).item() == pytest.approx(0.25 + 0.25 + 0 + 0.25)
    bce = -(
        torch.log(torch.tensor(0.5)) * 2  # x=0 and x=1 against 0.5
        + 0.5 * torch.log(torch.tensor(0.5))
        + 0.5 * torch.log(torch.tensor(0.5))
        + 0.25 * torch.log(torch.tensor(0.75))
        + 0.75 * torch.log(torch.tensor(0.25))
    )
    assert reconstruction.binary_cross_entropy(x_hat, x).item() == pytest.approx(bce.item(), rel=1e-6)


@pytest.mark.parametrize("name", ["mse", "bce"])
def test_fused_batch_mean_equals_the_per_image_sums_over_pixels(name):
    torch.manual_seed(0)
    x, x_hat = torch.rand(5, 1, 6, 7), torch.rand(5, 1, 6, 7)
    per_image = PER_IMAGE_LOSSES[name](x_hat, x)
    assert reconstruction.mean_reconstruction(name, x_hat, x).item() == pytest.approx(
        per_image.mean().item() / 42, rel=1e-6
    )
    x_hat.requires_grad_(True)
    (fused_grad,) = torch.autograd.grad(reconstruction.mean_reconstruction(name, x_hat, x), x_hat)
    (per_image_grad,) = torch.autograd.grad(PER_IMAGE_LOSSES[name](x_hat, x).mean() / 42, x_hat)
    assert torch.allclose(fused_grad, per_image_grad, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_loss_is_per_pixel_mean_of_the_reconstruction_loss(loss):
    torch.manual_seed(0)
    model = Autoencoder(input_shape=[1, 28, 28], net="mlp", latent_dim=4, loss=loss)
    x = torch.rand(3, 1, 28, 28)
    terms, x_hat = model.loss_terms(x)
    x_hat_again = model.reconstruct(x)
    if loss == "mse":
        expected = ((x_hat_again - x) ** 2).mean()  # over batch and pixels
    else:
        expected = -(x * torch.log(x_hat_again) + (1 - x) * torch.log(1 - x_hat_again)).mean()
    assert torch.allclose(terms["loss"], expected, rtol=1e-5)
    assert torch.equal(x_hat, x_hat_again)


def test_unknown_loss_is_a_config_error():
    with pytest.raises(ConfigError, match="model.loss='l1' is not allowed: model.loss must be one of mse, bce"):
        Autoencoder(input_shape=[1, 28, 28], loss="l1")


def test_test_mse_is_per_pixel_mean_squared_error():
    torch.manual_seed(0)
    model = Autoencoder(input_shape=[1, 8, 8], net="mlp", latent_dim=3).eval()
    x = torch.rand(10, 1, 8, 8)
    model._evaluation_step("test", (x, torch.zeros(10)))
    assert model._means["test"].compute()["mse"].item() == pytest.approx(
        ((model.reconstruct(x) - x) ** 2).mean().item(), rel=1e-6
    )


def test_optimizer_is_fused_adam_and_steps_like_the_default_one():
    torch.manual_seed(0)
    model = Autoencoder(input_shape=[1, 8, 8], net="mlp", latent_dim=3, lr=1e-2, weight_decay=1e-4)
    reference = Autoencoder(input_shape=[1, 8, 8], net="mlp", latent_dim=3)
    reference.load_state_dict(model.state_dict())
    initial = copy.deepcopy(model.state_dict())
    fused = model.configure_optimizers()["optimizer"]
    default = torch.optim.Adam(reference.parameters(), lr=1e-2, weight_decay=1e-4)
    assert fused.defaults["fused"] is True and default.defaults["fused"] is None
    x = torch.rand(16, 1, 8, 8)
    for _ in range(5):
        for module, optimizer in ((model, fused), (reference, default)):
            optimizer.zero_grad()
            module.loss_terms(x)[0]["loss"].backward()
            optimizer.step()
    for mine, theirs in zip(model.parameters(), reference.parameters()):
        assert torch.allclose(mine, theirs, atol=1e-6)
    assert all(not torch.equal(value, initial[name]) for name, value in model.state_dict().items())  # it did train
