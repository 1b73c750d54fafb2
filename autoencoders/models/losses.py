"""Pure loss functions, each documented with its units.

The models train on `mean_reconstruction` and `mean_negative_log_likelihood`: batch means of
per-pixel (or per-image) losses, by PyTorch's fused kernels. Per-image forms exist where one
value per image is needed (the importance-weighted likelihood). Penalties on codes are per image
too, except the batch-level ones (free bits, KL sparsity), which return one scalar, as their
docstrings say. Tests hold every fused mean equal to the mean of per-image sums by hand.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from autoencoders.schema import check_value

# model.loss -> the batch's per-pixel mean loss, by PyTorch's fused kernels: one op forward and one
# backward instead of four each. On the mlp that took the loss from 0.85 to 0.3 ms of a ~6 ms
# training step. The names are schema.RECONSTRUCTION_LOSSES.
RECONSTRUCTION_LOSSES = {"mse": F.mse_loss, "bce": F.binary_cross_entropy}


def mean_reconstruction(name: str, x_hat: Tensor, x: Tensor) -> Tensor:
    """The batch's per-pixel mean reconstruction loss (a scalar); `name` is mse or bce."""
    check_value("model.loss", name)
    return RECONSTRUCTION_LOSSES[name](x_hat, x)


def binary_cross_entropy(x_hat: Tensor, x: Tensor) -> Tensor:
    """Sum of per-pixel binary cross-entropies per image (x_hat are probabilities), in nats."""
    # F.binary_cross_entropy clamps log(0) to -100, so a saturated sigmoid stays finite.
    return F.binary_cross_entropy(x_hat, x, reduction="none").flatten(1).sum(1)


# --- VQ-VAE: the codebook and commitment terms (van den Oord et al. 2017, eq. 3) ---------------
def codebook_term(z_e: Tensor, z_q: Tensor) -> Tensor:
    """mean ||sg[z_e] - e||^2 over token elements: moves the chosen codes e = z_q toward the
    encoder outputs z_e (no gradient reaches the encoder). A scalar."""
    return F.mse_loss(z_q, z_e.detach())


def commitment_term(z_e: Tensor, z_q: Tensor) -> Tensor:
    """mean ||z_e - sg[e]||^2 over token elements: keeps the encoder outputs near their codes
    (no gradient reaches the codebook). The same value as `codebook_term`; a scalar."""
    return F.mse_loss(z_e, z_q.detach())


# --- VAE: Gaussian posterior, closed-form KL, likelihoods ----------------------------------
# The Gaussian likelihood's fixed standard deviation. With sigma = 1/sqrt(2) the per-pixel
# NLL is (x - x_hat)^2 + log(pi)/2: the squared error of the common "MSE-sum VAE" plus the
# normalising constant, so its ELBO is a true bound. Any other sigma only rescales the
# squared error against the KL, which `model.beta` already does.
GAUSSIAN_SIGMA = 2**-0.5


def _gaussian_log_normaliser(sigma: float) -> float:
    """log(sigma sqrt(2 pi)): the per-pixel constant of the Gaussian NLL."""
    return math.log(sigma) + 0.5 * math.log(2 * math.pi)


def gaussian_nll(x_hat: Tensor, x: Tensor, sigma: float = GAUSSIAN_SIGMA) -> Tensor:
    """-log N(x; x_hat, sigma^2 I) per image, summed over pixels, in nats."""
    per_pixel = 0.5 * ((x - x_hat) / sigma) ** 2 + _gaussian_log_normaliser(sigma)
    return per_pixel.flatten(1).sum(1)


# The VAE's likelihoods by `model.loss` name: Bernoulli (bce) or the fixed-sigma Gaussian (mse).
NEGATIVE_LOG_LIKELIHOODS = {"bce": binary_cross_entropy, "mse": gaussian_nll}


def mean_negative_log_likelihood(name: str, x_hat: Tensor, x: Tensor) -> Tensor:
    """NEGATIVE_LOG_LIKELIHOODS[name](x_hat, x).mean(), from the fused per-pixel means (see above)."""
    per_pixel = mean_reconstruction(name, x_hat, x)  # the bce NLL itself; for mse, the squared error
    if name == "mse":
        per_pixel = per_pixel / (2 * GAUSSIAN_SIGMA**2) + _gaussian_log_normaliser(GAUSSIAN_SIGMA)
    return per_pixel * x[0].numel()


def gaussian_kl_per_dim(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) for each latent dimension, shape (B, latent_dim)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def free_bits_kl(kl_per_dim: Tensor, free_bits: float) -> Tensor:
    """sum_j max(free_bits, mean_batch KL_j): a scalar (Kingma et al. 2016, 'free bits').

    The floor applies to each dimension's batch mean, so dimensions below it get no gradient
    from the KL and the encoder may use them freely; with free_bits = 0 this is the mean KL.
    """
    return kl_per_dim.mean(0).clamp(min=free_bits).sum()


