"""The VAE's importance-weighted likelihood: logmeanexp, Jensen, the k = 1 bound, seeding."""

import math

import pytest
import torch

from autoencoders.evaluation.likelihood import importance_weighted_nll, log_importance_weights
from autoencoders.losses import densities, reconstruction
from autoencoders.models.vae import VAE


# --- the importance-weighted bound ------------------------------------------------------------
def test_importance_weighted_bound_is_logmeanexp():
    log_weights = torch.tensor([[-1.0, 2.0], [-3.0, 2.0]])
    expected = [math.log((math.exp(-1) + math.exp(-3)) / 2), 2.0]
    assert densities.importance_weighted_bound(log_weights).tolist() == pytest.approx(expected)


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_iw_bound_is_never_below_the_elbo_of_the_same_draws(loss):
    torch.manual_seed(0)
    model = VAE(input_shape=[1, 28, 28], latent_dim=4, loss=loss).eval()
    x = torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        for samples in (2, 10, 50):
            log_weights = log_importance_weights(model, x, samples, torch.Generator().manual_seed(samples))
            assert log_weights.shape == (samples, 16)
            bound = densities.importance_weighted_bound(log_weights)
            assert (bound >= log_weights.mean(0) - 1e-4).all()  # Jensen; 1e-4 nats of float32 rounding


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_k1_bound_averages_to_the_closed_form_elbo(loss):
    """At k = 1 the bound is log p(x|z) + log p(z) - log q(z|x) for one z; its mean over draws is
    E_q[log p(x|z)] - KL, the model's ELBO with the analytic KL (its `elbo` term)."""
    torch.manual_seed(0)
    model = VAE(input_shape=[1, 28, 28], latent_dim=4, loss=loss).eval()
    x = torch.rand(4, 1, 28, 28)
    draws = 4000
    with torch.no_grad():
        one_sample = log_importance_weights(model, x.repeat(draws, 1, 1, 1), 1, torch.Generator().manual_seed(1))[0]
        closed_form = torch.stack([model.loss_terms(x)[0]["elbo"] for _ in range(200)])
    one_sample = one_sample.view(draws, 4).mean(1).double()  # per draw: the mean over the 4 images
    standard_error = float(one_sample.std() / math.sqrt(draws))
    # Tolerance: 4 standard errors of each side's mean (the closed form keeps one sampled
    # reconstruction term): 0.13 nats (mse) and 0.25 nats (bce) here, on ELBOs of about -530.
    tolerance = 4 * standard_error + 4 * float(closed_form.double().std() / math.sqrt(200))
    assert abs(float(one_sample.mean()) - float(closed_form.double().mean())) < tolerance
    assert tolerance < 0.5


def test_nll_is_seeded_and_tightens_with_more_samples():
    torch.manual_seed(0)
    model = VAE(input_shape=[1, 28, 28], latent_dim=4).eval()
    x = torch.rand(30, 1, 28, 28)
    with torch.no_grad():
        nll_1 = importance_weighted_nll(model, x, samples=1, batch_size=7)
        nll_100 = importance_weighted_nll(model, x, samples=100, batch_size=7)
        assert torch.equal(nll_100, importance_weighted_nll(model, x, samples=100, batch_size=7))  # seeded
    assert nll_100.shape == (30,) and nll_100.mean() <= nll_1.mean()


def test_a_conditional_models_likelihood_is_given_the_labels():
    from autoencoders.models.cvae import CVAE

    torch.manual_seed(0)
    model = CVAE(input_shape=[1, 8, 8], latent_dim=3, num_classes=4).eval()
    x, y = torch.rand(5, 1, 8, 8), torch.tensor([0, 1, 2, 3, 0])
    with torch.no_grad():
        (log_weights,) = log_importance_weights(model, x, 1, torch.Generator().manual_seed(0), labels=y)
        mu, logvar = model.posterior(x, y)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(1, 5, 3, generator=torch.Generator().manual_seed(0))[0]
        by_hand = (
            -reconstruction.binary_cross_entropy(model.decode(z, y), x)
            + densities.standard_normal_log_density(z)
            - densities.gaussian_log_density(z, mu, logvar)
        )  # log p(x|z,y) + log p(z) - log q(z|x,y)
        assert torch.allclose(log_weights, by_hand, atol=1e-4)
        nll = importance_weighted_nll(model, x, samples=10, batch_size=2, labels=y)
        assert nll.shape == (5,) and not torch.allclose(
            nll, importance_weighted_nll(model, x, 10, 2, labels=(y + 1) % 4)
        )
