"""FactorVAE (Kim & Mnih 2018, "Disentangling by Factorising"):
the VAE plus gamma times the total correlation of its codes, estimated by a discriminator with
the density-ratio trick, trained through the phased loop (machinery/phases.py).

Config `model=factorvae`. The paper's Algorithm 2 draws two minibatches per iteration: the first
trains the VAE, the second gives the permuted codes the discriminator learns to tell from the
first's. The DataModule gives both in one batch (`training_draws = 2`, data/batches.py): x is
two independent batches of `data.batch_size` images stacked, `x, labels = batch` as everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from autoencoders.losses import matching, reconstruction
from autoencoders.machinery.phases import Phase, PhasedAutoencoder
from autoencoders.models.vae import VAE
from autoencoders.nets.discriminator import Discriminator

# The paper's discriminator: an MLP of 6 layers of 1000 units with leaky ReLU, 2 logits
# (disentanglement_lib's fc_discriminator, "based on Appendix A", has 6 hidden layers of 1000
# with TensorFlow's leaky_relu, slope 0.2). One logit here: the difference of the two.
DISCRIMINATOR_DEPTH = 6
DISCRIMINATOR_SLOPE = 0.2
# The paper's Adam for the discriminator: lr 1e-4 (model.adversarial_lr), betas (0.5, 0.9).
DISCRIMINATOR_BETAS = (0.5, 0.9)


def permute_dimensions(z: Tensor) -> Tensor:
    """Each column of z (B, d) permuted across the batch on its own (the paper's Algorithm 1):
    every dimension keeps its marginal sample exactly, while the dependence between dimensions
    is broken, so the rows are draws from the product of the marginals, q̄(z) = prod_j q(z_j).
    The permutations come from the global RNG on z's device (no host sync)."""
    order = torch.rand(z.shape, device=z.device).argsort(dim=0)
    return z.gather(0, order)


def split_draws(x: Tensor) -> tuple[Tensor, Tensor]:
    """The two minibatches of a training batch: the DataModule stacks two independent draws of
    equal size for the factorvae (`training_draws = 2`). A batch from elsewhere is halved, which
    gives two independent halves of a shuffled batch."""
    half = (len(x) + 1) // 2
    first, second = x[:half], x[half:]
    return first, second if len(second) > 1 else first


class FactorVAE(PhasedAutoencoder, VAE):
    """The VAE (networks, likelihood, posterior, prior, beta, warm-up and free bits on the KL)
    whose objective adds gamma times an estimate of the codes' total correlation,

        recon + beta_t * KL_fb + gamma * tc,    tc = mean_z log D(z) / (1 - D(z)),

    per image in nats, z ~ q(z|x) on the first minibatch. D (a logit) learns to tell q(z)
    samples (label 1) from codes with each dimension permuted across the second minibatch
    (label 0), so at its optimum D/(1 - D) = q(z) / q̄(z) and tc estimates
    KL(q(z) || q̄(z)), the total correlation (Kim & Mnih 2018, section 3). Two phases per batch:
    1. autoencoder (encoder and decoder; Adam with model.lr): the objective above;
    2. discriminator (Adam with `adversarial_lr` and betas (0.5, 0.9), the paper's): `disc_loss`
       = -mean log D(z) - mean log(1 - D(z_perm)), nats, 1.386 = chance; `disc_acc` (fraction).
    "loss" (the checkpoint monitor) is the VAE's, recon + beta_t * KL_fb, as the aae's is its recon:
    a monitor that does not move with D. `kl`, `elbo` and val/test `active_units`, val
    `kl_dim/<j>` are the VAE's. At val/test, where
    batches are single draws, tc uses the batch's codes and D sees them against their own
    permutation (fixed seeds, as all evaluation noise).
    """

    training_draws = 2  # the DataModule stacks two independent batches per step (data/batches.py)
    prior_choices = ("normal",)  # the paper's N(0, I); the swappable prior is for vae, tcvae, iwae, cvae

    def __init__(
        self,
        *,
        gamma: float = 40.0,
        discriminator_width: int = 1000,
        adversarial_lr: float = 1e-4,
        **settings: Any,
    ) -> None:
        super().__init__(**settings)
        self.discriminator = Discriminator(
            self.hparams.latent_dim, discriminator_width, DISCRIMINATOR_DEPTH, DISCRIMINATOR_SLOPE
        )

    def optimizer_settings(self) -> dict[str, dict[str, Any]]:
        return {
            "autoencoder": {"params": list(self.encoder.parameters()) + list(self.decoder.parameters())},
            "discriminator": {
                "params": list(self.discriminator.parameters()),
                "lr": self.hparams.adversarial_lr,
                "betas": DISCRIMINATOR_BETAS,
            },
        }

    def sampled_codes(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """q(z|x)'s mean and log-variance, and one reparameterized sample z."""
        mu, logvar = self.posterior(x)
        return mu, logvar, mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def vae_terms(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """The autoencoder phase's terms on x, its sampled codes z and its reconstruction."""
        mu, logvar, z = self.sampled_codes(x)
        x_hat = self.decode(z)
        recon = reconstruction.mean_negative_log_likelihood(self.hparams.loss, x_hat, x)
        kl = self.prior.kl_per_dim(mu, logvar).sum(1).mean()
        penalty, _ = self.regularizer(mu, logvar, z)  # beta_t * KL_fb, as the VAE's
        tc = self.discriminator(z).mean()  # gradients reach the encoder through D (D's own are reset in phase 2)
        terms = {"loss": recon + penalty, "recon": recon, "kl": kl, "elbo": -(recon + kl), "tc": tc}
        return terms, z, x_hat

    def discriminator_terms(self, z: Tensor, permuted: Tensor) -> dict[str, Tensor]:
        """disc_loss and disc_acc for q(z) samples z (label 1) against permuted codes (label 0)."""
        real, fake = self.discriminator(z.detach()), self.discriminator(permuted.detach())
        return {
            "disc_loss": matching.discriminator_loss(real, fake),
            "disc_acc": matching.discriminator_accuracy(real, fake),
        }

    def loss_terms(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        terms, z, x_hat = self.vae_terms(x)
        return {**terms, **self.discriminator_terms(z, permute_dimensions(z))}, x_hat

    def training_phases(self, x: Tensor) -> Iterator[Phase]:
        first, second = split_draws(x)
        terms, z, _ = self.vae_terms(first)
        yield "autoencoder", terms["loss"] + self.hparams.gamma * terms["tc"], terms
        with torch.no_grad():  # the second draw trains only D: codes from the updated encoder
            permuted = permute_dimensions(self.sampled_codes(second)[2])
        disc_terms = self.discriminator_terms(z, permuted)
        yield "discriminator", disc_terms["disc_loss"], disc_terms