# --- sparse codes --------------------------------------------------------------------------
def l1_sparsity(code: Tensor) -> Tensor:
    """Mean absolute activation over the code units, per image."""
    return code.abs().mean(1)


def bernoulli_kl(target: float, rate: Tensor) -> Tensor:
    """KL(Bernoulli(target) || Bernoulli(rate)), elementwise; rate is clamped away from 0 and 1."""
    rate = rate.clamp(1e-6, 1 - 1e-6)  # a dead or saturated unit gives a large, finite penalty
    return target * torch.log(target / rate) + (1 - target) * torch.log((1 - target) / (1 - rate))


def kl_sparsity(code: Tensor, target: float) -> Tensor:
    """sum_j KL(target || rho_hat_j) with rho_hat_j the batch-mean activation of unit j: a scalar.

    A batch-level penalty (rho_hat needs the whole batch), for codes in (0, 1).
    """
    return bernoulli_kl(target, code.mean(0)).sum()


# --- contractive penalty ||J_f(x)||_F^2 ------------------------------------------------------
def relu_mlp_jacobian_frobenius_sq(weights: list[Tensor], masks: list[Tensor]) -> Tensor:
    """||J||_F^2 per image for f = W_L relu(... relu(W_1 x)) (biases do not enter J).

    weights: [W_1, ..., W_L] with W_i of shape (out_i, in_i); masks: the (B, out_i) 0/1 ReLU
    derivatives after layers 1..L-1. J = W_L D_{L-1} ... D_1 W_1 is built from the code side,
    where it has only latent_dim rows, and the widest factor W_1 enters through its Gram matrix,
    ||M W_1||_F^2 = sum((M @ W_1 W_1^T) * M): for 784 -> 256 that is 256 instead of 784
    multiply-adds per entry of M. Differentiable in the weights (no create_graph needed).
    """
    rows = weights[-1].expand(masks[0].shape[0], *weights[-1].shape)  # (B, latent, out_{L-1})
    for weight, mask in zip(reversed(weights[1:-1]), reversed(masks[1:])):
        rows = (rows * mask[:, None, :]) @ weight
    rows = rows * masks[0][:, None, :]
    gram = weights[0] @ weights[0].T
    return ((rows @ gram) * rows).sum((1, 2))


def jacobian_frobenius_sq(code: Tensor, x: Tensor, projections: int = 0, create_graph: bool = True) -> Tensor:
    """||d code_i / d x_i||_F^2 per image, from code = f(x) computed with x.requires_grad.

    Assumes each code row depends only on its own image (no train-mode BatchNorm), so one
    vector-Jacobian product over the whole batch gives every image's v^T J at once.
    projections = 0: exact, one product per code unit with v = e_j.
    projections = k > 0: unbiased Hutchinson-style estimate, the mean of ||v^T J||^2 over k
    draws v ~ N(0, I) (E[v v^T] = I, so E||v^T J||^2 = ||J||_F^2).
    A Python loop over products beats `is_grads_batched` here: vmap over the conv backward
    was 7x slower (7.7 s vs 1.1 s for the exact conv penalty on 256 images).
    """
    if projections == 0:
        basis = torch.eye(code.shape[1], dtype=code.dtype, device=code.device)
        directions = basis[:, None, :].expand(-1, len(code), -1)  # e_j for every image
        scale = 1.0
    else:
        directions = torch.randn(projections, *code.shape, dtype=code.dtype, device=code.device)
        scale = 1.0 / projections
    total = code.new_zeros(len(code))
    for direction in directions:
        (row,) = torch.autograd.grad(code, x, grad_outputs=direction, create_graph=create_graph, retain_graph=True)
        total = total + row.pow(2).flatten(1).sum(1)
    return total * scale


# --- VAE evaluation: importance-weighted log-likelihood (Burda et al. 2016) ----------------------
def standard_normal_log_density(z: Tensor) -> Tensor:
    """log N(z; 0, I), summed over the last dimension, in nats."""
    return -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)


def gaussian_log_density_per_dim(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z_d; mu_d, exp(logvar_d)) for each dimension, in nats; broadcasts."""
    return -0.5 * ((z - mu).pow(2) / logvar.exp() + logvar + math.log(2 * math.pi))


def gaussian_log_density(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension; broadcasts over leading ones."""
    return gaussian_log_density_per_dim(z, mu, logvar).sum(-1)


def importance_weighted_bound(log_weights: Tensor) -> Tensor:
    """log (1/k) sum_k exp(log_weights), over dim 0: the k-sample bound on log p(x), per image.

    log_weights (k, B) are log p(x|z_k) + log p(z_k) - log q(z_k|x) for z_k ~ q(z|x). At k = 1
    this is the one-sample ELBO; it never falls below the mean of the same weights (Jensen) and
    rises towards log p(x) as k grows.
    """
    return torch.logsumexp(log_weights, dim=0) - math.log(log_weights.shape[0])


