"""The two-level hierarchical VAE: the precision-weighted merge against the product of Gaussians,
its KL against torch.distributions, the ELBO against a Monte-Carlo estimate written with
torch.distributions, test/nll against log p(x) integrated on a grid, and training, sampling and
reloading."""

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from autoencoders.evaluation.likelihood import importance_weighted_nll
from autoencoders.losses.densities import gaussian_kl_between, precision_weighted
from autoencoders.models.hvae import HVAE
from autoencoders.training.pipeline import train
from tests.helpers import assert_finite_terms, reloaded

QUIET = ["logging.images_every_n_epochs=0", "logging.projector_points=0", "eval.probe=false"]


def test_the_precision_weighted_merge_is_the_normalised_product_of_the_two_gaussians():
    generator = torch.Generator().manual_seed(0)
    mu_hat, mu_p = (torch.randn(5, generator=generator, dtype=torch.float64) * 2 for _ in range(2))
    logvar_hat, logvar_p = (torch.randn(5, generator=generator, dtype=torch.float64) for _ in range(2))
    mu_q, logvar_q = precision_weighted(mu_hat, logvar_hat, mu_p, logvar_p)
    # N(z; a, A) N(z; b, B) = N(a; b, A + B) N(z; mu_q, var_q) for every z: the log ratio is that constant.
    constant = Normal(mu_p, (logvar_hat.exp() + logvar_p.exp()).sqrt()).log_prob(mu_hat)
    for z in (-3.0, 0.0, 0.7, 4.0):
        z = torch.full((5,), z, dtype=torch.float64)
        product = Normal(mu_hat, (0.5 * logvar_hat).exp()).log_prob(z) + Normal(mu_p, (0.5 * logvar_p).exp()).log_prob(
            z
        )
        assert torch.allclose(product - Normal(mu_q, (0.5 * logvar_q).exp()).log_prob(z), constant, atol=1e-12)
    # By hand on one dimension: variances 1 and 3 give 3/4, and the mean leans to the surer one.
    mu, logvar = precision_weighted(*(torch.tensor([v], dtype=torch.float64) for v in (2.0, 0.0, -2.0, math.log(3))))
    assert mu.item() == pytest.approx(1.0) and logvar.exp().item() == pytest.approx(0.75)
    # An estimate far surer than the prior (variance 1e-30) takes over, without overflow.
    tiny = precision_weighted(*(torch.tensor([v]) for v in (1.5, -69.0, -4.0, 0.0)))
    assert tiny[0].item() == pytest.approx(1.5) and torch.isfinite(tiny[1]).all()


def test_the_kl_between_two_gaussians_matches_torch_distributions():
    generator = torch.Generator().manual_seed(1)
    mu_q, mu_p, logvar_q, logvar_p = (torch.randn(4, 3, generator=generator, dtype=torch.float64) for _ in range(4))
    expected = kl_divergence(Normal(mu_q, (0.5 * logvar_q).exp()), Normal(mu_p, (0.5 * logvar_p).exp()))
    assert torch.allclose(gaussian_kl_between(mu_q, logvar_q, mu_p, logvar_p), expected, atol=1e-12)


def tiny_model(latent: int = 2, top: int = 1) -> tuple[HVAE, torch.Tensor]:
    """A small untrained hvae on 2 x 2 images whose top level is far from its prior (q(z2|x) near
    N(1.5, e^-2): kl_z2 ~ 1.6 nats), so that every term of the bound weighs."""
    torch.manual_seed(0)
    model = HVAE(input_shape=[1, 2, 2], latent_dim=latent, top_latent_dim=top).double()
    with torch.no_grad():
        model.bottom_up[-1].bias.copy_(torch.tensor([1.5] * top + [-2.0] * top))
    x = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]], [[[0.0, 0.0], [1.0, 0.0]]]], dtype=torch.float64)
    return model, x


