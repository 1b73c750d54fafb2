"""The IWAE: its k = 1 bound is the one-sample Monte-Carlo ELBO for the same noise, and the VAE's
closed-form-KL ELBO in expectation; the bound rises with k; training on both nets and reloading."""

import math

import pytest
import torch

from autoencoders import load_run
from autoencoders.errors import ConfigError
from autoencoders.losses import densities, reconstruction
from autoencoders.models.iwae import IWAE, log_importance_weights
from autoencoders.training.pipeline import train

SMALL = {"input_shape": [1, 8, 8], "latent_dim": 3}
QUIET = ["logging.images_every_n_epochs=0", "logging.projector_points=0", "eval.probe=false", "eval.nll_samples=5"]


def one_sample_elbo(model, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """log p(x|z) + log p(z) - log q(z|x) per image for z = mu + sigma * noise, written out."""
    mu, logvar = model.posterior(x)
    z = mu + torch.exp(0.5 * logvar) * noise
    x_hat = model.decode(z)
    log_likelihood = (x * torch.log(x_hat) + (1 - x) * torch.log(1 - x_hat)).flatten(1).sum(1)  # Bernoulli
    log_prior = (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(1)
    log_posterior = (-0.5 * (z - mu) ** 2 / logvar.exp() - 0.5 * logvar - 0.5 * math.log(2 * math.pi)).sum(1)
    return log_likelihood + log_prior - log_posterior


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_k_1_is_the_one_sample_elbo_for_the_same_noise(loss):
    torch.manual_seed(0)
    model = IWAE(**SMALL, samples=1, loss=loss)
    x = torch.rand(6, 1, 8, 8)
    torch.manual_seed(1)
    terms, _ = model.loss_terms(x)
    torch.manual_seed(1)
    noise = torch.randn(6, 3)
    if loss == "bce":
        assert terms["iw_bound"].item() == pytest.approx(one_sample_elbo(model, x, noise).mean().item(), rel=1e-5)
    mu, logvar = model.posterior(x)
    z = mu + torch.exp(0.5 * logvar) * noise
    elbo = (
        -reconstruction.NEGATIVE_LOG_LIKELIHOODS[loss](model.decode(z), x)
        + densities.standard_normal_log_density(z)
        - densities.gaussian_log_density(z, mu, logvar)
    )
    assert terms["iw_bound"].item() == pytest.approx(elbo.mean().item(), rel=1e-6)
    assert torch.equal(terms["loss"], -terms["iw_bound"])


def test_k_1_is_the_vaes_closed_form_elbo_in_expectation():
    # Per draw, the k = 1 bound minus the VAE's elbo (recon from the same z, closed-form KL) is
    # KL - (log q(z|x) - log p(z)), whose mean is 0: over 4,000 draws within 4 standard errors.
    torch.manual_seed(0)
    model = IWAE(**SMALL, samples=1)
    x = torch.rand(4, 1, 8, 8).repeat(1000, 1, 1, 1)
    with torch.no_grad():
        mu, logvar = model.posterior(x)
        noise = torch.randn(len(x), 3)
        bound = one_sample_elbo(model, x, noise)
        z = mu + torch.exp(0.5 * logvar) * noise
        vae_elbo = -(
            reconstruction.binary_cross_entropy(model.decode(z), x) + densities.gaussian_kl_per_dim(mu, logvar).sum(1)
        )
    difference = bound - vae_elbo
    assert abs(difference.mean().item()) < 4 * difference.std().item() / math.sqrt(len(x))
    assert difference.std().item() > 0  # per draw they differ: the agreement is in expectation


def test_the_iwae_refuses_the_vaes_kl_weights():
    with pytest.raises(ConfigError, match=r"model.beta=4.0: not allowed for the iwae"):
        IWAE(**SMALL, beta=4.0)


def test_iwae_trains_reloads_and_its_bound_rises_with_k(tiny_cfg, tmp_path):
    # (Both nets train in tests/models/test_training.py; this one reloads the mlp iwae.)
    metrics = train(tiny_cfg("model=iwae", "model.latent_dim=4", *QUIET), run_dir=tmp_path)
    for name in ("test/loss", "test/iw_bound", "test/kl", "test/mse", "test/nll", "val/active_units", "train/iw_bound"):
        assert math.isfinite(metrics[name]), name
    assert metrics["test/loss"] == pytest.approx(-metrics["test/iw_bound"])
    model = load_run(tmp_path)
    assert isinstance(model, IWAE) and model.hparams.samples == 5 and model.sample(3).shape == (3, 1, 28, 28)
    # Burda et al. (2016), theorem 1: E[L_k] rises with k. Means over 64 images x 4 seeded repeats.
    x = torch.rand(64, 1, 28, 28).round()
    bounds = []
    with torch.no_grad():
        for k in (1, 5, 50):
            draws = [
                densities.importance_weighted_bound(
                    log_importance_weights(model, x, k, torch.Generator().manual_seed(s))
                )
                for s in range(4)
            ]
            bounds.append(torch.cat(draws).mean().item())
    assert bounds[0] < bounds[1] < bounds[2], bounds
