"""The importance weighted autoencoder (Burda et al. 2016) and its k-sample bound, which the
evaluation's likelihood estimate (evaluation/likelihood.py, `test/nll`) uses too.

Config `model=iwae`, `model.samples=k`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from autoencoders.errors import ConfigError
from autoencoders.losses import densities, reconstruction
from autoencoders.machinery.inference import condition
from autoencoders.models.vae import VAE

# Decodings per forward pass: k * images are decoded in chunks of about this many, which keeps
# memory near 100 MB for 28x28 images whatever k and the batch are.
DECODES_PER_CHUNK = 10_000


def importance_sampling_bytes(samples: int, images: int, latent_dim: int, pixels: int) -> int:
    """The least memory one call of log_importance_weights on `images` images holds at once, in
    float32: the noise and the codes (samples × images × latent_dim each), and one chunk's
    decodings and their targets (at least `samples` images of `pixels` each). Training holds more
    (the graph); this is the floor below which a run cannot even start a step."""
    return 4 * samples * (2 * images * latent_dim + 2 * pixels)


def log_importance_weights(
    model: torch.nn.Module,
    x: Tensor,
    samples: int,
    generator: torch.Generator | None = None,
    labels: Tensor | None = None,
    posterior: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """(samples, B) log p(x|z_k) + log p(z_k) - log q(z_k|x) for z_k ~ q(z|x), k = 1..samples, nats.

    `model` is a VAE (`posterior`, `prior`, `decode`, `hparams.loss`); differentiable (the iwae trains on
    it), so evaluations call it in eval mode under no_grad. `labels`: the images' classes, which
    conditional models take beside x and z. The noise comes from `generator` on the CPU (seeded
    evaluations), or without one from the global RNG on the model's device (training).
    `posterior`: q(z|x)'s mean and log-variance when the caller has them already.
    """
    mu, logvar = posterior if posterior is not None else model.posterior(x, *condition(model, labels))
    z = mu + torch.exp(0.5 * logvar) * standard_normal((samples, *mu.shape), mu, generator)  # (k, B, d)
    log_prior = model.prior.log_density(z)
    log_posterior = densities.gaussian_log_density(z, mu, logvar)
    return log_likelihoods(model, x, z, labels) + log_prior - log_posterior


def standard_normal(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard normal noise of `shape` on like's device and dtype (the reparameterization's eps,
    whatever the prior): from `generator` (drawn on its own device, then moved) when given, else
    from the global RNG on like's device."""
    if generator is None:
        return torch.randn(shape, dtype=like.dtype, device=like.device)
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=generator.device).to(like.device)


def log_likelihoods(model: torch.nn.Module, x: Tensor, z: Tensor, labels: Tensor | None = None) -> Tensor:
    """(k, B) log p(x|z_k) for codes z (k, B, latent_dim), with the model's likelihood
    (`hparams.loss`), in nats. Decodes k samples for a few images at a time: memory stays bounded
    and the batch of decodings stays large enough for fast matrix products."""
    nll = reconstruction.NEGATIVE_LOG_LIKELIHOODS[model.hparams.loss]
    samples = len(z)
    per_chunk = max(1, DECODES_PER_CHUNK // samples)
    log_likelihood = []
    for start in range(0, len(x), per_chunk):
        images = x[start : start + per_chunk]
        given = condition(model, labels[start : start + per_chunk].repeat(samples) if labels is not None else None)
        decoded = model.decode(z[:, start : start + per_chunk].flatten(0, 1), *given)  # (k * b, C, H, W), k-major
        targets = images.expand(samples, *images.shape).flatten(0, 1)
        log_likelihood.append(-nll(decoded, targets).view(samples, len(images)))
    return torch.cat(log_likelihood, dim=1)


class IWAE(VAE):
    """The VAE's networks, likelihood, posterior and prior, trained on the k-sample bound

        iw_bound = log (1/k) sum_k p(x|z_k) p(z_k) / q(z_k|x),   z_k ~ q(z|x)     (nats per image)

    loss = -iw_bound (batch mean). k = `samples`: 1 is the VAE's objective with a Monte-Carlo KL;
    the bound tightens toward log p(x) as k grows (Burda et al. 2016, theorem 1). `kl` (closed
    form), val's kl_dim/<j> and active_units are logged as for the VAE; `encode` is the posterior
    mean. beta, KL warm-up and free bits reweigh a KL the bound does not have: they must stay off.
    """

    def __init__(self, *, samples: int = 5, **settings: Any) -> None:
        super().__init__(**settings)
        changed = {
            name: self.hparams[name]
            for name in ("beta", "kl_warmup_epochs", "free_bits")
            if self.hparams[name] != (1.0 if name == "beta" else 0.0)
        }
        if changed:
            given = ", ".join(f"model.{name}={value!r}" for name, value in changed.items())
            raise ConfigError(
                f"{given}: not allowed for the iwae, whose bound has no separate KL term to weigh. "
                "Remove the override (beta 1, kl_warmup_epochs 0, free_bits 0), or use model=vae."
            )

    def loss_terms(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        mu, logvar = self.posterior(x)
        log_weights = log_importance_weights(self, x, self.hparams.samples, posterior=(mu, logvar))
        bound = densities.importance_weighted_bound(log_weights).mean()
        kl = self.prior.kl_per_dim(mu, logvar).sum(1).mean()
        # The deterministic reconstruction (*/mse measures it; stochastic_reconstruction is inherited).
        return {"loss": -bound, "iw_bound": bound, "kl": kl}, self.decode(mu)
