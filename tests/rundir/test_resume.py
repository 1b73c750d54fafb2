"""A resume continues the same experiment: what it may change, what it records, and that a
refused or failed resume leaves the finished run as it was."""

import math
from pathlib import Path

import pytest
import torch

from autoencoders.errors import ConfigError, RunInterrupted
from autoencoders.machinery.base import AutoencoderBase
from autoencoders.models.autoencoder import Autoencoder
from autoencoders.rundir.checkpoints import load_checkpoint
from autoencoders.rundir.record import read_record
from autoencoders.rundir.resume import plan_resume
from autoencoders.training.pipeline import resume_training, train
from tests.helpers import ae_train, ae_train_here, digest, read_events, sigterm_after_epoch

QUIET = ["logging.images_every_n_epochs=0", "logging.projector_points=0", "eval.probe=false"]
CONSTANT = "model.lr_schedule=constant"


@pytest.fixture
def finished(tiny_cfg, tmp_path) -> Path:
    run = tmp_path / "run"
    train(tiny_cfg(*QUIET, CONSTANT), run_dir=run, overrides=["data=synthetic", CONSTANT])
    return run


def test_a_resume_records_itself_and_keeps_the_runs_identity(finished):
    config_before, record_before = (finished / "config.yaml").read_text(), read_record(finished)
    resume_training(finished, ["trainer.max_epochs=2", "eval.nll_images=null", "++logging.n_images=8"])
    record = read_record(finished)
    assert (finished / "config.yaml").read_text() == config_before
    assert record["overrides"] == record_before["overrides"] == ["data=synthetic", CONSTANT]
    (entry,) = record["resumes"]
    assert entry["overrides"] == ["trainer.max_epochs=2", "eval.nll_images=null", "++logging.n_images=8"]
    assert entry["checkpoint"] == "checkpoints/last.ckpt" and entry["at"]
    assert record["model"] == record_before["model"]
    assert load_checkpoint(finished / "checkpoints" / "last.ckpt")["epoch"] == 1
    # A later resume replays the earlier ones: the run stays extended to 2 epochs.
    assert plan_resume(finished, []).cfg.trainer.max_epochs == 2
    assert plan_resume(finished, []).cfg.eval.nll_images is None


def ae_train_code(monkeypatch, *args: str) -> tuple[int, str]:
    """`ae-train args...` in this process (tests.helpers.ae_train_here): its exit code and stderr;
    stdout must hold no traceback either."""
    done = ae_train_here(*args, monkeypatch=monkeypatch)
    assert "Traceback" not in done.stdout
    return done.returncode, done.stderr


def test_a_resumed_run_keeps_its_models_group_name(tmp_path, monkeypatch):
    run = tmp_path / "run"
    code, err = ae_train_code(
        monkeypatch,
        "data=synthetic",
        "trainer=fast",
        "torch_threads=1",
        CONSTANT,
        *QUIET,
        f"hydra.run.dir={run}",
    )
    assert code == 0, err[-2000:]
    code, err = ae_train_code(monkeypatch, f"resume={run}", "trainer.max_epochs=2")
    assert code == 0, err[-2000:]
    assert read_record(run)["model"]["name"] == "mlp"  # not the class path: it groups with the other mlp runs


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model=conv", "model=conv cannot be changed on resume"),
        ("model.latent_dim=3", "model.latent_dim=3 cannot be changed on resume"),
        ("data.batch_size=8", "data.batch_size=8 cannot be changed on resume"),
        ("+trainer.gradient_clip_val=1", "+trainer.gradient_clip_val=1 cannot be changed on resume"),
        ("trainer.max_epochs=3,4", "trainer.max_epochs=3,4 cannot be changed on resume"),  # a sweep
        ("trainer.max_epochs=0", "trainer.max_epochs=0 is not allowed"),
        ("eval.nll_sample=3", "eval.nll_sample is not an eval setting"),
    ],
)
def test_a_refused_resume_exits_1_with_one_paragraph_and_changes_no_file(finished, monkeypatch, override, message):
    before = digest(finished)
    code, err = ae_train_code(monkeypatch, f"resume={finished}", override)
    assert code == 1
    assert message in err and "Traceback" not in err
    assert err.count(message) == 1  # said once
    assert digest(finished) == before


