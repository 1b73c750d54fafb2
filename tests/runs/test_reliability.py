"""Divergence, interruption and resume: clear errors, nothing lost."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from autoencoders.errors import CheckpointError, ConfigError, Diverged, RunInterrupted
from autoencoders.models.autoencoder import Autoencoder
from autoencoders.runs.checkpoints import load_checkpoint
from autoencoders.runs.record import read_record
from autoencoders.runs.sweep import plan_for_existing_dir
from autoencoders.runs.train import train

AE_TRAIN = str(Path(sys.executable).parent / "ae-train")
FULL = ["trainer.limit_train_batches=1.0", "trainer.limit_val_batches=1.0", "trainer.limit_test_batches=1.0"]
QUIET = ["logging.images_every_n_epochs=0", "logging.projector_points=0"]


def ae_train(*args: str, cwd: Path, **popen) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    return subprocess.Popen([AE_TRAIN, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)  # fmt: skip


def only_run(root: Path) -> Path:
    (metrics,) = root.rglob("metrics.json")
    return metrics.parent


# --- divergence ------------------------------------------------------------------------------
def test_huge_learning_rate_diverges_with_a_clear_message(tmp_path):
    done = ae_train("data=synthetic", "trainer=fast", "torch_threads=1", "model.lr=1e30", cwd=tmp_path)
    _, stderr = done.communicate(timeout=300)
    assert done.returncode == 1
    assert "The loss became non-finite at step 1 (epoch 0): loss=nan" in stderr and "lower model.lr" in stderr
    assert "Traceback" not in stderr
    record = read_record(only_run(tmp_path))
    assert record["status"] == "diverged" and "non-finite" in record["error"]["message"]


def test_last_good_checkpoint_survives_divergence(tiny_cfg, tmp_path, monkeypatch):
    original = Autoencoder.loss_terms

    def nan_from_epoch_2(self, x):
        terms, x_hat = original(self, x)
        if self.current_epoch >= 2:
            terms["loss"] = terms["loss"] * float("nan")
        return terms, x_hat

    monkeypatch.setattr(Autoencoder, "loss_terms", nan_from_epoch_2)
    with pytest.raises(Diverged, match="epoch 2"):
        train(tiny_cfg("trainer.max_epochs=4", *QUIET), run_dir=tmp_path)
    record = read_record(tmp_path)
    assert record["status"] == "diverged" and record["metrics"]["val/loss"] > 0
    last = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 1
    assert all(torch.isfinite(tensor).all() for tensor in last["state_dict"].values())


# --- interruption and resume -----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_a_checkpoint_and_resume_continues(tmp_path, signal_number):
    args = ["data=synthetic", "data.batch_size=4", "trainer.max_epochs=4", "trainer.enable_progress_bar=false",
            "trainer.log_every_n_steps=5", "torch_threads=1", *FULL, *QUIET]  # fmt: skip
    process = ae_train(*args, cwd=tmp_path)
    deadline = time.monotonic() + 120
    # An epoch here takes ~0.1-0.2 s, so signal as soon as epoch 0's checkpoint exists: then
    # the stop falls in epoch 1 or 2, with whole epochs left for the resumed run.
    while not list(tmp_path.rglob("last.ckpt")) and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal_number)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal_number, stderr[-2000:]
    run = only_run(tmp_path)
    assert f"ae-train resume={run}" in stderr and "Traceback" not in stderr
    record = read_record(run)
    assert record["status"] == "interrupted"
    assert (run / "checkpoints" / "interrupted.ckpt").is_file()
    config_before = (run / "config.yaml").read_text()
    interrupted_step = load_checkpoint(run / "checkpoints" / "interrupted.ckpt")["global_step"]
    assert interrupted_step > 0

    resumed = ae_train(f"resume={run}", cwd=tmp_path)
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr[-2000:]
    record = read_record(run)
    assert record["status"] == "completed" and "test/mse" in record["metrics"]
    assert len(record["provenance"]["resumed"]) == 1
    assert (run / "config.yaml").read_text() == config_before
    events = EventAccumulator(str(run))
    events.Reload()
    steps = [event.step for event in events.Scalars("train/loss_step")]
    assert steps == sorted(set(steps)), "duplicate or out-of-order points after resume"
    assert max(steps) > interrupted_step  # the global step continued
    assert [event.step for event in events.Scalars("val/loss")] == sorted({e.step for e in events.Scalars("val/loss")})
    assert len(events.Scalars("val/loss")) == 4


@pytest.mark.parametrize("model", ["mlp", "vae"])
def test_resume_from_end_of_epoch_matches_an_uninterrupted_run(tiny_cfg, tmp_path, model, monkeypatch):
    base = [f"model={model}", "trainer.max_epochs=3", *FULL, *QUIET]
    uninterrupted = train(tiny_cfg(*base), run_dir=tmp_path / "a")
    # SIGTERM during epoch 1: Lightning finishes that epoch, then stops (an end-of-epoch stop).
    model_class = type(instantiate(tiny_cfg(*base).model, input_shape=[1, 28, 28]))
    original = model_class.on_train_epoch_end

    def terminate_after_epoch_1(self):
        original(self)
        if self.current_epoch == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(model_class, "on_train_epoch_end", terminate_after_epoch_1)
    with pytest.raises(RunInterrupted):
        train(tiny_cfg(*base), run_dir=tmp_path / "b")
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "b" / "checkpoints" / "interrupted.ckpt")["epoch"] == 2  # epochs 0, 1 done
    resumed = train(tiny_cfg(*base), run_dir=tmp_path / "b", resume=True)
    for name in ("test/mse", "test/loss"):
        assert resumed[name] == pytest.approx(uninterrupted[name], rel=1e-4)


def test_checkpoints_load_with_weights_only(tiny_cfg, tmp_path):
    train(tiny_cfg(*QUIET), run_dir=tmp_path)
    for name in ("best.ckpt", "last.ckpt"):
        checkpoint = torch.load(tmp_path / "checkpoints" / name, weights_only=True)
        assert checkpoint["model_class"] == "autoencoders.models.autoencoder.Autoencoder"


def test_corrupt_checkpoint_and_other_model_give_clear_errors(tiny_cfg, tmp_path):
    train(tiny_cfg(*QUIET), run_dir=tmp_path)
    with pytest.raises(CheckpointError, match="was saved by a different model|holds a"):
        train(tiny_cfg(*QUIET, "model=conv"), run_dir=tmp_path, resume=True)
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cannot be loaded.*corrupt"):
        train(tiny_cfg(*QUIET), run_dir=tmp_path, resume=True)


def test_a_run_never_writes_into_another_runs_directory(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "completed", "overrides": ["model=conv"]}))
    with pytest.raises(ConfigError, match="already holds another run"):
        plan_for_existing_dir(tmp_path, ["model=mlp"])
    assert plan_for_existing_dir(tmp_path, ["model=conv"]) == "skip"
    assert plan_for_existing_dir(tmp_path / "new", []) == "new"
    done = ae_train("data=synthetic", "trainer=fast", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    _, stderr = done.communicate(timeout=300)
    assert done.returncode == 1 and "already holds another run" in stderr
    assert json.loads((tmp_path / "metrics.json").read_text())["overrides"] == ["model=conv"]
