"""The beta-TCVAE: its KL decomposition against brute force, the closed-form KL and factorised
data; its objective."""

import math
from types import SimpleNamespace

import pytest
import torch

from autoencoders.errors import ConfigError
from autoencoders.losses import densities, total_correlation
from autoencoders.models.tcvae import TCVAE

SMALL = {"input_shape": [1, 8, 8], "latent_dim": 3, "dataset_size": 1000}


# --- the estimator ------------------------------------------------------------------------------
def log_normal(value: float, mean: float, logvar: float) -> float:
    return -0.5 * ((value - mean) ** 2 / math.exp(logvar) + logvar + math.log(2 * math.pi))


def log_sum_exp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(value - top) for value in values))


def weight(i: int, j: int, images: int, dataset_size: int, estimator: str) -> float:
    """Sample j's weight in the estimate of q(z_i), as Chen et al. (2018) define them."""
    if estimator == "mws":
        return 1 / (dataset_size * images)
    others = images - 1
    if j == i:
        return 1 / dataset_size
    return (dataset_size - others) / (dataset_size * others) if j == (i + 1) % images else 1 / others


def decomposition_by_brute_force(z, mu, logvar, dataset_size, estimator="mws"):
    """mi, tc, dwkl per image with explicit loops over images i, batch members j and dimensions d:
    log q(z_i) ~ log sum_j w_ij prod_d q(z_id | n_j), log q(z_id) ~ log sum_j w_ij q(z_id | n_j)."""
    images, dims = len(z), len(z[0])
    terms = {"mi": [], "tc": [], "dwkl": []}
    for i in range(images):
        own = sum(log_normal(z[i][d], mu[i][d], logvar[i][d]) for d in range(dims))
        log_w = [math.log(weight(i, j, images, dataset_size, estimator)) for j in range(images)]
        joint = [
            sum(log_normal(z[i][d], mu[j][d], logvar[j][d]) for d in range(dims)) + log_w[j] for j in range(images)
        ]
        log_qz = log_sum_exp(joint)
        log_marginals = 0.0
        for d in range(dims):
            log_marginals += log_sum_exp(
                [log_normal(z[i][d], mu[j][d], logvar[j][d]) + log_w[j] for j in range(images)]
            )
        log_prior = sum(log_normal(z[i][d], 0.0, 0.0) for d in range(dims))
        terms["mi"].append(own - log_qz)
        terms["tc"].append(log_qz - log_marginals)
        terms["dwkl"].append(log_marginals - log_prior)
    return terms


