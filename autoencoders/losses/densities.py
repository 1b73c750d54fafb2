"""Densities and divergences of the latent codes, in nats.

The VAE's closed-form KL to the standard normal prior and its free-bits floor (Kingma et al.
2016), log-densities of diagonal Gaussians, the Laplace prior's log-density and closed-form KL
from a Gaussian, and the k-sample importance-weighted bound on log p(x) (Burda et al. 2016).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def gaussian_kl_per_dim(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) for each latent dimension, shape (B, latent_dim)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def free_bits_kl(kl_per_dim: Tensor, free_bits: float) -> Tensor:
    """sum_j max(free_bits, mean_batch KL_j): a scalar (Kingma et al. 2016, 'free bits').

    The floor applies to each dimension's batch mean, so dimensions below it get no gradient
    from the KL and the encoder may use them freely; with free_bits = 0 this is the mean KL.
    """
    return kl_per_dim.mean(0).clamp(min=free_bits).sum()


def standard_normal_log_density_per_dim(z: Tensor) -> Tensor:
    """log N(z_d; 0, 1) for each element of z, in nats."""
    return -0.5 * (z.pow(2) + math.log(2 * math.pi))


def standard_normal_log_density(z: Tensor) -> Tensor:
    """log N(z; 0, I), summed over the last dimension, in nats."""
    return standard_normal_log_density_per_dim(z).sum(-1)


def gaussian_log_density_per_dim(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z_d; mu_d, exp(logvar_d)) for each dimension, in nats; broadcasts."""
    return -0.5 * ((z - mu).pow(2) / logvar.exp() + logvar + math.log(2 * math.pi))


def gaussian_log_density(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension; broadcasts over leading ones."""
    return gaussian_log_density_per_dim(z, mu, logvar).sum(-1)


def laplace_log_density_per_dim(z: Tensor, scale: float = 1.0) -> Tensor:
    """log Laplace(z_d; 0, scale) = -|z_d| / scale - log(2 scale) for each dimension, in nats."""
    return -z.abs() / scale - math.log(2 * scale)


def gaussian_laplace_kl_per_dim(mu: Tensor, logvar: Tensor, scale: float = 1.0) -> Tensor:
    """KL(N(mu, exp(logvar)) || Laplace(0, scale)) for each latent dimension, (B, latent_dim), nats.

    The Gaussian's negative entropy plus its cross-entropy with the Laplace density,
        -(log(2 pi sigma^2) + 1) / 2 + log(2 scale) + E|z| / scale,
    where E|z| = sigma sqrt(2/pi) exp(-mu^2 / (2 sigma^2)) + mu erf(mu / (sigma sqrt 2)) is the mean of
    the folded normal (torch.distributions registers the same form for Normal against Laplace).
    Exact, so the KL term, free bits and kl_dim/<j> carry no Monte-Carlo noise.
    """
    sigma = torch.exp(0.5 * logvar)
    standardized = mu / sigma
    mean_abs = sigma * math.sqrt(2 / math.pi) * torch.exp(-0.5 * standardized.pow(2)) + mu * torch.erf(
        standardized / math.sqrt(2)
    )
    return -0.5 * (logvar + math.log(2 * math.pi) + 1.0) + math.log(2 * scale) + mean_abs / scale


def importance_weighted_bound(log_weights: Tensor) -> Tensor:
    """log (1/k) sum_k exp(log_weights), over dim 0: the k-sample bound on log p(x), per image.

    log_weights (k, B) are log p(x|z_k) + log p(z_k) - log q(z_k|x) for z_k ~ q(z|x). At k = 1
    this is the one-sample ELBO; it never falls below the mean of the same weights (Jensen) and
    rises towards log p(x) as k grows.
    """
    return torch.logsumexp(log_weights, dim=0) - math.log(log_weights.shape[0])


# --- two Gaussians: the hierarchical VAE's merge and KL (Sønderby et al. 2016) ---------------------
def precision_weighted(mu_hat: Tensor, logvar_hat: Tensor, mu_p: Tensor, logvar_p: Tensor) -> tuple[Tensor, Tensor]:
    """The Gaussian proportional to N(mu_hat, var_hat) * N(mu_p, var_p) per dimension (Sønderby et
    al. 2016, eq. 18-19): var_q = 1 / (1/var_hat + 1/var_p), mu_q = var_q (mu_hat/var_hat + mu_p/var_p).
    Returned as (mu_q, logvar_q), computed in log space: the weights var_q/var_hat and var_q/var_p
    lie in [0, 1] however small either variance is."""
    logvar_q = -torch.logaddexp(-logvar_hat, -logvar_p)
    mu_q = mu_hat * torch.exp(logvar_q - logvar_hat) + mu_p * torch.exp(logvar_q - logvar_p)
    return mu_q, logvar_q


def gaussian_kl_between(mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor) -> Tensor:
    """KL(N(mu_q, var_q) || N(mu_p, var_p)) for each dimension, in nats (broadcasts)."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) / logvar_p.exp() - 1.0)
