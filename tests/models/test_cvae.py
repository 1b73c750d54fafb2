"""The conditional VAE: where the label enters each network, the VAE's objective given y, the
labels the shared loop passes, class-conditional samples."""

import pytest
import torch

from autoencoders.losses import densities, reconstruction
from autoencoders.machinery.inference import condition
from autoencoders.models.cvae import CVAE

SMALL = {"input_shape": [1, 8, 8], "latent_dim": 3, "num_classes": 4}


def test_the_label_enters_beside_the_image_the_features_and_the_code():
    mlp, conv = CVAE(**SMALL), CVAE(**SMALL, net="conv")
    assert mlp.encoder[1].in_features == 64 + 4  # flattened image + one-hot y
    assert conv.encoder.head.in_features == 32 * 2 * 2 + 4  # flattened features + one-hot y
    assert mlp.decoder.layers[0].in_features == conv.decoder.head.in_features == 3 + 4  # [z, y]

    torch.manual_seed(0)
    x, z = torch.rand(4, 1, 8, 8), torch.randn(4, 3)
    y = torch.tensor([0, 1, 2, 3])
    for model in (mlp.eval(), conv.eval()):
        one_hot = torch.eye(4)[y]
        assert torch.equal(model.decode(z, y), model.decoder(torch.cat([z, one_hot], 1)))
        assert torch.equal(model.decode(z, y), model.decode(z, one_hot))  # class weights work as well
        assert not torch.allclose(model.encode(x, y), model.encode(x, y.flip(0)))
        assert not torch.allclose(model.decode(z, y), model.decode(z, y.flip(0)))


@pytest.mark.parametrize("loss, beta", [("bce", 1.0), ("mse", 3.0)])
def test_cvae_loss_is_the_vae_objective_given_the_label(loss, beta):
    torch.manual_seed(0)
    model = CVAE(**SMALL, loss=loss, beta=beta)
    x, y = torch.rand(5, 1, 8, 8), torch.tensor([0, 1, 2, 3, 1])
    torch.manual_seed(1)
    terms, x_hat = model.loss_terms(x, y)
    mu, logvar = model.posterior(x, y)
    torch.manual_seed(1)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    recon = reconstruction.NEGATIVE_LOG_LIKELIHOODS[loss](model.decode(z, y), x).mean()
    kl = densities.gaussian_kl_per_dim(mu, logvar).sum(1).mean()
    assert torch.allclose(x_hat, model.decode(z, y))
    assert torch.allclose(terms["recon"], recon, rtol=1e-5) and torch.allclose(terms["kl"], kl)
    assert torch.allclose(terms["loss"], recon + beta * kl, rtol=1e-5)
    assert torch.allclose(terms["elbo"], -(recon + kl), rtol=1e-5)


def test_the_shared_loop_passes_the_batch_labels():
    torch.manual_seed(0)
    model = CVAE(**SMALL).eval()
    x, y = torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 3, 0, 1])
    model.on_validation_epoch_start()
    model._evaluation_step("val", (x, y), 0)
    mse = model._means["val"].compute()["mse"]
    assert mse.item() == pytest.approx((model.reconstruct(x, y) - x).pow(2).mean().item(), rel=1e-6)
    assert mse.item() != pytest.approx((model.reconstruct(x, (y + 1) % 4) - x).pow(2).mean().item(), rel=1e-6)
    model.train()
    assert torch.isfinite(model.training_step((x, y), 0)) and torch.equal(condition(model, y)[0], y)
    with pytest.raises(ValueError, match="CVAE is conditional"):
        condition(model, None)


def test_samples_by_class():
    torch.manual_seed(0)
    model = CVAE(**SMALL).eval()
    samples = model.sample(6, generator=torch.Generator().manual_seed(1))  # classes 0, 1, 2, 3, 0, 1
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(samples, model.decode(z, torch.tensor([0, 1, 2, 3, 0, 1])))
    asked = model.sample(2, y=torch.tensor([3, 3]), generator=torch.Generator().manual_seed(1))
    z = torch.randn(2, 3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(asked, model.decode(z, torch.tensor([3, 3])))

    # The grid: one row per class, the same z (style) in every row's columns.
    grid = model.sample_grid(16, 5, torch.Generator().manual_seed(2))
    styles = torch.randn(5, 3, generator=torch.Generator().manual_seed(2))
    assert grid.shape == (4 * 5, 1, 8, 8)
    for row in range(4):
        # One batch of 20 against four of 5: the same maths, summed in another order by the kernels.
        torch.testing.assert_close(grid[5 * row : 5 * row + 5], model.decode(styles, torch.full((5,), row)))
