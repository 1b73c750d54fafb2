"""The denoising autoencoder (Vincent et al. 2008): corrupt the input, rebuild the clean one.

Config `model=dae`; masking noise is `model.noise=mask`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from autoencoders.losses import reconstruction
from autoencoders.machinery.base import AutoencoderBase

# Seed of the corruption behind */denoise_mse (plus the batch index): every run and every
# epoch denoises the same noisy images, so the number compares across runs.
DENOISE_SEED = 1234


def gaussian_noise(x: Tensor, std: float, generator: torch.Generator | None = None) -> Tensor:
    """x + N(0, std^2) per pixel, clamped back to the pixel range [0, 1]."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + std * noise).clamp(0.0, 1.0)


def masking_noise(x: Tensor, prob: float, generator: torch.Generator | None = None) -> Tensor:
    """x with each pixel set to 0 with probability prob (Vincent et al. 2010)."""
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= prob
    return x * keep


# model.noise -> (corruption, the hyperparameter that sets its strength); names: config_keys.CORRUPTIONS
CORRUPTIONS: dict[str, tuple[Callable[..., Tensor], str]] = {
    "gaussian": (gaussian_noise, "noise_std"),
    "mask": (masking_noise, "mask_prob"),
}


class DenoisingAutoencoder(AutoencoderBase):
    """x_tilde = corrupt(x) while training; loss = per-pixel mean reconstruction loss of
    g(f(x_tilde)) against the clean x, the same units as the plain autoencoder (model=mlp).

    Evaluation encodes clean images (so */loss and */mse compare with model=mlp); val/test also
    log `denoise_mse`, the per-pixel MSE between the reconstruction of a corrupted image (noise
    fixed by DENOISE_SEED and the batch index) and the clean image.
    """

    def __init__(
        self, *, noise: str = "gaussian", noise_std: float = 0.3, mask_prob: float = 0.3, **shared: Any
    ) -> None:
        super().__init__(**shared)

    def corrupt(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        corruption, strength_key = CORRUPTIONS[self.hparams.noise]
        return corruption(x, self.hparams[strength_key], generator)

    def loss_terms(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        x_in = self.corrupt(x) if self.training else x
        x_hat = self.decode(self.encode(x_in))
        recon = reconstruction.mean_reconstruction(self.hparams.loss, x_hat, x)  # clean target
        return {"loss": recon}, x_hat

    def on_evaluation_batch(self, stage: str, x: Tensor, batch_idx: int) -> dict[str, Tensor]:
        generator = torch.Generator(device=x.device).manual_seed(DENOISE_SEED + batch_idx)
        x_hat = self.reconstruct(self.corrupt(x, generator))
        return {"denoise_mse": reconstruction.mean_reconstruction("mse", x_hat, x)}
