"""Matching the codes' distribution to a target, in nats: the adversarial terms (Goodfellow et
al. 2014; the adversarial autoencoder of Makhzani et al. 2016 and FactorVAE's discriminator) and
the maximum mean discrepancy of WAE-MMD (Tolstikhin et al. 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


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
