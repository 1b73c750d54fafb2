"""Divergence, checkpoints of other runs, another run's directory: clear errors, nothing lost."""

import json

import pytest
import torch

from autoencoders.errors import CheckpointError, ConfigError, Diverged
from autoencoders.rundir.checkpoints import load_checkpoint
from autoencoders.rundir.record import read_record
from autoencoders.rundir.resume import plan_resume
from autoencoders.training.pipeline import resume_training, train
from autoencoders.training.sweep import plan_for_existing_dir
from tests.helpers import ae_train_here, nan_loss_from_epoch, only_run

FULL = ["trainer.limit_train_batches=1.0", "trainer.limit_val_batches=1.0", "trainer.limit_test_batches=1.0"]
QUIET = ["logging.images_every_n_epochs=0", "logging.projector_points=0"]


# --- divergence ------------------------------------------------------------------------------
def test_huge_learning_rate_diverges_with_a_clear_message(tmp_path, monkeypatch):
    args = ["data=synthetic", "trainer=fast", "torch_threads=1", "model.lr=1e30"]
    done = ae_train_here(*args, cwd=tmp_path, monkeypatch=monkeypatch)
    stderr = done.stderr
    assert done.returncode == 1
    assert "The loss became non-finite at step 1 (epoch 0): loss=nan" in stderr and "lower model.lr" in stderr
    assert "Traceback" not in stderr
    record = read_record(only_run(tmp_path))
    assert record["status"] == "diverged" and "non-finite" in record["error"]["message"]


def test_last_good_checkpoint_survives_divergence(tiny_cfg, tmp_path, monkeypatch):
    nan_loss_from_epoch(monkeypatch, 2)
    with pytest.raises(Diverged, match="epoch 2"):
        train(tiny_cfg("trainer.max_epochs=4", *QUIET), run_dir=tmp_path)
    record = read_record(tmp_path)
    assert record["status"] == "diverged" and record["metrics"]["val/loss"] > 0
    last = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 1
    assert all(torch.isfinite(tensor).all() for tensor in last["state_dict"].values())


def test_checkpoints_load_with_weights_only(tiny_cfg, tmp_path):
    train(tiny_cfg(*QUIET), run_dir=tmp_path)
    for name in ("best.ckpt", "last.ckpt"):
        checkpoint = torch.load(tmp_path / "checkpoints" / name, weights_only=True)
        assert checkpoint["model_class"] == "autoencoders.models.autoencoder.Autoencoder"


def test_another_model_is_refused_and_a_corrupt_checkpoint_is_passed_over(tiny_cfg, tmp_path):
    train(tiny_cfg(*QUIET), run_dir=tmp_path)
    with pytest.raises(ConfigError, match="model=conv cannot be changed on resume"):
        resume_training(tmp_path, ["model=conv"])
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    plan = plan_resume(tmp_path, [])  # the newest checkpoint that loads, saying which it skipped
    assert plan.checkpoint.name == "best.ckpt"
    assert len(plan.skipped) == 1 and plan.skipped[0].startswith("skipped last.ckpt: Checkpoint")
    assert "cannot be loaded" in plan.skipped[0] and "corrupt" in plan.skipped[0]
    best = tmp_path / "checkpoints" / "best.ckpt"
    best.write_bytes(best.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="No checkpoint of .* can be resumed from .*cannot be loaded"):
        resume_training(tmp_path)


def test_a_run_never_writes_into_another_runs_directory(tmp_path, monkeypatch):
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "completed", "overrides": ["model=conv"]}))
    with pytest.raises(ConfigError, match="already holds another run"):
        plan_for_existing_dir(tmp_path, ["model=mlp"])
    assert plan_for_existing_dir(tmp_path, ["model=conv"]) == "skip"
    assert plan_for_existing_dir(tmp_path / "new", []) == "new"
    done = ae_train_here(
        "data=synthetic", "trainer=fast", f"hydra.run.dir={tmp_path}", cwd=tmp_path, monkeypatch=monkeypatch
    )
    stderr = done.stderr
    assert done.returncode == 1 and "already holds another run" in stderr
    assert json.loads((tmp_path / "metrics.json").read_text())["overrides"] == ["model=conv"]