def reference_log_weights(
    model: HVAE, x: torch.Tensor, samples: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(samples,) log p(x|z1) + log p(z1|z2) + log p(z2) - log q(z1|x, z2) - log q(z2|x) for one
    image x, written with torch.distributions from the model's four networks; the noise from
    `generator` when given (z2's for all samples, then z1's, as the model draws it)."""
    d1 = model.encoder(x)
    mu_hat, logvar_hat = d1.chunk(2, dim=1)
    mu2, logvar2 = model.bottom_up(d1).chunk(2, dim=1)
    top, latent = mu2.shape[1], mu_hat.shape[1]
    noise2 = torch.randn(samples, 1, top, generator=generator, dtype=x.dtype)[:, 0]
    noise1 = torch.randn(samples, 1, latent, generator=generator, dtype=x.dtype)[:, 0]
    q2 = Normal(mu2, (0.5 * logvar2).exp())
    z2 = q2.loc + q2.scale * noise2  # (samples, top)
    mu_p, logvar_p = model.top_down(z2).chunk(2, dim=1)
    var_q = 1 / (1 / logvar_hat.exp() + 1 / logvar_p.exp())
    q1 = Normal(var_q * (mu_hat / logvar_hat.exp() + mu_p / logvar_p.exp()), var_q.sqrt())
    z1 = q1.loc + q1.scale * noise1
    p = model.decode(z1).flatten(1)
    pixels = x.flatten()
    log_likelihood = (pixels * p.log() + (1 - pixels) * (1 - p).log()).sum(1)
    log_prior = Normal(mu_p, (0.5 * logvar_p).exp()).log_prob(z1).sum(1) + Normal(0.0, 1.0).log_prob(z2).sum(1)
    return log_likelihood + log_prior - q1.log_prob(z1).sum(1) - q2.log_prob(z2).sum(1)


@torch.no_grad()
def test_the_importance_weights_equal_a_direct_computation_for_the_same_noise():
    model, x = tiny_model()
    for image in x:
        own = model.log_importance_weights(image[None], 50, torch.Generator().manual_seed(3))[:, 0]
        direct = reference_log_weights(model, image[None], 50, torch.Generator().manual_seed(3))
        assert torch.allclose(own, direct, rtol=0, atol=1e-10)


@torch.no_grad()
def test_the_elbo_equals_a_monte_carlo_estimate_of_the_two_level_bound():
    # The model's elbo (closed-form KLs, one sample of each level per row) averaged over 40,000 rows
    # of one image, against the mean log weight of 40,000 samples computed independently.
    model, x = tiny_model()
    for image in x:
        torch.manual_seed(1)
        chunks = torch.tensor([model.loss_terms(image.expand(2000, 1, 2, 2))[0]["elbo"].item() for _ in range(20)])
        weights = reference_log_weights(model, image[None], 40_000, torch.Generator().manual_seed(2))
        standard_error = math.hypot(chunks.std().item() / math.sqrt(20), weights.std().item() / math.sqrt(40_000))
        assert chunks.mean().item() == pytest.approx(weights.mean().item(), abs=4 * standard_error)
        assert standard_error < 0.01  # it resolves each KL term (kl_z1 ~ 0.15, kl_z2 ~ 1.6 nats here)


@torch.no_grad()
def test_the_nll_estimate_is_log_p_x_integrated_on_a_grid():
    # One dimension per level, 3 x 3 binary images: p(x) = integral of p(x|z1) p(z1|z2) p(z2) over a
    # 401 x 401 grid on [-8, 8]^2 (1,201 points change it by < 1e-5). test/nll's two-level
    # estimate with k = 20,000 agrees within its sampling noise on this untrained model (seeds 0-3
    # gave 6.006 to 6.046 against 6.0175 for the first image).
    torch.manual_seed(0)
    model = HVAE(input_shape=[1, 3, 3], latent_dim=1, top_latent_dim=1).double()
    x = (torch.rand(2, 1, 3, 3, generator=torch.Generator().manual_seed(5)) > 0.5).double()
    grid = torch.linspace(-8, 8, 401, dtype=torch.float64)
    step = (grid[1] - grid[0]).item()
    z1, z2 = torch.meshgrid(grid, grid, indexing="ij")
    mu_p, logvar_p = model.prior_z1(z2.reshape(-1, 1))
    log_joint = Normal(mu_p, (0.5 * logvar_p).exp()).log_prob(z1.reshape(-1, 1))[:, 0]
    log_joint = log_joint + Normal(0.0, 1.0).log_prob(z2.reshape(-1))
    p = model.decode(z1.reshape(-1, 1)).flatten(1)
    for image in x:
        pixels = image.flatten()
        log_likelihood = (pixels * p.log() + (1 - pixels) * (1 - p).log()).sum(1)
        log_p_x = (torch.logsumexp(log_likelihood + log_joint, dim=0) + 2 * math.log(step)).item()
        estimate = importance_weighted_nll(model, image[None], samples=20_000, seed=0).item()
        assert estimate == pytest.approx(-log_p_x, abs=0.05)
        # The one-sample bound is clearly looser: the estimate is not the ELBO.
        elbo = model.log_importance_weights(image[None], 20_000, torch.Generator().manual_seed(1)).mean().item()
        assert -elbo > -log_p_x + 0.15


def test_hvae_trains_samples_top_down_and_reloads(tiny_cfg, tmp_path):
    cfg = tiny_cfg("model=hvae", "model.net=conv", "model.latent_dim=4", "model.top_latent_dim=2", *QUIET)
    metrics = train(cfg, run_dir=tmp_path)
    assert_finite_terms(metrics, ("recon", "kl", "kl_z1", "kl_z2", "elbo", "loss"))
    assert metrics["test/kl"] == pytest.approx(metrics["test/kl_z1"] + metrics["test/kl_z2"], rel=1e-5)
    units = {level: metrics[f"test/active_units_{level}"] for level in ("z1", "z2")}
    assert 0 <= units["z1"] <= 4 and 0 <= units["z2"] <= 2 and metrics["test/active_units"] == sum(units.values())
    assert math.isfinite(metrics["test/nll"])
    model = reloaded(tmp_path, HVAE, latent_dim=4)
    with torch.no_grad():
        # Top-down: z2 ~ N(0, I), z1 ~ p(z1|z2); the same generator gives the same images.
        generator = torch.Generator().manual_seed(0)
        z2 = torch.randn(5, 2, generator=generator)
        mu, logvar = model.prior_z1(z2)
        expected = model.decode(mu + (0.5 * logvar).exp() * torch.randn(5, 4, generator=generator))
        assert torch.equal(model.sample(5, generator=torch.Generator().manual_seed(0)), expected)