# --- beta-TCVAE: the KL split by minibatch sampling (Chen et al. 2018) ------------------------
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
    log_q = gaussian_log_density_per_dim(z[:, None, :], mu[None], logvar[None])  # (i, j, d)
    log_qz = torch.logsumexp(log_q.sum(2) + log_w, dim=1)
    log_prod_marginals = torch.logsumexp(log_q + log_w[:, :, None], dim=1).sum(1)
    return log_qz, log_prod_marginals


def total_correlation_decomposition(
    z: Tensor, mu: Tensor, logvar: Tensor, dataset_size: int, estimator: str = "mws"
) -> dict[str, Tensor]:
    """The KL term of the ELBO split three ways for each sample z_i ~ q(z|n_i): (M,) each, nats.

    mi   = log q(z_i|n_i) - log q(z_i)                 index-code mutual information
    tc   = log q(z_i) - sum_d log q(z_id)              total correlation
    dwkl = sum_d log q(z_id) - log p(z_i)              dimension-wise KL, p = N(0, I)
    with log q(z_i) and log q(z_id) from `minibatch_log_densities`. The three sum to
    log q(z_i|n_i) - log p(z_i), the one-sample Monte-Carlo estimate of KL(q(z|n_i) || p(z)).
    """
    log_qz_given_x = gaussian_log_density(z, mu, logvar)
    log_qz, log_prod_marginals = minibatch_log_densities(z, mu, logvar, dataset_size, estimator)
    return {
        "mi": log_qz_given_x - log_qz,
        "tc": log_qz - log_prod_marginals,
        "dwkl": log_prod_marginals - standard_normal_log_density(z),
    }


# --- adversarial terms (Goodfellow et al. 2014; the aae of Makhzani et al. 2016) ----------------
def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """-mean log D(real) - mean log(1 - D(fake)) with D = sigmoid(logit), in nats: the
    discriminator's cross-entropy, real (prior draws) labelled 1 and fake (codes) 0. A scalar;
    2 log 2 = 1.386 when it cannot tell them apart (D = 1/2 everywhere)."""
    return F.binary_cross_entropy_with_logits(
        real_logits, torch.ones_like(real_logits)
    ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def generator_loss(fake_logits: Tensor) -> Tensor:
    """-mean log D(fake), in nats: the non-saturating generator loss (Goodfellow et al. 2014, §3),
    which the encoder minimises to make its codes pass for prior draws. A scalar."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def discriminator_accuracy(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The fraction of real and fake inputs the discriminator labels right (logit > 0: real)."""
    right = (real_logits > 0).float().sum() + (fake_logits <= 0).float().sum()
    return right / (len(real_logits) + len(fake_logits))


# --- WAE-MMD: maximum mean discrepancy to the prior (Tolstikhin et al. 2018) ------------------------
# The inverse multiquadric kernel's scales in the official WAE code (tolstikhin/wae, wae.py,
# mmd_penalty): each is a multiple of 2 * d_z * sigma^2, the expected ||z - z'||^2 of two prior draws.
IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def mmd_inverse_multiquadric(codes: Tensor, prior_draws: Tensor, prior_variance: float = 1.0) -> Tensor:
    """The unbiased estimate of MMD^2 between the codes' distribution and the prior (a scalar),
    with k(a, b) = C / (C + ||a - b||^2) summed over C in IMQ_SCALES x 2 * d_z * prior_variance:

        sum_{i != j} [k(q_i, q_j) + k(p_i, p_j)] / (n (n - 1))  -  2 sum_{i, j} k(q_i, p_j) / n^2

    for n codes q and n prior draws p (Tolstikhin et al. 2018, Algorithm 2, and the official code).
    Its expectation is 0 when the codes follow the prior; single estimates may be slightly negative.
    """
    n = len(codes)
    base = 2.0 * codes.shape[1] * prior_variance
    both = torch.cat([codes, prior_draws])
    norms = both.pow(2).sum(1)
    # ||a - b||^2 from inner products: no square root, whose gradient at the diagonal's 0 is not finite.
    distances = (norms[:, None] + norms[None, :] - 2.0 * both @ both.T).clamp(min=0)
    within = 1.0 - torch.eye(n, dtype=codes.dtype, device=codes.device)
    total = codes.new_zeros(())
    for scale in IMQ_SCALES:
        kernel = (base * scale) / (base * scale + distances)
        same = ((kernel[:n, :n] + kernel[n:, n:]) * within).sum() / (n * (n - 1))
        total = total + same - 2.0 * kernel[:n, n:].sum() / n**2
    return total