def posterior_batch(images: int, dims: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random posteriors N(mu, exp(logvar)) in float64 and one sample z from each."""
    generator = torch.Generator().manual_seed(seed)
    mu = torch.randn(images, dims, generator=generator, dtype=torch.float64)
    logvar = torch.empty(images, dims, dtype=torch.float64).uniform_(-2.0, 0.5, generator=generator)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(images, dims, generator=generator, dtype=torch.float64)
    return z, mu, logvar


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_the_vectorised_estimator_equals_brute_force(estimator):
    z, mu, logvar = posterior_batch(images=4, dims=3)
    vectorised = total_correlation.total_correlation_decomposition(z, mu, logvar, dataset_size=50, estimator=estimator)
    by_hand = decomposition_by_brute_force(
        z.tolist(), mu.tolist(), logvar.tolist(), dataset_size=50, estimator=estimator
    )
    for name in ("mi", "tc", "dwkl"):
        assert vectorised[name].tolist() == pytest.approx(by_hand[name], abs=1e-9), name


def kl_gap_in_standard_errors(images: int = 1000, dims: int = 3) -> float:
    """|mean(mi + tc + dwkl) - mean(closed-form KL)| in standard errors of the Monte-Carlo mean."""
    z, mu, logvar = posterior_batch(images, dims, seed=1)
    parts = total_correlation.total_correlation_decomposition(z, mu, logvar, dataset_size=60_000)
    difference = parts["mi"] + parts["tc"] + parts["dwkl"] - densities.gaussian_kl_per_dim(mu, logvar).sum(1)
    return abs(difference.mean().item()) / (difference.std().item() / math.sqrt(images))


def test_the_three_terms_add_up_to_the_closed_form_kl_within_monte_carlo_error(monkeypatch):
    # mi + tc + dwkl = log q(z|x) - log p(z) per sample, a one-sample estimate of the KL: over 1,000
    # images its mean is within 4 standard errors of the closed form (a 1-in-15,000 chance to fail).
    assert kl_gap_in_standard_errors() < 4
    # The check has teeth: a log density missing its log-variance term is caught.
    wrong = lambda z, mu, logvar: -0.5 * ((z - mu).pow(2) / logvar.exp() + math.log(2 * math.pi)).sum(-1)  # noqa: E731
    monkeypatch.setattr(densities, "gaussian_log_density", wrong)
    assert kl_gap_in_standard_errors() > 4


def mean_excess_tc(
    data: torch.Tensor, batch: int, dataset_size: int, repeats: int = 20, estimator: str = "mws"
) -> float:
    """Mean over minibatches (drawn with replacement from `data`, the posterior means; sd 0.6) of
    tc, less the constant (D - 1) log N that mws's normalisation adds."""
    generator = torch.Generator().manual_seed(batch)
    excess = []
    for _ in range(repeats):
        mu = data[torch.randint(len(data), (batch,), generator=generator)]
        logvar = torch.full_like(mu, 2 * math.log(0.6))
        z = mu + 0.6 * torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
        tc = (
            total_correlation.total_correlation_decomposition(z, mu, logvar, dataset_size, estimator)["tc"]
            .mean()
            .item()
        )
        excess.append(tc - ((mu.shape[1] - 1) * math.log(dataset_size) if estimator == "mws" else 0.0))
    return sum(excess) / repeats


def test_tc_shrinks_toward_its_offset_as_the_batch_grows_when_the_aggregate_posterior_factorises():
    # A data set of 16 posteriors N(mu_n, 0.6^2 I) with mu_n on a 4 x 4 grid: the aggregate posterior
    # (1/16) sum_n q(z|n) = prod_d (1/4) sum_v N(z_d; v, 0.6^2) factorises, so its total correlation is 0.
    # The paper's normalisation 1/(NM) (weights summing to 1/N) adds (D - 1) log N to the estimate;
    # what lies above that offset shrinks toward 0 as the batch grows.
    values = torch.linspace(-1.5, 1.5, 4, dtype=torch.float64)
    grid = torch.cartesian_prod(values, values)
    excess = [mean_excess_tc(grid, batch, dataset_size=16) for batch in (16, 256, 1024)]
    assert excess[0] > excess[1] > excess[2] and excess[2] < 0.005, excess
    # Means on the diagonal (mu_n = (v, v)): a dependent aggregate, whose tc stays well above the floor.
    diagonal = torch.stack([values.repeat(4), values.repeat(4)], 1)
    assert mean_excess_tc(diagonal, 1024, dataset_size=16) > 0.3


def test_stratified_sampling_reads_tc_near_0_as_the_batch_grows_when_the_aggregate_factorises():
    # The same data with the paper's stratified sampling, whose weights sum to 1: tc itself (no
    # constant to take off) goes to 0 for the factorised aggregate, and stays above it for the dependent one.
    values = torch.linspace(-1.5, 1.5, 4, dtype=torch.float64)
    grid = torch.cartesian_prod(values, values)
    # (A data set of 100,000 images whose posteriors are these 16, each a 16th of them.)
    tcs = [mean_excess_tc(grid, batch, dataset_size=100_000, estimator="mss") for batch in (16, 256, 1024)]
    assert abs(tcs[2]) < abs(tcs[0]) and abs(tcs[2]) < 0.01, tcs
    diagonal = torch.stack([values.repeat(4), values.repeat(4)], 1)
    assert mean_excess_tc(diagonal, 1024, dataset_size=100_000, estimator="mss") > 0.3


def test_the_weights_sum_to_1_over_n_for_mws_and_to_1_for_mss():
    mws = total_correlation.minibatch_log_weights(8, 100, "mws").exp().sum(1)
    mss = total_correlation.minibatch_log_weights(8, 100, "mss").exp().sum(1)
    assert torch.allclose(mws, torch.full((8,), 1 / 100, dtype=torch.float64))
    assert torch.allclose(mss, torch.ones(8, dtype=torch.float64))
    with pytest.raises(ConfigError, match="model.tc_estimator='mcs' is not allowed"):
        total_correlation.minibatch_log_weights(8, 100, "mcs")


def test_with_identical_posteriors_the_terms_are_the_paper_normalisations_offsets():
    # Every image has the same posterior: no information about the image (true mi = 0) and no
    # dependence (true tc = 0). The paper's estimates are the constants its weights 1/(NM) add.
    z, mu, logvar = posterior_batch(images=64, dims=5)
    same = total_correlation.total_correlation_decomposition(z, mu[:1].expand_as(mu), logvar[:1].expand_as(mu), 1000)
    assert same["mi"].tolist() == pytest.approx([math.log(1000)] * 64)
    assert same["tc"].tolist() == pytest.approx([4 * math.log(1000)] * 64)
    stratified = total_correlation.total_correlation_decomposition(
        z, mu[:1].expand_as(mu), logvar[:1].expand_as(mu), 1000, "mss"
    )
    assert stratified["mi"].tolist() == pytest.approx([0.0] * 64, abs=1e-9)  # its weights sum to 1: no constant
    assert stratified["tc"].tolist() == pytest.approx([0.0] * 64, abs=1e-9)


# --- the model ----------------------------------------------------------------------------------
def test_tcvae_loss_weighs_only_the_total_correlation_by_beta():
    torch.manual_seed(0)
    model = TCVAE(**SMALL, beta=4.0)
    x = torch.rand(6, 1, 8, 8)
    torch.manual_seed(1)
    terms, _ = model.loss_terms(x)
    mu, logvar = model.posterior(x)
    torch.manual_seed(1)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # the draw loss_terms made
    parts = {
        name: value.mean()
        for name, value in total_correlation.total_correlation_decomposition(z, mu, logvar, 1000).items()
    }
    kl = densities.gaussian_kl_per_dim(mu, logvar).sum(1).mean()
    for name in ("mi", "tc", "dwkl"):
        assert torch.allclose(terms[name], parts[name]), name
    assert torch.allclose(terms["loss"], terms["recon"] + parts["mi"] + 4.0 * parts["tc"] + parts["dwkl"])
    assert torch.allclose(terms["kl"], kl) and torch.allclose(terms["elbo"], -(terms["recon"] + kl))

    # KL warm-up ramps the whole regularizer: after 5 of 10 warm-up batches, half of it.
    model.trainer = SimpleNamespace(fit_loop=SimpleNamespace(total_batch_idx=5), num_training_batches=10)
    model.hparams.kl_warmup_epochs = 1.0
    torch.manual_seed(1)
    warming = model.loss_terms(x)[0]
    assert torch.allclose(warming["loss"], terms["recon"] + 0.5 * (parts["mi"] + 4.0 * parts["tc"] + parts["dwkl"]))


def test_tcvae_refuses_free_bits():
    with pytest.raises(ConfigError, match=r"model\.free_bits=0\.5 is not allowed for the tcvae"):
        TCVAE(**SMALL, free_bits=0.5)
