"""The plain autoencoder of tutorial 000 (configs `model=mlp` and `model=conv`)."""

from __future__ import annotations

from torch import Tensor

from autoencoders.models import losses
from autoencoders.models.base import AutoencoderBase


class Autoencoder(AutoencoderBase):
    """x -> z = f(x) -> x_hat = g(z).

    `loss` is the per-pixel mean of the reconstruction loss (MSE by default, as in tutorial
    000, or BCE), so with `model.loss=mse` `*/loss` equals `*/mse`.
    """

    def loss_terms(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        x_hat = self.reconstruct(x)
        recon = losses.mean_reconstruction(self.hparams.loss, x_hat, x)
        return {"loss": recon}, x_hat
