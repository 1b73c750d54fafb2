"""Importance-weighted estimate of a VAE's test log-likelihood (Burda et al. 2016).

    log p(x) >= log (1/k) sum_k p(x|z_k) p(z_k) / q(z_k|x),   z_k ~ q(z|x)

in nats per image, with the model's own likelihood (Bernoulli for `loss=bce`, the fixed-sigma
Gaussian for `loss=mse`, `reconstruction.NEGATIVE_LOG_LIKELIHOODS`), so it sits beside `test/elbo`
(the k = 1 bound, in expectation) and tightens as k grows. `test/nll` is its negative. For the
cvae every term is conditioned on the image's label: the estimate is of -log p(x|y). p(z) is the
model's prior (`model.prior`: N(0, I) or Laplace(0, 1), machinery/priors.py). A model with latent
levels of its own (the hvae) gives its weights itself (`ImportanceWeighted` in the contract),
over all its levels: p(x|z1) p(z1|z2) p(z2) / q(z1, z2|x).
"""

from __future__ import annotations

import torch
from torch import Tensor

from autoencoders import machine
from autoencoders.errors import ConfigError
from autoencoders.losses import densities
from autoencoders.machinery.contract import ImportanceWeighted
from autoencoders.machinery.inference import chunks
from autoencoders.models.iwae import importance_sampling_bytes, log_importance_weights  # the iwae's own bound

NLL_BATCH = 500  # images per log_importance_weights call (importance_weighted_nll's batch_size)


def importance_weighted_nll(
    model: torch.nn.Module,
    images: Tensor,
    samples: int = 100,
    batch_size: int = NLL_BATCH,
    seed: int = 0,
    labels: Tensor | None = None,
) -> Tensor:
    """-log p(x) (-log p(x|y) given `labels`) estimated with `samples` importance samples per image:
    (N,) nats, on the CPU. Seeded, so two evaluations of one checkpoint agree. Call under eval
    mode and no_grad.
    """
    generator = torch.Generator().manual_seed(seed)
    estimates = []
    for chunk, chunk_labels in chunks(images, labels, batch_size):
        chunk = chunk.to(device=model.device, dtype=model.dtype)
        if isinstance(model, ImportanceWeighted):
            log_weights = model.log_importance_weights(chunk, samples, generator, chunk_labels)
        else:
            log_weights = log_importance_weights(model, chunk, samples, generator, chunk_labels)
        estimates.append(-densities.importance_weighted_bound(log_weights).double().cpu())
    return torch.cat(estimates)


def check_nll_memory(samples: int, images: int, model: torch.nn.Module) -> None:
    """Refuse, before training, `samples` importance samples per image that cannot fit in the
    machine's memory at once for `images` test images (at most NLL_BATCH at a time)."""
    memory, images = machine.memory(), min(NLL_BATCH, images)
    channels, height, width = model.input_shape
    needed = importance_sampling_bytes(samples, images, model.hparams.latent_dim, channels * height * width)
    if memory is not None and needed > memory:
        raise ConfigError(
            f"eval.nll_samples={samples} needs at least {needed / 2**30:.1f} GiB at once for test/nll "
            f"({images} images of {channels}×{height}×{width} at a time), more than this machine's "
            f"{memory / 2**30:.1f} GiB of memory. Use fewer samples (Burda et al. 2016 report k = 5000; 100 is "
            "the default), or eval.nll_samples=0 to skip test/nll."
        )
