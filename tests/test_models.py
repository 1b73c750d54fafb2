"""The VAE, denoising, sparse and contractive autoencoders: their objectives against hand
computation and brute force, their config checks, and short trainings with both nets."""

import copy
import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from autoencoders import losses
from autoencoders.errors import ConfigError
from autoencoders.models.contractive import ContractiveAutoencoder
from autoencoders.models.dae import DENOISE_SEED, DenoisingAutoencoder
from autoencoders.models.sparse import SparseAutoencoder
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

    # Attached to a trainer, beta ramps over 2 epochs of 10 steps: at step 5 it is beta / 4.
    model.trainer = SimpleNamespace(global_step=5, num_training_batches=10)
    assert model.kl_weight() == pytest.approx(1.0)
    assert torch.allclose(vae_terms(model, x)["loss"], base["recon"] + 1.0 * base["kl"])
    model.trainer.global_step = 0
    assert torch.allclose(vae_terms(model, x)["loss"], base["recon"])
    model.trainer.global_step = 35
    assert model.kl_weight() == 4.0
    model.trainer.global_step = 5
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
    expected = losses.gaussian_kl_per_dim(mu, torch.zeros_like(mu)).mean(0)
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


# --- sparse ---------------------------------------------------------------------------------
@pytest.mark.parametrize("sparsity", ["l1", "kl"])
def test_sparse_loss_is_recon_plus_weighted_penalty_on_the_right_code(sparsity):
    torch.manual_seed(0)
    model = SparseAutoencoder(**SMALL, sparsity=sparsity, sparsity_weight=0.5, sparsity_target=0.1)
    x = torch.rand(6, 1, 8, 8)
    terms, x_hat = model.loss_terms(x)
    code = model.encode(x)
    if sparsity == "l1":
        assert torch.equal(code, torch.relu(model.encoder(x)))
        penalty = code.abs().mean()
    else:
        assert torch.equal(code, torch.sigmoid(model.encoder(x)))
        rate = code.mean(0)
        penalty = (0.1 * torch.log(0.1 / rate) + 0.9 * torch.log(0.9 / (1 - rate))).sum()
    recon = ((x_hat - x) ** 2).mean()
    assert torch.allclose(terms["sparsity"], penalty, rtol=1e-5) and torch.allclose(terms["recon"], recon)
    assert torch.allclose(terms["loss"], recon + 0.5 * penalty, rtol=1e-5)
    assert torch.allclose(terms["rho_hat"], code.mean())


def test_sparse_decoder_weights_get_their_own_weight_decay():
    model = SparseAutoencoder(**SMALL, net="conv", weight_decay=1e-5, decoder_weight_decay=1e-3)
    optimizer = model.configure_optimizers()["optimizer"]
    decay = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    assert sum(len(group["params"]) for group in optimizer.param_groups) == len(list(model.parameters()))
    for name, parameter in model.named_parameters():
        decoder_matrix = name.startswith("decoder.") and parameter.dim() > 1
        assert decay[id(parameter)] == pytest.approx(1e-5 + 1e-3 if decoder_matrix else 1e-5), name


