"""A two-level hierarchical VAE in the manner of the Ladder VAE (Sønderby et al. 2016, "Ladder
Variational Autoencoders").

Config `model=hvae`. Generative model p(z2) p(z1|z2) p(x|z1): z2 ~ N(0, I), z1 given z2 a
diagonal Gaussian from a top-down network, x given z1 the VAE's likelihood. Inference shares the
top-down network: a deterministic bottom-up pass gives each level's own Gaussian estimate
(mu_hat_l, sigma_hat_l); the top level's posterior is its estimate, and going down, z1's
posterior merges its bottom-up estimate with the top-down prior p(z1|z2) by precision weighting
(the paper's eq. 17-19, `precision_weighted`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from autoencoders.losses import densities, reconstruction
from autoencoders.losses.densities import gaussian_kl_between, precision_weighted
from autoencoders.models.iwae import log_likelihoods, standard_normal
from autoencoders.models.vae import VAE, PosteriorStats

# Hidden units of the small networks between the levels (bottom-up d1 -> z2's estimate, top-down
# z2 -> p(z1|z2)): the width of the mlp network's last hidden layer, ours.
LEVEL_WIDTH = 64


class HVAE(VAE):
    """Two latent levels, z1 (`latent_dim`, which the decoder reads) and z2 (`top_latent_dim`).

    Per image, in nats, with z2 ~ q(z2|x) and z1 ~ q(z1|x, z2) (one sample each):
      recon = -log p(x|z1); kl_z2 = KL(q(z2|x) || N(0, I)) in closed form;
      kl_z1 = KL(q(z1|x, z2) || p(z1|z2)) in closed form given the sampled z2;
      kl = kl_z1 + kl_z2; elbo = -(recon + kl), the evidence lower bound (higher is better);
      loss = recon + beta_t * KL_fb over the dimensions of both levels (warm-up and free bits as
      the VAE's; Sønderby et al. introduced the warm-up for these hierarchies).
    `encode(x)` is the deterministic pass: z2 at its posterior mean, then z1's merged posterior
    mean, (N, latent_dim); `decode(z1)` reads z1 only, so `reconstruct` = decode(encode(x)), and
    the probe, projector, traversals and disentanglement metrics use z1, all the decoder sees.
    `sample` goes top-down: z2 ~ N(0, I), z1 ~ p(z1|z2), decoded. val/test log `active_units_z1`,
    `active_units_z2` (Burda et al.'s statistic on each level's deterministic posterior mean) and
    `active_units`, their sum. `log_importance_weights` gives test/nll its two-level estimate.
    The prior is its own: z2's N(0, I) (`prior`, machinery/priors.py) under the learned p(z1|z2),
    so `model.prior` stays normal.
    """

    prior_choices = ("normal",)

    def __init__(self, *, top_latent_dim: int = 16, **settings: Any) -> None:
        super().__init__(**settings)
        latent = self.hparams.latent_dim
        # Bottom-up d1 -> z2's estimate. d1 is the encoder's output, z1's own estimate (mu_hat1, logvar_hat1).
        self.bottom_up = nn.Sequential(
            nn.Linear(2 * latent, LEVEL_WIDTH), nn.ReLU(), nn.Linear(LEVEL_WIDTH, 2 * top_latent_dim)
        )
        # Top-down z2 -> p(z1|z2), shared by the generative model and the posterior's merge.
        self.top_down = nn.Sequential(
            nn.Linear(top_latent_dim, LEVEL_WIDTH), nn.ReLU(), nn.Linear(LEVEL_WIDTH, 2 * latent)
        )
        self._level_stats = {(stage, level): PosteriorStats() for stage in ("val", "test") for level in ("z1", "z2")}

    # --- the two levels ---------------------------------------------------------------------
    def bottom_up_pass(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(mu_hat1, logvar_hat1, mu2, logvar2): z1's bottom-up estimate and q(z2|x)."""
        d1 = self.encoder(x)
        mu_hat1, logvar_hat1 = d1.chunk(2, dim=1)
        mu2, logvar2 = self.bottom_up(d1).chunk(2, dim=-1)
        return mu_hat1, logvar_hat1, mu2, logvar2

    def prior_z1(self, z2: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of p(z1|z2)."""
        mu, logvar = self.top_down(z2).chunk(2, dim=-1)
        return mu, logvar

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q(z1|x, z2) at z2's posterior mean: what `encode` returns the mean of."""
        mu_hat1, logvar_hat1, mu2, _ = self.bottom_up_pass(x)
        return precision_weighted(mu_hat1, logvar_hat1, *self.prior_z1(mu2))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n images drawn top-down: z2 ~ N(0, I), z1 ~ p(z1|z2), decoded (call .eval() first)."""
        reference = next(self.parameters())
        z2 = self.prior.sample((n, self.hparams.top_latent_dim), generator, reference.device, reference.dtype)
        mu, logvar = self.prior_z1(z2)
        return self.decode(mu + torch.exp(0.5 * logvar) * standard_normal(tuple(mu.shape), reference, generator))

    def sample_grid(self, n_images: int, columns: int, generator: torch.Generator | None = None) -> Tensor:
        """The TensorBoard grid's samples: `sample`, since decoding z1 ~ N(0, I) is not this model's prior."""
        return self.sample(n_images, generator)

    # --- the objective --------------------------------------------------------------------
    def loss_terms(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        mu_hat1, logvar_hat1, mu2, logvar2 = self.bottom_up_pass(x)
        z2 = mu2 + torch.exp(0.5 * logvar2) * torch.randn_like(mu2)
        mu_p, logvar_p = self.prior_z1(z2)
        mu1, logvar1 = precision_weighted(mu_hat1, logvar_hat1, mu_p, logvar_p)
        z1 = mu1 + torch.exp(0.5 * logvar1) * torch.randn_like(mu1)
        x_hat = self.decode(z1)
        recon = reconstruction.mean_negative_log_likelihood(self.hparams.loss, x_hat, x)
        kl_z1_per_dim = gaussian_kl_between(mu1, logvar1, mu_p, logvar_p)
        kl_z2_per_dim = self.prior.kl_per_dim(mu2, logvar2)
        kl_z1, kl_z2 = kl_z1_per_dim.sum(1).mean(), kl_z2_per_dim.sum(1).mean()
        penalty = self.kl_weight() * densities.free_bits_kl(
            torch.cat([kl_z1_per_dim, kl_z2_per_dim], dim=1), self.hparams.free_bits
        )
        kl = kl_z1 + kl_z2
        terms = {
            "loss": recon + penalty,
            "recon": recon,
            "kl": kl,
            "kl_z1": kl_z1,
            "kl_z2": kl_z2,
            "elbo": -(recon + kl),
        }
        return terms, x_hat

    def log_importance_weights(
        self, x: Tensor, samples: int, generator: torch.Generator | None = None, labels: Tensor | None = None
    ) -> Tensor:
        """(samples, B) log [p(x|z1) p(z1|z2) p(z2) / (q(z1|x, z2) q(z2|x))] for (z1, z2) drawn from
        the two-level posterior, in nats: test/nll's importance weights (evaluation/likelihood.py).
        Noise: z2's for all samples first, then z1's, from `generator` when given."""
        mu_hat1, logvar_hat1, mu2, logvar2 = self.bottom_up_pass(x)
        z2 = mu2 + torch.exp(0.5 * logvar2) * standard_normal((samples, *mu2.shape), mu2, generator)  # (k, B, top)
        mu_p, logvar_p = self.prior_z1(z2)
        mu1, logvar1 = precision_weighted(mu_hat1, logvar_hat1, mu_p, logvar_p)
        z1 = mu1 + torch.exp(0.5 * logvar1) * standard_normal(tuple(mu1.shape), mu1, generator)
        log_prior = densities.gaussian_log_density(z1, mu_p, logvar_p) + self.prior.log_density(z2)
        log_posterior = densities.gaussian_log_density(z1, mu1, logvar1) + densities.gaussian_log_density(
            z2, mu2, logvar2
        )
        return log_likelihoods(self, x, z1) + log_prior - log_posterior

    # --- per-level statistics at val/test ---------------------------------------------------
    def on_evaluation_batch(self, stage: str, x: Tensor, batch_idx: int) -> dict[str, Tensor]:
        mu_hat1, logvar_hat1, mu2, _ = self.bottom_up_pass(x)
        self._level_stats[stage, "z2"].update(mu2)
        self._level_stats[stage, "z1"].update(precision_weighted(mu_hat1, logvar_hat1, *self.prior_z1(mu2))[0])
        return {}

    def _reset_stats(self, stage: str) -> None:
        for level in ("z1", "z2"):
            self._level_stats[stage, level] = PosteriorStats()

    def _log_active_units(self, stage: str) -> None:
        reduce = self._reduce_over_processes()
        counts = {level: self._level_stats[stage, level].active_units(reduce) for level in ("z1", "z2")}
        self.log_dict({f"{stage}/active_units_{level}": count for level, count in counts.items()})
        self.log(f"{stage}/active_units", counts["z1"] + counts["z2"])

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._reset_stats("val")

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self._reset_stats("test")

    def on_validation_epoch_end(self) -> None:
        super(VAE, self).on_validation_epoch_end()  # the base's epoch means; the VAE's one-level count does not apply
        self._log_active_units("val")

    def on_test_epoch_end(self) -> None:
        super(VAE, self).on_test_epoch_end()
        self._log_active_units("test")
