"""The prior as a part (machinery/priors.py): N(0, I) exactly as the models wrote it out before,
and Laplace(0, 1) against torch.distributions, numerical integration and Monte Carlo."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from torch.distributions import Laplace, Normal, kl_divergence

from autoencoders.errors import ConfigError
from autoencoders.losses import densities, total_correlation
from autoencoders.machinery.priors import PRIORS, StandardLaplace, StandardNormal, build_prior

# Posteriors from sharp to broad, centred and far out: (mu, logvar) per dimension.
POSTERIORS = torch.tensor([[0.0, 0.0], [0.3, -1.0], [-2.5, 0.7], [4.0, -6.0], [-0.01, -12.0], [1.0, 2.5]])


def test_the_normal_prior_is_bit_for_bit_what_the_models_wrote_out():
    prior, mu, logvar = StandardNormal(), torch.randn(7, 5), torch.randn(7, 5)
    z = torch.randn(3, 7, 5)
    # sample: torch.randn from the same generator, on its device, in the asked dtype
    assert torch.equal(
        prior.sample((4, 5), torch.Generator().manual_seed(3)),
        torch.randn(4, 5, generator=torch.Generator().manual_seed(3)),
    )
    assert prior.sample((2, 3), dtype=torch.float64).dtype == torch.float64
    torch.manual_seed(5)
    without = prior.sample(z.shape, device=z.device, dtype=z.dtype)
    torch.manual_seed(5)
    assert torch.equal(without, torch.randn_like(z))  # the aae's and wae's draws
    assert torch.equal(prior.log_density(z), densities.standard_normal_log_density(z))
    assert torch.equal(prior.kl_per_dim(mu, logvar), densities.gaussian_kl_per_dim(mu, logvar))
    assert torch.allclose(prior.log_density_per_dim(z), Normal(0.0, 1.0).log_prob(z), atol=1e-6)


def test_the_laplace_log_density_is_torch_distributions():
    z = torch.linspace(-8, 8, 101, dtype=torch.float64)
    prior = StandardLaplace()
    assert torch.allclose(prior.log_density_per_dim(z), Laplace(0.0, 1.0).log_prob(z))
    assert torch.allclose(prior.log_density(z.view(-1, 1).repeat(1, 3)), 3 * Laplace(0.0, 1.0).log_prob(z))
    assert prior.scale == 1.0  # Laplace(0, 1): density exp(-|z|) / 2, variance 2


def test_the_laplace_kl_is_closed_form_and_matches_torch_distributions():
    mu, logvar = POSTERIORS[:, 0].double(), POSTERIORS[:, 1].double()
    ours = StandardLaplace().kl_per_dim(mu, logvar)
    torchs = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Laplace(torch.zeros_like(mu), torch.ones_like(mu)))
    assert torch.allclose(ours, torchs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mu, logvar", POSTERIORS.tolist())
def test_the_laplace_kl_agrees_with_numerical_integration(mu, logvar):
    # KL = integral of q(z) (log q(z) - log p(z)) dz, by adaptive quadrature over mu +- 12 sigma,
    # split at 0 where log p has its kink.
    sigma = math.exp(0.5 * logvar)
    q, p = stats.norm(mu, sigma), stats.laplace(0.0, 1.0)
    lower, upper = mu - 12 * sigma, mu + 12 * sigma
    points = [0.0] if lower < 0 < upper else None
    integral, _ = integrate.quad(
        lambda z: q.pdf(z) * (q.logpdf(z) - p.logpdf(z)), lower, upper, points=points, limit=200
    )
    ours = float(
        StandardLaplace().kl_per_dim(
            torch.tensor([mu], dtype=torch.float64), torch.tensor([logvar], dtype=torch.float64)
        )
    )
    assert ours == pytest.approx(integral, rel=1e-7, abs=1e-9)


def test_the_laplace_kl_agrees_with_a_large_monte_carlo_estimate():
    # The one-sample estimate log q(z|x) - log p(z), averaged over 10^6 draws per posterior, lies
    # within 5 standard errors of the closed form; the closed form has no such error at all.
    generator = torch.Generator().manual_seed(0)
    mu, logvar = POSTERIORS[:, 0].double(), POSTERIORS[:, 1].double()
    z = mu + torch.exp(0.5 * logvar) * torch.randn(1_000_000, len(mu), generator=generator, dtype=torch.float64)
    one_sample = densities.gaussian_log_density_per_dim(z, mu, logvar) - Laplace(0.0, 1.0).log_prob(z)
    standard_error = one_sample.std(0) / math.sqrt(len(z))
    closed = StandardLaplace().kl_per_dim(mu, logvar)
    assert ((one_sample.mean(0) - closed).abs() < 5 * standard_error + 1e-12).all()
    assert (standard_error > 1e-4).any()  # a real Monte-Carlo spread that the closed form avoids


def test_laplace_draws_follow_laplace_0_1():
    draws = StandardLaplace().sample((200_000,), torch.Generator().manual_seed(1), dtype=torch.float64).numpy()
    # Kolmogorov-Smirnov against the Laplace(0, 1) CDF: below the 1% critical value 1.63/sqrt(n).
    assert stats.kstest(draws, stats.laplace(0.0, 1.0).cdf).statistic < 1.63 / math.sqrt(len(draws))
    assert stats.kstest(draws, stats.norm(0.0, math.sqrt(2)).cdf).statistic > 5 * 1.63 / math.sqrt(len(draws))
    assert np.mean(np.abs(draws)) == pytest.approx(1.0, abs=0.01) and np.var(draws) == pytest.approx(2.0, abs=0.03)


def test_laplace_draws_are_torch_distributions_inverse_cdf_on_the_same_stream():
    # torch.distributions.Laplace draws u uniform on (eps - 1, 1) from the global generator; ours
    # draws 2 rand - 1 from the given one. Seeded alike, the streams are the same up to eps.
    torch.manual_seed(7)
    theirs = Laplace(0.0, 1.0).sample((64, 3))
    ours = StandardLaplace().sample((64, 3), torch.Generator().manual_seed(7))
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_a_laplace_draw_at_the_edge_of_the_uniform_stays_finite(monkeypatch):
    # torch.rand may return exactly 0, which maps to u = -1 and log1p(-1) = -inf without the clamp.
    monkeypatch.setattr(torch, "rand", lambda shape, **kw: torch.zeros(shape, dtype=kw.get("dtype")))
    draws = StandardLaplace().sample((5,))
    assert torch.isfinite(draws).all() and (draws < -10).all()


def test_the_tcvae_split_sums_to_the_one_sample_kl_under_the_laplace_prior():
    torch.manual_seed(0)
    mu, logvar = torch.randn(16, 4, dtype=torch.float64), torch.randn(16, 4, dtype=torch.float64) - 1
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    prior = StandardLaplace()
    for estimator in ("mws", "mss"):
        parts = total_correlation.total_correlation_decomposition(z, mu, logvar, 1000, estimator, prior.log_density)
        by_hand = Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(1) - Laplace(0.0, 1.0).log_prob(z).sum(1)
        assert torch.allclose(parts["mi"] + parts["tc"] + parts["dwkl"], by_hand)
        normal = total_correlation.total_correlation_decomposition(z, mu, logvar, 1000, estimator)
        assert torch.equal(parts["mi"], normal["mi"]) and torch.equal(parts["tc"], normal["tc"])
        assert not torch.allclose(parts["dwkl"], normal["dwkl"])  # only dwkl sees the prior


def test_priors_by_name_and_who_may_have_them():
    from autoencoders.models.hvae import HVAE
    from autoencoders.models.vae import VAE

    assert set(PRIORS) == {"normal", "laplace"}
    assert build_prior(VAE, "laplace") is PRIORS["laplace"]
    with pytest.raises(ConfigError, match=r"model.prior='laplace' is not available for HVAE, whose prior is its own"):
        build_prior(HVAE, "laplace")
