"""The variational autoencoder (Kingma & Welling 2014; the beta-VAE of Higgins et al. 2017), with beta and collapse controls.

Config `model=vae`; a beta-VAE is `model.beta=4`, a conv VAE `model.net=conv`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from autoencoders.internals import trainer_of
from autoencoders.losses import densities, reconstruction
from autoencoders.machinery.base import AutoencoderBase
from autoencoders.machinery.priors import build_prior

# A latent dimension is "active" when its posterior mean varies across the data by more than
# this (variance of E_q[z_j | x] over x; Burda et al. 2016, section 5.2).
ACTIVE_UNIT_VARIANCE = 0.01


class PosteriorStats:
    """Running sums of the posterior means over one epoch, for their variance across the data."""

    def __init__(self) -> None:
        self.count = 0
        self.sum: Tensor | float = 0.0
        self.sum_sq: Tensor | float = 0.0

    def update(self, mu: Tensor) -> None:
        mu = mu.detach().double()  # float64: E[mu^2] - E[mu]^2 cancels badly in float32
        self.sum = self.sum + mu.sum(0)
        self.sum_sq = self.sum_sq + mu.pow(2).sum(0)
        self.count += len(mu)

    def active_units(self, reduce: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """How many dimensions are active; with `reduce`, over the data of all processes (their
        sums and counts added, so the variance is that of the whole split)."""
        if self.count == 0:
            return torch.tensor(0.0)
        total, total_sq, count = (
            self.sum,
            self.sum_sq,
            torch.tensor(float(self.count), dtype=torch.float64, device=self.sum.device),
        )
        if reduce is not None:
            total, total_sq, count = reduce(torch.cat([total, total_sq, count[None]])).split(
                [len(total), len(total), 1]
            )
        mean = total / count
        variance = total_sq / count - mean.pow(2)
        return (variance > ACTIVE_UNIT_VARIANCE).sum().float()


class VAE(AutoencoderBase):
    """q(z|x) = N(mu(x), diag(exp(logvar(x)))), p(z) = `prior` (N(0, I), or Laplace(0, 1) per
    dimension: machinery/priors.py), p(x|z) Bernoulli or Gaussian.

    Per image: recon = -log p(x|z) summed over pixels (z = mu + sigma * eps, one sample) and
    kl = KL(q(z|x) || p(z)) in closed form, both in nats. The objective ("loss") is the batch
    mean of recon + beta_t * KL_fb, where
    - beta_t ramps linearly from 0 to `beta` over `kl_warmup_epochs` epochs of training steps
      (only while attached to a Trainer and training; val/test use the full beta so that
      checkpoints are compared on one fixed objective);
    - KL_fb = sum_j max(free_bits, batch mean of KL_j) (Kingma et al. 2016), = kl when free_bits=0.
    "elbo" = -(recon + kl) is the evidence lower bound (beta = 1, no free bits), higher is better.
    `loss=mse` uses a Gaussian likelihood with fixed sigma = 1/sqrt(2), normalising constant
    included (see `reconstruction.GAUSSIAN_SIGMA`); with grey-level pixels `bce` is a cross-entropy,
    not a normalised likelihood, so its elbo compares bce models only with each other.
    val/test also log `active_units` (dimensions whose posterior mean has variance > 0.01
    across the data) and val logs `kl_dim/<j>`, the mean KL of each latent dimension.
    """

    encoder_outputs = 2  # mean and log-variance
    stochastic_reconstruction = True  # */mse decodes the posterior mean, not a sample
    prior_choices = ("normal", "laplace")

    def __init__(
        self,
        *,
        beta: float = 1.0,
        kl_warmup_epochs: float = 0.0,
        free_bits: float = 0.0,
        prior: str = "normal",
        loss: str = "bce",
        **shared: Any,
    ) -> None:
        # The VAE's own default likelihood is Bernoulli; the other shared settings are the base's.
        super().__init__(loss=loss, **shared)
        self.prior = build_prior(type(self), prior)
        self._posterior_stats = {"val": PosteriorStats(), "test": PosteriorStats()}

    def posterior(self, x: Tensor, *condition: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z|x), each (B, latent_dim) (`condition`: extra encoder inputs)."""
        mu, logvar = self.encoder(x, *condition).chunk(2, dim=1)
        return mu, logvar

    def encode(self, x: Tensor, *condition: Tensor) -> Tensor:
        return self.posterior(x, *condition)[0]

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n images decoded from z ~ p(z) (call .eval() first: conv BatchNorm uses batch stats in train mode)."""
        z = self.prior.sample((n, self.hparams.latent_dim), generator, device=self.device, dtype=self.dtype)
        return self.decode(z)

    def warmup_fraction(self) -> float:
        """How far the KL warm-up is, from 0 to 1 (1 when off, and outside training under a Trainer).

        The fraction counts training batches seen, not optimizer steps, so that accumulating
        gradients over several batches (++trainer.accumulate_grad_batches) does not stretch it.
        """
        warmup_epochs = self.hparams.kl_warmup_epochs
        if not self.training or warmup_epochs == 0 or trainer_of(self) is None:
            return 1.0
        batches = warmup_epochs * self.trainer.num_training_batches
        if not 0 < batches < math.inf:  # an iterable loader of unknown length: no warm-up
            return 1.0
        seen = self.trainer.fit_loop.total_batch_idx  # batches trained before this one (restored on resume)
        return min(1.0, seen / batches)

    def kl_weight(self) -> float:
        """beta, scaled by the warm-up fraction while training under a Trainer."""
        return self.hparams.beta * self.warmup_fraction()

    def loss_terms(self, x: Tensor, *condition: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        mu, logvar = self.posterior(x, *condition)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # reparameterization: grads reach mu, logvar
        x_hat = self.decode(z, *condition)
        recon = reconstruction.mean_negative_log_likelihood(self.hparams.loss, x_hat, x)  # batch means from here on
        kl = self.prior.kl_per_dim(mu, logvar).sum(1).mean()
        penalty, own_terms = self.regularizer(mu, logvar, z)
        terms = {"loss": recon + penalty, "recon": recon, "kl": kl, "elbo": -(recon + kl), **own_terms}
        return terms, x_hat

    def regularizer(self, mu: Tensor, logvar: Tensor, z: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """What the objective adds to recon (beta_t * KL_fb) and the terms it logs besides kl (none).
        Subclasses that split the KL differently (the tcvae) replace this."""
        kl_per_dim = self.prior.kl_per_dim(mu, logvar)
        return self.kl_weight() * densities.free_bits_kl(kl_per_dim, self.hparams.free_bits), {}

    # --- epoch-level statistics of the posterior (val/test) ---------------------------------
    def on_evaluation_batch(self, stage: str, x: Tensor, batch_idx: int, *condition: Tensor) -> dict[str, Tensor]:
        mu, logvar = self.posterior(x, *condition)
        self._posterior_stats[stage].update(mu)
        if stage != "val":
            return {}
        kl_per_dim = self.prior.kl_per_dim(mu, logvar).mean(0)
        return {f"kl_dim/{j}": value for j, value in enumerate(kl_per_dim)}

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._posterior_stats["val"] = PosteriorStats()

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self._posterior_stats["test"] = PosteriorStats()

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self.log("val/active_units", self._posterior_stats["val"].active_units(self._reduce_over_processes()))

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self.log("test/active_units", self._posterior_stats["test"].active_units(self._reduce_over_processes()))
