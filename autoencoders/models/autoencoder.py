"""The plain autoencoder (Hinton & Salakhutdinov 2006) on the networks of Diaz 2026, "Autoencoder Architecture: From Pixel Space to Latent Space" (configs `model=mlp` and `model=conv`)."""

from __future__ import annotations

from torch import Tensor

from autoencoders.losses import reconstruction
from autoencoders.machinery.base import AutoencoderBase


class Autoencoder(AutoencoderBase):
    """x -> z = f(x) -> x_hat = g(z).

    `loss` is the per-pixel mean of the reconstruction loss (MSE by default, as in Diaz
    000, or BCE), so with `model.loss=mse` `*/loss` equals `*/mse`.
    """

    def loss_terms(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        x_hat = self.reconstruct(x)
        recon = reconstruction.mean_reconstruction(self.hparams.loss, x_hat, x)
        return {"loss": recon}, x_hat