# --- contractive ----------------------------------------------------------------------------
def brute_force_jacobian_sq(encoder: nn.Module, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """||J||_F^2 per image: one image at a time, one torch.autograd.grad per code unit."""
    per_image = []
    for image in x:
        image = image[None].clone().requires_grad_(True)
        code = encoder(image)[0]
        total = 0.0
        for unit in code:
            (row,) = torch.autograd.grad(unit, image, retain_graph=True, create_graph=create_graph)
            total = total + row.pow(2).sum()
        per_image.append(total)
    return torch.stack(per_image)


def moved_batchnorm_model(net: str, **kwargs) -> ContractiveAutoencoder:
    """A model whose BatchNorm running statistics are no longer the identity at init."""
    torch.manual_seed(0)
    model = ContractiveAutoencoder(**SMALL, net=net, **kwargs).train()
    with torch.no_grad():
        for _ in range(3):
            model.encoder(torch.rand(16, 1, 8, 8) * 3)
    return model


@pytest.mark.parametrize("net", ["mlp", "conv"])
def test_contractive_penalty_and_its_gradient_equal_brute_force(net):
    model = moved_batchnorm_model(net, contractive_weight=0.5)
    x = torch.rand(4, 1, 8, 8)
    tracked = [m.num_batches_tracked.item() for m in model.encoder.modules() if isinstance(m, nn.BatchNorm2d)]
    terms, x_hat = model.loss_terms(x)
    reference = copy.deepcopy(model.encoder).eval()  # eval-mode BatchNorm with this step's running stats
    expected = brute_force_jacobian_sq(reference, x, create_graph=True).mean()
    assert torch.allclose(terms["contractive"], expected, rtol=1e-4)
    assert torch.allclose(terms["loss"], ((x_hat - x) ** 2).mean() + 0.5 * expected, rtol=1e-4)
    # BatchNorm is back in training mode and was updated once, by the reconstruction pass only.
    norms = [m for m in model.encoder.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(m.training for m in norms) and [m.num_batches_tracked.item() for m in norms] == [t + 1 for t in tracked]

    terms["contractive"].backward()
    expected.backward()
    for (name, mine), theirs in zip(model.encoder.named_parameters(), reference.parameters()):
        if mine.dim() > 1:  # weight matrices and kernels: the gradient reaches them
            assert mine.grad is not None and mine.grad.abs().sum() > 0, name
        mine_grad, their_grad = (torch.zeros_like(p) if p.grad is None else p.grad for p in (mine, theirs))
        assert torch.allclose(mine_grad, their_grad, rtol=1e-4, atol=1e-7), name  # None: does not enter J


@pytest.mark.parametrize("net", ["mlp", "conv"])
def test_contractive_projection_estimate_is_unbiased(net):
    model = moved_batchnorm_model(net, jacobian_projections=1)
    x = torch.rand(4, 1, 8, 8)
    exact = brute_force_jacobian_sq(copy.deepcopy(model.encoder).eval(), x).mean()
    # 2,000 one-projection estimates of the batch mean; tolerance 5 standard errors of their mean
    # (a draw's relative spread is at most sqrt(2 / 4 images), so at most 5 * 0.7 / 45 = 8%).
    draws = torch.stack([model.contractive_penalty(x).mean().detach() for _ in range(2000)])
    standard_error = draws.std() / math.sqrt(len(draws))
    assert (draws.mean() - exact).abs() < 5 * standard_error
    assert standard_error < 0.02 * exact and draws.std() > 0.05 * exact  # random, and a tight check


def test_contractive_penalty_at_evaluation_runs_under_inference_mode():
    model = moved_batchnorm_model("conv").eval()
    x = torch.rand(4, 1, 8, 8)
    with torch.inference_mode():
        terms, _ = model.loss_terms(x)
    expected = brute_force_jacobian_sq(model.encoder, x).mean()
    assert torch.allclose(terms["contractive"], expected, rtol=1e-4)


# --- config checks --------------------------------------------------------------------------
BAD_VALUES = [
    (VAE, "beta", -1.0), (VAE, "kl_warmup_epochs", -0.5), (VAE, "free_bits", -0.1),
    (DenoisingAutoencoder, "noise", "salt"), (DenoisingAutoencoder, "noise_std", 1.5),
    (DenoisingAutoencoder, "mask_prob", -0.1), (SparseAutoencoder, "sparsity", "l2"),
    (SparseAutoencoder, "sparsity_target", 1.0), (SparseAutoencoder, "sparsity_target", 0.0),
    (SparseAutoencoder, "sparsity_weight", -1.0), (SparseAutoencoder, "decoder_weight_decay", -1e-4),
    (ContractiveAutoencoder, "contractive_weight", -1e-3), (ContractiveAutoencoder, "jacobian_projections", -1),
    (ContractiveAutoencoder, "jacobian_projections", 1.5),
]  # fmt: skip


@pytest.mark.parametrize("model_class, key, value", BAD_VALUES)
def test_bad_values_are_config_errors_naming_the_key(model_class, key, value):
    with pytest.raises(ConfigError, match=rf"model\.{key}.*{value}"):
        model_class(**SMALL, **{key: value})


# --- training ---------------------------------------------------------------------------------
OWN_TERMS = {
    "vae": ["test/kl", "test/elbo", "test/recon", "test/active_units", "val/active_units", "val/kl_dim/0"],
    "dae": ["test/denoise_mse", "val/denoise_mse"],
    "sparse": ["test/rho_hat", "test/sparsity", "test/recon"],
    "contractive": ["test/contractive", "test/recon"],
}


@pytest.mark.parametrize("net", ["mlp", "conv"])
@pytest.mark.parametrize("model", sorted(OWN_TERMS))
def test_each_model_trains_with_each_net(tiny_cfg, tmp_path, model, net):
    from autoencoders.train import train

    metrics = train(tiny_cfg(f"model={model}", f"model.net={net}"), run_dir=tmp_path)
    for name in [*OWN_TERMS[model], "test/loss", "test/mse", "val/loss", "train/loss"]:
        assert name in metrics and math.isfinite(metrics[name]), name


@pytest.mark.slow
@pytest.mark.parametrize("model, net", [("vae", "mlp"), ("dae", "conv"), ("sparse", "mlp"), ("contractive", "conv")])
def test_ae_train_runs_each_model_on_fashionmnist(tmp_path, model, net):
    ae_train = Path(sys.executable).parent / "ae-train"
    overrides = [f"model={model}", f"model.net={net}", "trainer=fast", "torch_threads=1", f"output_root={tmp_path}"]
    done = subprocess.run([str(ae_train), *overrides], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (record_path,) = tmp_path.rglob("metrics.json")
    record = json.loads(record_path.read_text())
    assert record["status"] == "completed" and record["data"]["name"] == "fashionmnist"
    for name in [*OWN_TERMS[model], "test/loss", "test/mse"]:
        assert name in record["metrics"] and math.isfinite(record["metrics"][name]), name
