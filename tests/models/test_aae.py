"""The adversarial autoencoder: its adversarial terms against hand computation, the direction
of the generator phase's gradient, and the two-optimiser loop (machinery/phases.py) it trains on:
one step per batch, the cosine schedule's length, clipping, accumulation refused, checkpoints."""

import math

import lightning
import pytest
import torch

from autoencoders.errors import ConfigError, Diverged
from autoencoders.losses import matching
from autoencoders.machinery.optim import CosineDecay
from autoencoders.models.aae import AAE
from autoencoders.rundir.checkpoints import load_checkpoint
from autoencoders.rundir.record import read_record
from autoencoders.training.pipeline import train
from tests.helpers import assert_finite_terms, read_events, reloaded

QUIET = ["logging.images_every_n_epochs=0", "logging.projector_points=0", "eval.probe=false"]
FULL_EPOCHS = ["trainer.limit_train_batches=1.0"]  # 448 generated images in batches of 32: 14 steps an epoch


def log_sigmoid(value: float) -> float:
    return -math.log(1 + math.exp(-value))


def test_the_adversarial_terms_equal_hand_computation():
    real, fake = torch.tensor([0.3, -1.2, 2.5]), torch.tensor([2.0, -0.5])
    disc = -sum(map(log_sigmoid, [0.3, -1.2, 2.5])) / 3 - sum(log_sigmoid(-value) for value in [2.0, -0.5]) / 2
    assert matching.discriminator_loss(real, fake).item() == pytest.approx(disc, rel=1e-6)
    gen = -sum(map(log_sigmoid, [2.0, -0.5])) / 2
    assert matching.generator_loss(fake).item() == pytest.approx(gen, rel=1e-6)
    # Right: 0.3 and 2.5 (real, logit > 0) and -0.5 (fake, logit <= 0); wrong: -1.2 and 2.0.
    assert matching.discriminator_accuracy(real, fake).item() == pytest.approx(3 / 5)
    # A discriminator that cannot tell (logit 0 everywhere): 2 log 2 and log 2.
    zeros = torch.zeros(4)
    assert matching.discriminator_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    assert matching.generator_loss(zeros).item() == pytest.approx(math.log(2))


@pytest.mark.parametrize("offset", [4.0, -4.0])
def test_the_generator_phase_moves_codes_toward_the_prior_on_a_1d_toy(offset):
    # Every code sits at `offset` (encoder output weights 0, bias = offset); a discriminator trained
    # to tell them from N(0, 1) draws; the generator phase's gradient on the bias then points away
    # from the prior, so the descent step moves the codes toward 0.
    torch.manual_seed(0)
    model = AAE(input_shape=[1, 2, 2], latent_dim=1, discriminator_width=16)
    head = model.encoder[-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(offset)
    x = torch.rand(64, 1, 2, 2)
    optimizer = torch.optim.Adam(model.discriminator.parameters(), lr=1e-2)
    for _ in range(200):
        real, fake = model.discriminator(torch.randn(64, 1)), model.discriminator(model.encode(x).detach())
        optimizer.zero_grad()
        matching.discriminator_loss(real, fake).backward()
        optimizer.step()
    phases = list(model.training_phases(x))
    assert [name for name, _, _ in phases] == ["autoencoder", "discriminator", "generator"]
    assert phases[1][2]["disc_acc"].item() > 0.9  # it tells them apart
    model.zero_grad()
    phases[2][1].backward()
    assert head.bias.grad.item() * math.copysign(1, offset) > 0  # -grad points toward 0
    assert all(parameter.grad is None for parameter in model.decoder.parameters())  # the encoder's phase only


def test_aae_trains_samples_and_reloads(tiny_cfg, tmp_path):
    # (Both nets train in tests/models/test_training.py; this one reloads the conv aae.)
    metrics = train(tiny_cfg("model=aae", "model.net=conv", "model.latent_dim=4", *QUIET), run_dir=tmp_path)
    assert_finite_terms(metrics, ("recon", "disc_loss", "gen_loss", "disc_acc", "loss"))
    assert 0 <= metrics["test/disc_acc"] <= 1 and metrics["test/loss"] == metrics["test/recon"] == metrics["test/mse"]
    model = reloaded(tmp_path, AAE, latent_dim=4)
    with torch.no_grad():
        assert model.sample(5).shape == (5, 1, 28, 28)
    saved = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert len(saved["optimizer_states"]) == 3  # autoencoder, discriminator, generator


def test_one_step_is_one_batch_for_max_steps_the_cosine_schedule_and_the_step_curve(tiny_cfg, tmp_path):
    cfg = tiny_cfg(
        "model=aae",
        "model.lr_schedule=cosine",
        "model.generator_lr=5e-4",
        "trainer.max_epochs=2",
        "++trainer.max_steps=20",
        "trainer.log_every_n_steps=3",
        *FULL_EPOCHS,
        *QUIET,
    )
    train(cfg, run_dir=tmp_path)
    assert read_record(tmp_path)["last"]["step"] == 20  # three optimizer steps a batch, 20 steps
    events = read_events(tmp_path)
    assert [event.step for event in events.Scalars("train/loss_step")] == list(range(0, 20, 3))
    # The schedule spans the run's 20 batches: at the start of epoch 1 (after 14 of them) each
    # optimizer's lr is its peak times the cosine at 14/20 (0.206; counting 3 steps a batch: 0.73).
    scale = CosineDecay(20)(14)
    # The generator phase runs at model.generator_lr, the discriminator at model.adversarial_lr.
    for tag, peak in (("lr-Adam", 1e-3), ("lr-Adam/discriminator", 1e-4), ("lr-Adam/generator", 5e-4)):
        values = [event.value for event in events.Scalars(tag)]
        assert values == pytest.approx([peak, peak * scale]), tag


def test_gradient_clipping_clips_every_phase(tiny_cfg, tmp_path):
    norms: list[float] = []

    class Norms(lightning.Callback):
        def on_before_optimizer_step(self, trainer, module, optimizer):
            grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())

    train(tiny_cfg("model=aae", "++trainer.gradient_clip_val=0.05", *QUIET), run_dir=tmp_path, callbacks=[Norms()])
    assert len(norms) == 3 * 2  # three phases, two batches
    assert max(norms) == pytest.approx(0.05, rel=1e-4)  # clipped (the raw norms are larger)


def test_gradient_accumulation_is_refused_before_training(tiny_cfg, tmp_path):
    with pytest.raises(ConfigError, match=r"trainer.accumulate_grad_batches=2 is not allowed for AAE.*data.batch_size"):
        train(tiny_cfg("model=aae", "++trainer.accumulate_grad_batches=2"), run_dir=tmp_path)
    assert read_record(tmp_path)["status"] == "failed" and not (tmp_path / "checkpoints").exists()


def test_a_non_finite_adversarial_term_stops_the_run_naming_it(tiny_cfg, tmp_path, monkeypatch):
    original = matching.discriminator_loss

    calls: list[int] = []

    def nan_at_step_5(real, fake):
        value = original(real, fake)
        if torch.is_grad_enabled():  # a training phase (validation runs without gradients)
            calls.append(1)
            if len(calls) == 6:  # steps count from 0
                return value * float("nan")
        return value

    monkeypatch.setattr(matching, "discriminator_loss", nan_at_step_5)
    cfg = tiny_cfg("model=aae", "trainer.log_every_n_steps=4", *FULL_EPOCHS, *QUIET)
    with pytest.raises(Diverged, match=r"non-finite at step 5 \(epoch 0\): disc_loss=nan"):
        train(cfg, run_dir=tmp_path)
