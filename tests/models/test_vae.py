"""The VAE: its objective against hand computation, warm-up, free bits, evaluation statistics, samples."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from autoencoders.losses import densities
from autoencoders.models.vae import VAE

SMALL = {"input_shape": [1, 8, 8], "latent_dim": 3}


# --- VAE ----------------------------------------------------------------------------------
class Fixed(nn.Module):
    """An encoder that outputs the same (mu, logvar) rows whatever the image."""

    def __init__(self, rows: list[list[float]]) -> None:
        super().__init__()
        self.rows = torch.tensor(rows)

    def forward(self, x):
        return self.rows


class TwoPixelDecoder(nn.Module):
    """z (B, 1) -> pixels (sigmoid(2 z), sigmoid(-z)) as a (B, 1, 1, 2) image."""

    def forward(self, z):
        return torch.sigmoid(z * torch.tensor([2.0, -1.0])).view(-1, 1, 1, 2)


def sigmoid(value: float) -> float:
    return 1 / (1 + math.exp(-value))


@pytest.mark.parametrize("loss, beta", [("bce", 1.0), ("mse", 3.0)])
def test_vae_loss_equals_hand_computation(loss, beta):
    model = VAE(input_shape=[1, 1, 2], latent_dim=1, loss=loss, beta=beta)
    rows = [[0.5, -1.0], [-0.3, 0.2]]  # (mu, logvar) of two images
    model.encoder, model.decoder = Fixed(rows), TwoPixelDecoder()
    images = [[1.0, 0.0], [0.25, 0.75]]
    torch.manual_seed(0)
    eps = torch.randn(2, 1).flatten().tolist()  # the draws loss_terms makes after the same seed
    torch.manual_seed(0)
    terms, _ = model.loss_terms(torch.tensor(images).view(2, 1, 1, 2))

    recons, kls = [], []
    for (mu, logvar), pixels, e in zip(rows, images, eps):
        z = mu + math.exp(logvar / 2) * e
        x_hat = [sigmoid(2 * z), sigmoid(-z)]
        if loss == "bce":
            recon = -sum(x * math.log(p) + (1 - x) * math.log(1 - p) for x, p in zip(pixels, x_hat))
        else:  # Gaussian, sigma = 1/sqrt(2): squared error + log(pi)/2 per pixel
            recon = sum((x - p) ** 2 + 0.5 * math.log(math.pi) for x, p in zip(pixels, x_hat))
        recons.append(recon)
        kls.append(0.5 * (mu**2 + math.exp(logvar) - 1 - logvar))
    recon, kl = sum(recons) / 2, sum(kls) / 2
    assert terms["recon"].item() == pytest.approx(recon, rel=1e-5)
    assert terms["kl"].item() == pytest.approx(kl, rel=1e-5)
    assert terms["loss"].item() == pytest.approx(recon + beta * kl, rel=1e-5)
    assert terms["elbo"].item() == pytest.approx(-(recon + kl), rel=1e-5)


def test_vae_gradients_reach_the_encoder_through_the_sample():
    torch.manual_seed(0)
    model = VAE(**SMALL, beta=0.0)  # reconstruction only: log-variance is reached only through z
    model.loss_terms(torch.rand(5, 1, 8, 8))[0]["loss"].backward()
    head = model.encoder[-1].weight.grad  # rows 0..2 give mu, rows 3..5 give log-variance
    assert head[:3].abs().sum() > 0 and head[3:].abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def vae_terms(model: VAE, x: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return model.loss_terms(x)[0]


def test_beta_warm_up_and_free_bits_change_the_objective_as_documented():
    torch.manual_seed(0)
    model = VAE(**SMALL, beta=2.0, kl_warmup_epochs=2)
    x = torch.rand(5, 1, 8, 8)
    base = vae_terms(model, x)
    assert torch.allclose(base["loss"], base["recon"] + 2.0 * base["kl"])  # no trainer: no warm-up
    model.hparams.beta = 4.0
    assert torch.allclose(vae_terms(model, x)["loss"], base["recon"] + 4.0 * base["kl"])

    # Attached to a trainer, beta ramps over 2 epochs of 10 batches: after 5 batches it is beta / 4.
    model.trainer = SimpleNamespace(fit_loop=SimpleNamespace(total_batch_idx=5), num_training_batches=10)
    assert model.kl_weight() == pytest.approx(1.0)
    assert torch.allclose(vae_terms(model, x)["loss"], base["recon"] + 1.0 * base["kl"])
    model.trainer.fit_loop.total_batch_idx = 0
    assert torch.allclose(vae_terms(model, x)["loss"], base["recon"])
    model.trainer.fit_loop.total_batch_idx = 35
    assert model.kl_weight() == 4.0
    model.trainer.fit_loop.total_batch_idx = 5
    assert model.eval().kl_weight() == 4.0  # val/test always use the full beta
    model.train()
    model.trainer = None

    # Free bits above every dimension's KL: the KL part is the floor, and it sends no gradient.
    model.hparams.free_bits = 10.0
    floored = vae_terms(model, x)
    assert torch.allclose(floored["loss"], base["recon"] + 4.0 * 3 * 10.0)
    assert torch.allclose(floored["kl"], base["kl"]) and torch.allclose(floored["elbo"], base["elbo"])  # raw terms
    floored["loss"].backward()
    with_floor = [p.grad.clone() for p in model.encoder.parameters()]
    model.zero_grad()
    model.hparams.free_bits, model.hparams.beta = 0.0, 0.0
    vae_terms(model, x)["loss"].backward()
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(with_floor, model.encoder.parameters()))


def test_vae_evaluation_statistics():
    model = VAE(**SMALL).eval()

    class MeanFromPixels(nn.Module):
        # mu = (pixel 0, 0.01 * pixel 1, 0), logvar = 0: with uniform pixels the variances of mu
        # across images are 1/12, 1/120000 and 0, so exactly one unit is active.
        def forward(self, x):
            flat = x.flatten(1)
            mu = torch.stack([flat[:, 0], 0.01 * flat[:, 1], torch.zeros(len(x))], 1)
            return torch.cat([mu, torch.zeros_like(mu)], 1)

    model.encoder = MeanFromPixels()
    torch.manual_seed(0)
    batches = [torch.rand(200, 1, 8, 8) for _ in range(3)]
    model.on_validation_epoch_start()
    for i, x in enumerate(batches):
        model._evaluation_step("val", (x, torch.zeros(len(x))), i)
    assert model._posterior_stats["val"].active_units().item() == 1
    means = model._means["val"].compute()
    mu = torch.cat([model.encode(x) for x in batches])
    expected = densities.gaussian_kl_per_dim(mu, torch.zeros_like(mu)).mean(0)
    assert torch.allclose(torch.stack([means[f"kl_dim/{j}"] for j in range(3)]), expected, rtol=1e-5)
    # */mse decodes the posterior mean (the model's deterministic reconstruction).
    decoded = torch.cat([model.decode(model.encode(x)) for x in batches])
    assert means["mse"].item() == pytest.approx(((decoded - torch.cat(batches)) ** 2).mean().item(), rel=1e-5)


def test_vae_samples_from_the_prior():
    model = VAE(**SMALL, net="conv").eval()
    first = model.sample(4, generator=torch.Generator().manual_seed(1))
    again = model.sample(4, generator=torch.Generator().manual_seed(1))
    assert first.shape == (4, 1, 8, 8) and torch.equal(first, again)
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(first, model.decode(z))
