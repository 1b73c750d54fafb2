"""FactorVAE: the permutation keeps each marginal and breaks dependence; the discriminator's total
correlation estimate against the closed form on Gaussian codes; the second minibatch the
DataModule stacks into each training batch; training through the phased loop and reloading."""

import math

import pytest
import torch

from autoencoders.data.batches import BatchIndices
from autoencoders.data.datamodule import ImageDataModule
from autoencoders.models.factorvae import FactorVAE, permute_dimensions, split_draws
from autoencoders.rundir.checkpoints import load_checkpoint
from autoencoders.training.pipeline import train
from tests.helpers import assert_finite_terms, reloaded

QUIET = ["logging.images_every_n_epochs=0", "logging.projector_points=0", "eval.probe=false"]


def gaussian_codes(correlation: list[list[float]], n: int) -> torch.Tensor:
    """n draws of N(0, R): unit marginals, correlation matrix R."""
    return torch.randn(n, len(correlation)) @ torch.linalg.cholesky(torch.tensor(correlation)).T


def gaussian_total_correlation(correlation: list[list[float]]) -> float:
    """KL(N(0, R) || prod_j N(0, 1)) = -1/2 log det R, in nats."""
    return -0.5 * math.log(torch.linalg.det(torch.tensor(correlation, dtype=torch.float64)).item())


def test_the_permutation_keeps_each_marginal_and_breaks_the_dependence():
    torch.manual_seed(0)
    z = gaussian_codes([[1, 0.9, 0.5], [0.9, 1, 0.3], [0.5, 0.3, 1]], 5000)
    permuted = permute_dimensions(z)
    for j in range(3):  # the same values in every column: each marginal sample, exactly
        assert torch.equal(permuted[:, j].sort().values, z[:, j].sort().values), j
        assert not torch.equal(permuted[:, j], z[:, j])
    assert torch.corrcoef(z.T)[0, 1] > 0.89
    off_diagonal = torch.corrcoef(permuted.T)[~torch.eye(3, dtype=torch.bool)]
    assert off_diagonal.abs().max() < 0.05  # 5,000 independent pairs: |r| ~ 0.014


