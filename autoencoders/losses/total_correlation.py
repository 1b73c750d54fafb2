"""The KL term of the ELBO split by minibatch sampling (Chen et al. 2018, beta-TCVAE): index-code
mutual information, total correlation and dimension-wise KL, in nats."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from autoencoders.losses import densities
from autoencoders.schema import check_value


def minibatch_log_weights(batch: int, dataset_size: int, estimator: str) -> Tensor:
    """(batch, batch) log weights w_ij of sample j's posterior in the estimate of q(z_i), where
    q(z) = (1/N) sum_n q(z|n) over a training set of N = `dataset_size` images (Chen et al. 2018):

    mws, minibatch-weighted sampling (eq. 5): w_ij = 1/(N M), M = batch. The weights sum to 1/N,
      not 1 (the paper calls the estimator biased): N enters only as constants, so it shifts the
      values of mi, tc and dwkl (by log N, (D - 1) log N and -D log N) but not their gradients.
      Identical posteriors give tc = (D - 1) log N, where a total correlation is 0.
    mss, minibatch stratified sampling (appendix C.2): w_ii = 1/N for the sample's own image,
      (N - M')/(N M') for one other (M' = batch - 1) and 1/M' for the rest: each row sums to 1,
      so the estimates have no such constant, and tc of a factorised q(z) goes to 0 as the batch grows.
    """
    check_value("model.tc_estimator", estimator)
    if estimator == "mws":
        return torch.full((batch, batch), -math.log(dataset_size * batch), dtype=torch.float64)
    if batch == 1:
        return torch.zeros(1, 1, dtype=torch.float64)
    others = batch - 1
    if dataset_size < batch:
        raise ValueError(
            f"stratified sampling draws a batch from the data set: a batch of {batch} from {dataset_size} images"
        )
    weights = torch.full((batch, batch), 1 / others, dtype=torch.float64)  # float64: 1/N and 1/M' differ by ~1e5
    index = torch.arange(batch)
    weights[index, (index + 1) % batch] = (dataset_size - others) / (dataset_size * others)
    weights[index, index] = 1 / dataset_size
    return weights.log()


def minibatch_log_densities(
    z: Tensor, mu: Tensor, logvar: Tensor, dataset_size: int, estimator: str = "mws"
) -> tuple[Tensor, Tensor]:
    """Estimates of log q(z_i) and of log prod_d q(z_id) for each sample z_i ~ q(z|n_i) of a
    minibatch of M images from a training set of N = `dataset_size`: (M,) each, in nats,
        log q(z_i)  ~ logsumexp_j [log q(z_i | n_j)  + log w_ij],
        log q(z_id) ~ logsumexp_j [log q(z_id | n_j) + log w_ij]   for each dimension d,
    with the weights of `estimator` (`minibatch_log_weights`).
    """
    log_w = minibatch_log_weights(len(z), dataset_size, estimator).to(device=z.device, dtype=z.dtype)
    log_q = densities.gaussian_log_density_per_dim(z[:, None, :], mu[None], logvar[None])  # (i, j, d)
    log_qz = torch.logsumexp(log_q.sum(2) + log_w, dim=1)
    log_prod_marginals = torch.logsumexp(log_q + log_w[:, :, None], dim=1).sum(1)
    return log_qz, log_prod_marginals


def total_correlation_decomposition(
    z: Tensor,
    mu: Tensor,
    logvar: Tensor,
    dataset_size: int,
    estimator: str = "mws",
    log_prior: Callable[[Tensor], Tensor] = densities.standard_normal_log_density,
) -> dict[str, Tensor]:
    """The KL term of the ELBO split three ways for each sample z_i ~ q(z|n_i): (M,) each, nats.

    mi   = log q(z_i|n_i) - log q(z_i)                 index-code mutual information
    tc   = log q(z_i) - sum_d log q(z_id)              total correlation
    dwkl = sum_d log q(z_id) - log p(z_i)              dimension-wise KL
    with log q(z_i) and log q(z_id) from `minibatch_log_densities` and log p = `log_prior` (the
    model's prior's log-density, summed over dimensions; N(0, I) by default). The three sum to
    log q(z_i|n_i) - log p(z_i), the one-sample Monte-Carlo estimate of KL(q(z|n_i) || p(z)).
    """
    log_qz_given_x = densities.gaussian_log_density(z, mu, logvar)
    log_qz, log_prod_marginals = minibatch_log_densities(z, mu, logvar, dataset_size, estimator)
    return {
        "mi": log_qz_given_x - log_qz,
        "tc": log_qz - log_prod_marginals,
        "dwkl": log_prod_marginals - log_prior(z),
    }
