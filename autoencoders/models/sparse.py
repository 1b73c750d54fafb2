"""The sparse autoencoder (Ng 2011, "Sparse autoencoder", CS294A lecture notes): a reconstruction loss plus a
penalty that keeps few code units active.

Config `model=sparse`; the L1 variant is `model.sparsity=l1`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from autoencoders.losses import penalties, reconstruction
from autoencoders.machinery.base import AutoencoderBase


def _l1_penalty(code: Tensor, target: float) -> Tensor:
    return penalties.l1_sparsity(code).mean()


# model.sparsity -> (code activation, penalty(code, sparsity_target) as a batch scalar); the
# names are config_keys.SPARSITY_PENALTIES.
# The activation follows the penalty: L1 on non-negative ReLU codes; the Bernoulli KL needs
# codes in (0, 1), read as firing rates.
SPARSITY: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor, float], Tensor]]] = {
    "l1": (torch.relu, _l1_penalty),
    "kl": (torch.sigmoid, penalties.kl_sparsity),
}


class SparseAutoencoder(AutoencoderBase):
    """code = act(f(x)), loss = recon + sparsity_weight * penalty(code).

    recon is the per-pixel mean reconstruction loss (as model=mlp). penalty is
    - l1: the mean |code| over units and batch, on a ReLU code;
    - kl: sum_j KL(rho || rho_hat_j), rho = sparsity_target, rho_hat_j the batch-mean
      activation of sigmoid unit j.
    Logged: loss, recon, sparsity (the unweighted penalty), rho_hat (mean activation).

    The scale loophole: the code can shrink while the decoder's weights grow to undo it,
    which lowers an L1 penalty without making the code any sparser (for kl, tiny variations
    around rho get amplified the same way). `decoder_weight_decay` closes it with extra L2 on the
    decoder's weight matrices, in their own optimizer parameter group. The conv decoder
    normalises its first feature map with BatchNorm, which undoes a code scale without any
    weight growth, so there the guard is weaker: compare rho_hat with recon, not alone.
    """

    def __init__(
        self,
        *,
        sparsity: str = "kl",
        sparsity_weight: float = 1e-2,
        sparsity_target: float = 0.05,
        decoder_weight_decay: float = 1e-4,
        **shared: Any,
    ) -> None:
        super().__init__(**shared)
        self.activation, self.penalty = SPARSITY[sparsity]

    def encode(self, x: Tensor) -> Tensor:
        return self.activation(self.encoder(x))

    def loss_terms(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        code = self.encode(x)
        x_hat = self.decode(code)
        recon = reconstruction.mean_reconstruction(self.hparams.loss, x_hat, x)
        penalty = self.penalty(code, self.hparams.sparsity_target)
        loss = recon + self.hparams.sparsity_weight * penalty
        return {"loss": loss, "recon": recon, "sparsity": penalty, "rho_hat": code.mean()}, x_hat

    def parameter_groups(self) -> list[dict]:
        # Adam's L2: decoder weight matrices get weight_decay + decoder_weight_decay; biases and
        # norm scales (1-d) and the encoder keep weight_decay.
        decoder_weights = [p for p in self.decoder.parameters() if p.dim() > 1]
        chosen = {id(p) for p in decoder_weights}
        others = [p for p in self.parameters() if id(p) not in chosen]
        weight_decay = self.hparams.weight_decay
        return [
            {"params": decoder_weights, "weight_decay": weight_decay + self.hparams.decoder_weight_decay},
            {"params": others, "weight_decay": weight_decay},
        ]
