"""The contractive autoencoder (Rifai et al. 2011, "Contractive Auto-Encoders"): a reconstruction loss plus
lambda * ||J_f(x)||_F^2, the squared Frobenius norm of the encoder's Jacobian.

Config `model=contractive`; the random-projection estimate is `model.jacobian_projections=1`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from autoencoders.errors import ConfigError
from autoencoders.losses import penalties, reconstruction
from autoencoders.machinery.base import AutoencoderBase

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@contextmanager
def batchnorm_eval(module: nn.Module) -> Iterator[None]:
    """BatchNorm layers of `module` use their running statistics inside the block (and do not
    update them): then each image's code depends on that image alone, so it has a Jacobian."""
    switched = [layer for layer in module.modules() if isinstance(layer, BATCH_NORMS) and layer.training]
    for layer in switched:
        layer.eval()
    try:
        yield
    finally:
        for layer in switched:
            layer.train()


def relu_mlp_linears(encoder: nn.Module) -> list[nn.Linear] | None:
    """The Linear layers of an encoder that is exactly [Flatten], Linear, (ReLU, Linear)*; else None."""
    if not isinstance(encoder, nn.Sequential):
        return None
    layers = [layer for layer in encoder if not isinstance(layer, nn.Flatten)]
    expected = [nn.Linear if i % 2 == 0 else nn.ReLU for i in range(len(layers))]
    if len(layers) < 3 or len(layers) % 2 == 0 or [type(layer) for layer in layers] != expected:
        return None
    return layers[::2]


class ContractiveAutoencoder(AutoencoderBase):
    """loss = recon + contractive_weight * contractive, with recon the per-pixel mean
    reconstruction loss (as model=mlp) and contractive the batch mean of ||d f(x) / d x||_F^2.

    How the penalty is computed, and its cost per training step (forward + backward, 1 thread,
    batch 256, 28x28 images, latent 32; a whole plain-autoencoder step is ~6 ms mlp, ~50 ms conv):
    - mlp, jacobian_projections=0: exact closed form J = W3 D2 W2 D1 W1 (D: ReLU masks), ~55 ms.
    - conv, 0: exact, one batched vector-Jacobian product per code unit, double backward, ~1.2 s.
    - any net, k > 0: unbiased estimate from k random projections, E||v^T J||^2 = ||J||_F^2 with
      v ~ N(0, I): k = 1 ~7 ms (mlp) / ~55 ms (conv), k = 4 ~23 ms / ~170 ms.
    The conv encoder's BatchNorm couples the images of a batch in training mode, so the penalty
    runs a second encoder pass with BatchNorm on its running statistics (`batchnorm_eval`).
    Val/test compute the same penalty without the graph for its gradient.
    Like any penalty on the code's scale, this one can partly be met by a code that shrinks
    while the decoder grows; compare */contractive between runs at equal */recon.
    """

    def __init__(self, *, contractive_weight: float = 1e-3, jacobian_projections: int = 0, **shared: Any) -> None:
        super().__init__(**shared)
        latent_dim = self.hparams.latent_dim
        if jacobian_projections > latent_dim:  # each projection is one product held in the step's graph
            raise ConfigError(
                f"model.jacobian_projections={jacobian_projections} is more than model.latent_dim={latent_dim}: the "
                f"exact penalty (jacobian_projections=0) takes {latent_dim} products, fewer, and has no variance. "
                f"Use 0, or 1 to {latent_dim} random projections."
            )
        # A plain list, not registered again as submodules: the layers already live in the encoder.
        self._linears = relu_mlp_linears(self.encoder) if jacobian_projections == 0 else None

    def contractive_penalty(self, x: Tensor) -> Tensor:
        """||J_f(x)||_F^2 per image, with BatchNorm on its running statistics."""
        if self._linears is not None:
            return self._closed_form(x)[0]
        # Lightning evaluates under inference mode, where autograd is off; the clone is a normal
        # tensor that autograd may differentiate by.
        with torch.inference_mode(False), torch.enable_grad(), batchnorm_eval(self.encoder):
            x_in = x.clone().requires_grad_(True)
            projections = int(self.hparams.jacobian_projections)
            return penalties.jacobian_frobenius_sq(self.encode(x_in), x_in, projections, create_graph=self.training)

    def _closed_form(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The exact penalty per image and the code, from one pass through the ReLU MLP encoder."""
        hidden, masks = x, []
        for layer in self.encoder:
            hidden = layer(hidden)
            if isinstance(layer, nn.ReLU):
                masks.append((hidden > 0).to(hidden.dtype))  # the ReLU's derivative
        return penalties.relu_mlp_jacobian_frobenius_sq([layer.weight for layer in self._linears], masks), hidden

    def loss_terms(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        if self._linears is not None:
            jacobian_sq, code = self._closed_form(x)
        else:
            # Reconstruction pass first: in training mode it updates BatchNorm's running statistics
            # in place, which would silently change the tensors a penalty graph built earlier saved
            # for its backward (measured: gradients 5% off).
            code = self.encode(x)
            jacobian_sq = self.contractive_penalty(x)
        x_hat = self.decode(code)
        recon = reconstruction.mean_reconstruction(self.hparams.loss, x_hat, x)
        contractive = jacobian_sq.mean()
        loss = recon + self.hparams.contractive_weight * contractive
        return {"loss": loss, "recon": recon, "contractive": contractive}, x_hat
