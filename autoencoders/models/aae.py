"""The adversarial autoencoder (Makhzani et al. 2016).

Config `model=aae`. A deterministic autoencoder whose codes are pushed toward the prior
p(z) = N(0, I) by a discriminator on z, trained through the phased loop (machinery/phases.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from autoencoders.losses import matching, reconstruction
from autoencoders.machinery.phases import Phase, PhasedAutoencoder
from autoencoders.machinery.priors import build_prior
from autoencoders.nets.discriminator import Discriminator

# The discriminator's hidden layers: Makhzani et al. (2016) use two layers of 1000 ReLU units
# for the adversarial network on MNIST; its width is model.discriminator_width.
DISCRIMINATOR_DEPTH = 2


class AAE(PhasedAutoencoder):
    """z = f(x) (deterministic), x_hat = g(z); a discriminator D(z) tells prior draws from codes.

    Each training batch runs the paper's three phases, each with its own Adam:
    1. reconstruction: encoder and decoder minimise `recon`, the per-pixel reconstruction loss
       (`model.loss`, mse by default, as `model=mlp`);
    2. discriminator: D minimises `disc_loss` = -mean log D(p) - mean log(1 - D(f(x))), nats,
       p ~ N(0, I), on the codes after phase 1;
    3. generator: the encoder minimises `gen_loss` = -mean log D(f(x)), nats (non-saturating).
    "loss" (the checkpoint monitor) is recon; `disc_acc` is the fraction of prior draws and codes
    D labels right (0.5: it cannot tell them apart). Phase 2 uses `adversarial_lr` (1e-4), phase 3
    `generator_lr` (1e-3, as phase 1's `lr`): a generator as slow as the discriminator lets the
    reconstruction phase move the codes ten times faster than it pulls them back, and D wins
    (docs/objectives.md has both settings' figures). The prior is the paper's N(0, I)
    (`prior`, machinery/priors.py), which model.prior leaves as it is.
    """

    prior_choices = ("normal",)

    def __init__(
        self,
        *,
        discriminator_width: int = 1000,
        adversarial_lr: float = 1e-4,
        generator_lr: float = 1e-3,
        prior: str = "normal",
        **shared: Any,
    ) -> None:
        super().__init__(**shared)
        self.prior = build_prior(type(self), prior)
        self.discriminator = Discriminator(self.hparams.latent_dim, discriminator_width, DISCRIMINATOR_DEPTH)

    def optimizer_settings(self) -> dict[str, dict[str, Any]]:
        encoder = list(self.encoder.parameters())
        return {
            "autoencoder": {"params": encoder + list(self.decoder.parameters())},
            "discriminator": {"params": list(self.discriminator.parameters()), "lr": self.hparams.adversarial_lr},
            "generator": {"params": encoder, "lr": self.hparams.generator_lr},
        }

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n images decoded from prior draws z ~ N(0, I) (call .eval() first, as for the vae)."""
        z = self.prior.sample((n, self.hparams.latent_dim), generator, device=self.device, dtype=self.dtype)
        return self.decode(z)

    def prior_draws(self, z: Tensor) -> Tensor:
        """As many draws from the prior as there are codes z, on their device, in their dtype."""
        return self.prior.sample(z.shape, device=z.device, dtype=z.dtype)

    def adversarial_terms(self, z: Tensor) -> dict[str, Tensor]:
        """disc_loss (on z detached: it trains D only), gen_loss and disc_acc for codes z and as
        many prior draws."""
        real = self.discriminator(self.prior_draws(z))
        fake = self.discriminator(z.detach())
        return {
            "disc_loss": matching.discriminator_loss(real, fake),
            "gen_loss": matching.generator_loss(self.discriminator(z)),
            "disc_acc": matching.discriminator_accuracy(real, fake),
        }

    def loss_terms(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        z = self.encode(x)
        x_hat = self.decode(z)
        recon = reconstruction.mean_reconstruction(self.hparams.loss, x_hat, x)
        return {"loss": recon, "recon": recon, **self.adversarial_terms(z)}, x_hat

    def training_phases(self, x: Tensor) -> Iterator[Phase]:
        recon = reconstruction.mean_reconstruction(self.hparams.loss, self.reconstruct(x), x)
        yield "autoencoder", recon, {"loss": recon, "recon": recon}
        z = self.encode(x)  # the codes after the reconstruction update
        real = self.discriminator(self.prior_draws(z))
        fake = self.discriminator(z.detach())
        disc_loss = matching.discriminator_loss(real, fake)
        yield (
            "discriminator",
            disc_loss,
            {"disc_loss": disc_loss, "disc_acc": matching.discriminator_accuracy(real, fake)},
        )
        # D after its update; the encoder's graph from above (its weights unchanged since).
        gen_loss = matching.generator_loss(self.discriminator(z))
        yield "generator", gen_loss, {"gen_loss": gen_loss}
