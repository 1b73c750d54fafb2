"""The VQ-VAE (van den Oord et al. 2017): a discrete
latent code of tokens, each one of a learned codebook's vectors.

Config `model=vqvae`; the codebook learned by its loss term instead of moving averages is
`model.codebook_update=loss`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from autoencoders.errors import ConfigError
from autoencoders.losses import penalties, reconstruction
from autoencoders.machinery.base import AutoencoderBase
from autoencoders.nets.quantizer import (
    VectorQuantizer,
    codebook_usage,
    perplexity,
    straight_through,
    sum_across_processes,
)


class VQVAE(AutoencoderBase):
    """z_e = f(x) (latent_dim numbers) is cut into latent_dim / embedding_dim tokens; each token is
    replaced by its nearest of codebook_size codes, z_q; x_hat = g(z_q). Gradients pass straight
    through the quantizer to the encoder.

    loss = recon + [codebook] + commitment * commitment_term, where recon is the per-pixel mean
    reconstruction loss (mse or bce, as the plain autoencoder), the codebook term is
    mean ||sg[z_e] - e||^2 and the commitment term mean ||z_e - sg[e]||^2 (means over token
    elements). With codebook_update=ema (default) the codebook follows exponential moving
    averages of its assigned encoder outputs (decay ema_decay) and the loss has no codebook term;
    with codebook_update=loss the codebook term trains it. Logged: recon, commitment (unweighted),
    codebook (loss only), and per epoch `perplexity` (exp of the entropy of code usage) and
    `codebook_usage` (fraction of codes used) on train, val and test.

    encode() gives the continuous z_e (probe, projector, scatter use it); decode(z) quantizes z
    first, so reconstruct() and the latent views decode codebook vectors and */mse measures that.
    sample(n) draws each token position's code independently from its frequencies over the last
    training epoch (a simple prior, not a learned autoregressive one), kept in buffers.
    """

    def __init__(
        self,
        *,
        embedding_dim: int = 4,
        codebook_size: int = 512,
        commitment: float = 0.25,
        codebook_update: str = "ema",
        ema_decay: float = 0.99,
        restart_dead_codes: bool = True,
        **shared: Any,
    ) -> None:
        super().__init__(**shared)
        latent_dim = self.hparams.latent_dim
        if latent_dim % embedding_dim != 0:
            raise ConfigError(
                f"model.latent_dim={latent_dim} is not a multiple of model.embedding_dim={embedding_dim}: "
                "the VQ-VAE cuts the latent code into tokens of embedding_dim numbers. Choose "
                "model.embedding_dim dividing model.latent_dim (e.g. 4 for 32)."
            )
        self.positions = latent_dim // embedding_dim
        self.quantizer = VectorQuantizer(
            codebook_size, embedding_dim, self.positions, codebook_update, ema_decay, restart_dead_codes
        )
        self._usage: dict[str, Tensor] = {}

    def tokens(self, z: Tensor) -> Tensor:
        """(B, latent_dim) codes as (B, positions, embedding_dim) tokens."""
        return z.reshape(len(z), self.positions, -1)

    def token_indices(self, z: Tensor) -> Tensor:
        """(B, positions) index of each token's nearest code: the discrete code of z (B, latent_dim)."""
        return self.quantizer.nearest(self.tokens(z))

    def quantize(self, z: Tensor) -> Tensor:
        """z (B, latent_dim) with every token replaced by its nearest code."""
        return self.quantizer.codebook[self.quantizer.nearest(self.tokens(z))].flatten(1)

    def decode(self, z: Tensor) -> Tensor:
        """The decoder on the quantized z (any z: the latent views decode through the quantizer)."""
        return self.decoder(self.quantize(z))

    def loss_terms(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        z_e = self.tokens(self.encoder(x))
        indices = self.quantizer.nearest(z_e)
        z_q = self.quantizer.codebook[indices]  # a copy: the EMA update below does not change it
        if self.training:
            self.quantizer.record(z_e.detach(), indices)
        x_hat = self.decoder(straight_through(z_e, z_q).flatten(1))
        recon = reconstruction.mean_reconstruction(self.hparams.loss, x_hat, x)
        commitment = penalties.commitment_term(z_e, z_q)
        terms = {"loss": recon + self.hparams.commitment * commitment, "recon": recon, "commitment": commitment}
        if self.quantizer.learned_by_loss:
            terms["codebook"] = penalties.codebook_term(z_e, z_q)
            terms["loss"] = terms["loss"] + terms["codebook"]
        return terms, x_hat

    # --- the prior: code frequencies per token position ---------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n images decoded from codes drawn per token position from the training frequencies
        (call .eval() first: conv BatchNorm uses batch statistics in train mode)."""
        codes = self.quantizer.codebook[self.quantizer.sample_indices(n, generator)]
        return self.decoder(codes.flatten(1))

    def sample_grid(self, n_images: int, columns: int, generator: torch.Generator | None = None) -> Tensor:
        """The images/samples grid: n_images samples from the prior (rows of `columns`)."""
        return self.sample(n_images, generator)

    # --- code usage per epoch: perplexity and codebook_usage -----------------------------------
    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self.quantizer.start_epoch()

    def on_evaluation_batch(self, stage: str, x: Tensor, batch_idx: int) -> dict[str, Tensor]:
        indices = self.quantizer.nearest(self.tokens(self.encoder(x)))
        counts = torch.bincount(indices.flatten(), minlength=len(self.quantizer.codebook)).float()
        sum_across_processes(counts)
        self._usage[stage] = self._usage[stage] + counts if stage in self._usage else counts
        return {}

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._usage.pop("val", None)

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self._usage.pop("test", None)

    def _log_usage(self, stage: str, counts: Tensor) -> None:
        # Counts are summed over processes already, so every process logs the same values.
        self.log(f"{stage}/perplexity", perplexity(counts), sync_dist=True)
        self.log(f"{stage}/codebook_usage", codebook_usage(counts), sync_dist=True)

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        self._log_usage("train", self.quantizer.position_counts.sum(0))

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self._log_usage("val", self._usage.get("val", torch.zeros(1)))

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self._log_usage("test", self._usage.get("test", torch.zeros(1)))
