"""Importance-weighted estimate of a VAE's test log-likelihood (Burda et al. 2016).

    log p(x) >= log (1/k) sum_k p(x|z_k) p(z_k) / q(z_k|x),   z_k ~ q(z|x)

in nats per image, with the model's own likelihood (Bernoulli for `loss=bce`, the fixed-sigma
Gaussian for `loss=mse`, `losses.NEGATIVE_LOG_LIKELIHOODS`), so it sits beside `test/elbo`
(the k = 1 bound, in expectation) and tightens as k grows. `test/nll` is its negative. For the
cvae every term is conditioned on the image's label: the estimate is of -log p(x|y).
"""

from __future__ import annotations

import torch
from torch import Tensor

from autoencoders.models import losses
from autoencoders.models.inference import chunks, condition

# Decodings per forward pass: k * images are decoded in chunks of about this many, which keeps
# memory near 100 MB for 28x28 images whatever k and the batch are.
DECODES_PER_CHUNK = 10_000


def log_importance_weights(model: torch.nn.Module, x: Tensor, samples: int, generator: torch.Generator | None = None,
                           labels: Tensor | None = None) -> Tensor:  # fmt: skip
    """(samples, B) log p(x|z_k) + log p(z_k) - log q(z_k|x) for z_k ~ q(z|x), k = 1..samples.

    `model` is a VAE (`posterior`, `decode`, `hparams.loss`); call it in eval mode without grad.
    `labels`: the images' classes, which conditional models take beside x and z.
    """
    nll = losses.NEGATIVE_LOG_LIKELIHOODS[model.hparams.loss]
    mu, logvar = model.posterior(x, *condition(model, labels))
    noise = torch.randn(samples, *mu.shape, generator=generator, dtype=mu.dtype).to(mu.device)
    z = mu + torch.exp(0.5 * logvar) * noise  # (k, B, d)
    log_prior = losses.standard_normal_log_density(z)
    log_posterior = losses.gaussian_log_density(z, mu, logvar)
    # Decode k samples for a few images at a time: memory stays bounded and the batch of
    # decodings stays large enough for fast matrix products.
    per_chunk = max(1, DECODES_PER_CHUNK // samples)
    log_likelihood = []
    for start in range(0, len(x), per_chunk):
        images = x[start : start + per_chunk]
        given = condition(model, labels[start : start + per_chunk].repeat(samples) if labels is not None else None)
        decoded = model.decode(z[:, start : start + per_chunk].flatten(0, 1), *given)  # (k * b, C, H, W), k-major
        targets = images.expand(samples, *images.shape).flatten(0, 1)
        log_likelihood.append(-nll(decoded, targets).view(samples, len(images)))
    return torch.cat(log_likelihood, dim=1) + log_prior - log_posterior


def importance_weighted_nll(model: torch.nn.Module, images: Tensor, samples: int = 100, batch_size: int = 500,
                            seed: int = 0, labels: Tensor | None = None) -> Tensor:  # fmt: skip
    """-log p(x) (-log p(x|y) given `labels`) estimated with `samples` importance samples per image:
    (N,) nats, on the CPU. Seeded, so two evaluations of one checkpoint agree. Call under eval
    mode and no_grad.
    """
    generator = torch.Generator().manual_seed(seed)
    estimates = []
    for chunk, chunk_labels in chunks(images, labels, batch_size):
        chunk = chunk.to(device=model.device, dtype=model.dtype)
        log_weights = log_importance_weights(model, chunk, samples, generator, chunk_labels)
        estimates.append(-losses.importance_weighted_bound(log_weights).double().cpu())
    return torch.cat(estimates)
