"""The conditional VAE (Sohn et al. 2015): encoder and decoder
both see the image's class.

Config `model=cvae`. The number of classes comes from the data (like the input shape).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from autoencoders.models.vae import VAE


class CVAE(VAE):
    """q(z|x, y) = N(mu(x, y), diag(exp(logvar(x, y)))), p(z) (model.prior), p(x|z, y), with y the
    one-hot class: the mlp encoder gets y beside the flattened image, the conv encoder beside its
    flattened features (before the latent head), both decoders get [z, y].

    Otherwise the VAE: the same objective, terms and units (recon, kl, elbo in nats per image,
    now conditional on y: elbo bounds log p(x|y)), beta, KL warm-up and free bits.
    Labels `y` are class indices (B,) or class weights (B, num_classes), e.g. a blend of two
    one-hot rows for the interpolation view.
    """

    conditional = True

    def __init__(self, *, num_classes: int, **settings: Any) -> None:
        super().__init__(**settings)

    def condition_dim(self) -> int:
        return self.hparams.num_classes

    def one_hot(self, y: Tensor) -> Tensor:
        """Class indices (B,) as one-hot rows in the model's dtype; (B, num_classes) weights as they are."""
        rows = F.one_hot(y.long(), self.hparams.num_classes) if y.dim() == 1 else y
        return rows.to(self.dtype)

    def posterior(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z|x, y), each (B, latent_dim)."""
        return super().posterior(x, self.one_hot(y))

    def decode(self, z: Tensor, y: Tensor) -> Tensor:
        """p(x|z, y): the decoder on [z, one-hot y]."""
        return super().decode(torch.cat([z, self.one_hot(y)], dim=1))

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n images decoded from z ~ p(z) with classes y (None: 0, 1, 2, ... in turn).
        Call .eval() first: conv BatchNorm uses batch statistics in train mode."""
        if y is None:
            y = torch.arange(n) % self.hparams.num_classes
        z = self.prior.sample((n, self.hparams.latent_dim), generator, dtype=self.dtype).to(self.device)
        return self.decode(z, y.to(self.device))

    @torch.no_grad()
    def sample_grid(self, n_images: int, columns: int, generator: torch.Generator | None = None) -> Tensor:
        """The images/samples grid: one row per class (whatever `n_images`) from one batch of
        `columns` z ~ p(z), each column one style. (num_classes * columns, C, H, W), row by row."""
        z = self.prior.sample((columns, self.hparams.latent_dim), generator, dtype=self.dtype).to(self.device)
        classes = torch.arange(self.hparams.num_classes, device=self.device)
        return self.decode(z.repeat(len(classes), 1), classes.repeat_interleave(columns))
