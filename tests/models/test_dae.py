"""The denoising autoencoder: corruption only while training, clean targets, fixed evaluation noise."""

import pytest
import torch

from autoencoders.models.dae import DENOISE_SEED, DenoisingAutoencoder

SMALL = {"input_shape": [1, 8, 8], "latent_dim": 3}


# --- denoising ------------------------------------------------------------------------------
@pytest.mark.parametrize("noise", ["gaussian", "mask"])
def test_dae_corrupts_only_while_training_and_targets_the_clean_image(noise):
    torch.manual_seed(0)
    model = DenoisingAutoencoder(**SMALL, noise=noise)
    seen = []
    model.encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    x = torch.rand(6, 1, 8, 8)

    terms, x_hat = model.train().loss_terms(x)
    assert not torch.equal(seen[-1], x)
    assert terms["loss"].item() == pytest.approx(((x_hat - x) ** 2).mean().item(), rel=1e-6)  # clean target
    assert terms["loss"].item() != pytest.approx(((x_hat - seen[-1]) ** 2).mean().item(), rel=1e-3)

    terms, x_hat = model.eval().loss_terms(x)
    assert torch.equal(seen[-1], x)
    assert torch.equal(x_hat, model.reconstruct(x))


def test_dae_noise_strengths():
    generator = torch.Generator().manual_seed(0)
    gaussian = DenoisingAutoencoder(**SMALL, noise="gaussian", noise_std=0.1)
    noisy = gaussian.corrupt(torch.full((100, 1, 8, 8), 0.5), generator)
    assert (noisy - 0.5).std().item() == pytest.approx(0.1, rel=0.05)
    clamped = DenoisingAutoencoder(**SMALL, noise_std=1.0).corrupt(torch.rand(50, 1, 8, 8))
    assert clamped.min() == 0 and clamped.max() == 1  # clamped back to the pixel range
    masking = DenoisingAutoencoder(**SMALL, noise="mask", mask_prob=0.3)
    masked = masking.corrupt(torch.full((100, 1, 8, 8), 0.7), generator)
    assert (masked == 0).float().mean().item() == pytest.approx(0.3, abs=0.02)
    assert torch.all((masked == 0) | (masked == 0.7))  # kept pixels are unchanged


def test_denoise_mse_uses_the_same_noise_every_time():
    torch.manual_seed(0)
    model = DenoisingAutoencoder(**SMALL).eval()
    x = torch.rand(6, 1, 8, 8)
    first = model.on_evaluation_batch("test", x, 3)["denoise_mse"]
    torch.manual_seed(99)  # the global random state does not matter
    assert torch.equal(model.on_evaluation_batch("test", x, 3)["denoise_mse"], first)
    noisy = model.corrupt(x, torch.Generator().manual_seed(DENOISE_SEED + 3))
    assert first.item() == pytest.approx(((model.reconstruct(noisy) - x) ** 2).mean().item(), rel=1e-6)
    assert not torch.equal(model.on_evaluation_batch("test", x, 4)["denoise_mse"], first)  # new batch, new noise