def test_the_refused_resume_command_exits_1_with_one_paragraph(finished, tmp_path):
    # The command itself, once (the cases above run its main() in this process).
    before = digest(finished)
    done = ae_train(f"resume={finished}", "model=conv", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    assert done.stderr.count("model=conv cannot be changed on resume") == 1
    assert digest(finished) == before


def test_a_resume_with_no_usable_checkpoint_changes_no_file(finished, monkeypatch):
    for path in (finished / "checkpoints").glob("*.ckpt"):
        path.write_bytes(path.read_bytes()[:500])
    before = digest(finished)
    code, err = ae_train_code(monkeypatch, f"resume={finished}")
    assert code == 1 and "No checkpoint of" in err and "cannot be loaded" in err
    assert digest(finished) == before and read_record(finished)["status"] == "completed"


def test_resuming_from_a_chosen_checkpoint_purges_the_points_after_it(tiny_cfg, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(tiny_cfg(*QUIET, CONSTANT), run_dir=run)  # one epoch of 2 steps
    epoch_0 = run / "checkpoints" / "epoch0.ckpt"
    epoch_0.write_bytes((run / "checkpoints" / "last.ckpt").read_bytes())
    resume_training(run, ["trainer.max_epochs=3"])  # epochs 1 and 2: steps 2 to 6
    final = load_checkpoint(run / "checkpoints" / "last.ckpt")
    code, err = ae_train_code(monkeypatch, f"resume={epoch_0}")  # back to the end of epoch 0
    assert code == 0, err[-2000:]
    assert read_record(run)["resumes"][-1]["checkpoint"] == "checkpoints/epoch0.ckpt"
    events = read_events(run)
    assert [event.step for event in events.Scalars("train/loss")] == [1, 3, 5]  # epochs 1, 2 once: the old ones purged
    again = load_checkpoint(run / "checkpoints" / "last.ckpt")  # overwritten as training went on
    assert again["global_step"] == final["global_step"] == 6
    assert torch.equal(
        again["state_dict"]["encoder.1.weight"], final["state_dict"]["encoder.1.weight"]
    )  # same data order, same weights


def lrs_of_every_step(monkeypatch) -> list[float]:
    seen: list[float] = []
    original = AutoencoderBase.training_step

    def step(self, batch, batch_idx):
        seen.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        return original(self, batch, batch_idx)

    monkeypatch.setattr(AutoencoderBase, "training_step", step)
    return seen


def test_an_extended_cosine_run_decays_from_where_it_was_to_zero(tiny_cfg, tmp_path, monkeypatch):
    lrs = lrs_of_every_step(monkeypatch)
    original = Autoencoder.on_train_epoch_end
    sigterm_after_epoch(monkeypatch, Autoencoder, 1)
    with pytest.raises(RunInterrupted):
        train(tiny_cfg(*QUIET, "trainer.max_epochs=4", "model.lr=0.01"), run_dir=tmp_path)  # cosine, 8 steps
    before = list(lrs)
    monkeypatch.setattr(Autoencoder, "on_train_epoch_end", original)
    resume_training(tmp_path, ["trainer.max_epochs=6"])  # 12 steps in all: 8 left from step 4
    after = lrs[len(before) :]
    assert len(before) == 4 and len(after) == 8
    assert before == pytest.approx([0.01 * 0.5 * (1 + math.cos(math.pi * step / 8)) for step in range(4)])
    reached = 0.01 * 0.5 * (1 + math.cos(math.pi * 4 / 8))  # where the original schedule was at step 4
    assert after == pytest.approx([reached * 0.5 * (1 + math.cos(math.pi * step / 8)) for step in range(8)])
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))  # no jump back up at the resume


def test_a_finished_cosine_run_cannot_be_extended(tiny_cfg, tmp_path):
    train(tiny_cfg(*QUIET, "trainer.max_epochs=2"), run_dir=tmp_path)  # cosine: lr reached 0 at the end
    before = digest(tmp_path)
    with pytest.raises(ConfigError, match="cosine learning-rate schedule already decayed to 0"):
        resume_training(tmp_path, ["trainer.max_epochs=3"])
    assert digest(tmp_path) == before
    resume_training(tmp_path, ["eval.probe=true"])  # resuming without more epochs: tests and evaluates again
    assert "test/probe_acc" in read_record(tmp_path)["metrics"]


@pytest.mark.parametrize("accumulate", [1, 2])
def test_kl_warm_up_counts_batches_not_optimizer_steps(tiny_cfg, tmp_path, monkeypatch, accumulate):
    from autoencoders.models.vae import VAE

    weights: list[float] = []
    original = VAE.kl_weight

    def recording(self):
        weight = original(self)
        if self.training:
            weights.append(weight)
        return weight

    monkeypatch.setattr(VAE, "kl_weight", recording)
    cfg = tiny_cfg(
        "model=vae",
        "model.kl_warmup_epochs=1",
        "model.beta=2.0",
        "trainer.limit_train_batches=4",
        "trainer.max_epochs=2",
        f"++trainer.accumulate_grad_batches={accumulate}",
        *QUIET,
        "eval.nll_samples=0",
    )
    train(cfg, run_dir=tmp_path)
    assert weights == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.0, 2.0, 2.0])  # one epoch of 4 batches, then beta