@pytest.mark.parametrize(("rho", "tolerance"), [(0.0, 0.03), (0.8, 0.13)])
def test_the_tc_estimate_matches_the_closed_form_on_gaussian_codes(rho, tolerance):
    # The factorvae's discriminator (narrower, for speed) trained as in its phase 2 on q(z) =
    # N(0, R) against permuted draws; its mean logit over fresh draws is the estimate of
    # TC = -1/2 log det R: 0 for independent codes, 0.511 nats at rho = 0.8. Over seeds 0-4 the
    # estimate at rho = 0.8 ranged 0.42-0.57; at rho = 0 it stayed within 0.005 of 0.
    torch.manual_seed(0)
    correlation = [[1.0, rho], [rho, 1.0]]
    model = FactorVAE(input_shape=[1, 2, 2], latent_dim=2, discriminator_width=64)
    optimizer = torch.optim.Adam(model.discriminator.parameters(), lr=3e-3, betas=(0.5, 0.9))
    for _ in range(300):
        z, second = gaussian_codes(correlation, 512), gaussian_codes(correlation, 512)
        loss = model.discriminator_terms(z, permute_dimensions(second))["disc_loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        estimate = model.discriminator(gaussian_codes(correlation, 20000)).mean().item()
    assert estimate == pytest.approx(gaussian_total_correlation(correlation), abs=tolerance)


def test_a_training_batch_holds_two_independent_draws():
    # Each step's indices: draw 0's batch (the order a one-draw run sees) joined to draw 1's.
    one, two = BatchIndices(100, 32, shuffle=True, seed=1), BatchIndices(100, 32, shuffle=True, seed=1, draws=2)
    for sampler in (one, two):
        sampler.set_epoch(3)
    single, double = list(one), list(two)
    assert [len(batch) for batch in double] == [64, 64, 64, 8]
    assert all(torch.equal(d[: len(s)], s) for s, d in zip(single, double))
    second = torch.cat([d[len(s) :] for s, d in zip(single, double)])
    assert sorted(second.tolist()) == list(range(100)) and second.tolist() != torch.cat(single).tolist()
    assert [len(batch) for batch in BatchIndices(100, 32, shuffle=False, draws=2)] == [32, 32, 32, 4]  # val/test
    # Under DDP each process takes its shard of both orders (50 indices each, disjoint).
    shards = [BatchIndices(100, 32, shuffle=True, seed=1, rank=rank, world=2, draws=2) for rank in (0, 1)]
    first_halves = [torch.cat([batch[: len(batch) // 2] for batch in shard]) for shard in shards]
    assert sorted(torch.cat(first_halves).tolist()) == list(range(100))
    # The DataModule asks the trainer's model how many draws a step takes.
    data = ImageDataModule(name="synthetic", batch_size=32, val_size=64)
    data.setup()

    class Trainer:
        lightning_module = FactorVAE(input_shape=[1, 28, 28])
        global_rank, world_size = 0, 1
        strategy = type("Strategy", (), {"root_device": torch.device("cpu")})()
        fit_loop = type(
            "FitLoop", (), {"epoch_progress": type("P", (), {"current": type("C", (), {"processed": 0})()})()}
        )()

    data.trainer = Trainer()
    x, _ = next(iter(data.train_dataloader()))
    first, second = split_draws(x)
    assert x.shape == (64, 1, 28, 28) and first.shape == second.shape == (32, 1, 28, 28)
    assert next(iter(data.val_dataloader()))[0].shape == (64, 1, 28, 28)  # evaluation: one draw (64 val images)


def test_factorvae_trains_through_two_phases_and_reloads(tiny_cfg, tmp_path, monkeypatch):
    seen: list[int] = []
    phases = FactorVAE.training_phases

    def recorded(self, x):
        seen.append(len(x))
        return phases(self, x)

    monkeypatch.setattr(FactorVAE, "training_phases", recorded)
    metrics = train(tiny_cfg("model=factorvae", "model.net=conv", "model.latent_dim=4", *QUIET), run_dir=tmp_path)
    assert seen == [64, 64]  # two batches of 32 per step (tiny_cfg: batch 32, two steps)
    assert_finite_terms(metrics, ("recon", "kl", "elbo", "tc", "disc_loss", "disc_acc", "loss"))
    assert 0 <= metrics["test/disc_acc"] <= 1 and metrics["test/active_units"] >= 0
    assert metrics["test/elbo"] == pytest.approx(-(metrics["test/recon"] + metrics["test/kl"]), rel=1e-5)
    model = reloaded(tmp_path, FactorVAE, latent_dim=4)
    with torch.no_grad():
        assert model.sample(5).shape == (5, 1, 28, 28)
    saved = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert len(saved["optimizer_states"]) == 2  # the VAE's and the discriminator's
    assert saved["optimizer_states"][1]["param_groups"][0]["betas"] == (0.5, 0.9)
    assert any(key.startswith("discriminator.") for key in saved["state_dict"])


def test_the_autoencoder_phase_adds_gamma_times_the_tc_estimate_to_the_vae_loss():
    torch.manual_seed(0)
    model = FactorVAE(input_shape=[1, 4, 4], latent_dim=3, gamma=7.0, discriminator_width=8)
    x = torch.rand(6, 1, 4, 4)
    torch.manual_seed(1)
    terms, _, _ = model.vae_terms(x)
    assert terms["loss"].item() == pytest.approx((terms["recon"] + terms["kl"]).item(), rel=1e-6)  # the VAE's
    torch.manual_seed(1)
    (name, objective, _), _ = list(model.training_phases(torch.cat([x, x])))
    assert name == "autoencoder"
    assert objective.item() == pytest.approx((terms["loss"] + 7.0 * terms["tc"]).item(), rel=1e-6)
    torch.manual_seed(1)  # the same noise: tc is D's mean logit on the sampled codes
    mu, logvar, z = model.sampled_codes(x)
    assert terms["tc"].item() == pytest.approx(model.discriminator(z).mean().item(), rel=1e-6)
