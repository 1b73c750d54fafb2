"""SIGINT and SIGTERM in every phase of a run: the record says interrupted, the run resumes."""

import os
import signal

import pytest
from hydra.utils import instantiate

from autoencoders.errors import RunInterrupted
from autoencoders.models.autoencoder import Autoencoder
from autoencoders.rundir.checkpoints import load_checkpoint
from autoencoders.rundir.record import read_record
from autoencoders.training.pipeline import resume_training, train
from tests.helpers import ae_train_here, only_run, read_events, signal_when, sigterm_after_epoch, start_ae_train

FULL = ["trainer.limit_train_batches=1.0", "trainer.limit_val_batches=1.0", "trainer.limit_test_batches=1.0"]
QUIET = ["logging.images_every_n_epochs=0", "logging.projector_points=0"]


def terminate_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.slow
@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_a_checkpoint_and_resume_continues(tmp_path, signal_number, monkeypatch):
    args = [
        "data=synthetic",
        "data.batch_size=4",
        "trainer.max_epochs=4",
        "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=5",
        "torch_threads=1",
        *FULL,
        *QUIET,
    ]
    process = start_ae_train(*args, cwd=tmp_path)
    # An epoch here takes ~0.1-0.2 s, so signal as soon as epoch 0's checkpoint exists: then
    # the stop falls in epoch 1 or 2, with whole epochs left for the resumed run.
    _, stderr = signal_when(process, lambda: bool(list(tmp_path.rglob("last.ckpt"))), signal_number)
    assert process.returncode == 128 + signal_number, stderr[-2000:]
    run = only_run(tmp_path)
    assert f"ae-train resume={run}" in stderr and "Traceback" not in stderr
    record = read_record(run)
    assert record["status"] == "interrupted"
    assert record["error"]["message"].startswith(f"Stopped by {signal.Signals(signal_number).name}")  # as received
    assert (run / "checkpoints" / "interrupted.ckpt").is_file()
    config_before = (run / "config.yaml").read_text()
    interrupted_step = load_checkpoint(run / "checkpoints" / "interrupted.ckpt")["global_step"]
    assert interrupted_step > 0

    resumed = ae_train_here(
        f"resume={run}", cwd=tmp_path, monkeypatch=monkeypatch
    )  # the signal needed a process; this does not
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    record = read_record(run)
    assert record["status"] == "completed" and "test/mse" in record["metrics"]
    assert len(record["resumes"]) == 1 and record["resumes"][0]["checkpoint"] == "checkpoints/interrupted.ckpt"
    assert (run / "config.yaml").read_text() == config_before
    events = read_events(run)
    steps = [event.step for event in events.Scalars("train/loss_step")]
    assert steps == sorted(set(steps)), "duplicate or out-of-order points after resume"
    assert max(steps) > interrupted_step  # the global step continued
    assert [event.step for event in events.Scalars("val/loss")] == sorted({e.step for e in events.Scalars("val/loss")})
    assert len(events.Scalars("val/loss")) == 4 + 1  # each epoch once, and the tested checkpoint's at the test step


# aae: its three optimizers and schedules restored; factorvae: two optimizers and the two batch
# orders of each step; hvae: both levels' noise.
@pytest.mark.parametrize("model", ["mlp", "vae", "aae", "factorvae", "hvae"])
def test_resume_from_end_of_epoch_matches_an_uninterrupted_run(tiny_cfg, tmp_path, model, monkeypatch):
    # The factorvae's discriminator narrower than its default 6 x 1000: a third of the time, the same path.
    narrow = ["model.discriminator_width=100"] if model == "factorvae" else []
    base = [f"model={model}", "trainer.max_epochs=3", *FULL, *QUIET, *narrow]
    uninterrupted = train(tiny_cfg(*base), run_dir=tmp_path / "a")
    # SIGTERM during epoch 1: Lightning finishes that epoch, then stops (an end-of-epoch stop).
    model_class = type(instantiate(tiny_cfg(*base).model, input_shape=[1, 28, 28]))
    sigterm_after_epoch(monkeypatch, model_class, 1)
    with pytest.raises(RunInterrupted):
        train(tiny_cfg(*base), run_dir=tmp_path / "b")
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "b" / "checkpoints" / "interrupted.ckpt")["epoch"] == 2  # epochs 0, 1 done
    resumed = resume_training(tmp_path / "b")
    for name in ("test/mse", "test/loss"):
        assert resumed[name] == pytest.approx(uninterrupted[name], rel=1e-4)


def phase_hook(phase: str, monkeypatch) -> None:
    """Send SIGTERM to this process from inside `phase` of a run."""
    if phase == "sanity check":
        original = Autoencoder.validation_step

        def step(self, batch, batch_idx):
            if self.trainer.sanity_checking:
                terminate_self()
            return original(self, batch, batch_idx)

        monkeypatch.setattr(Autoencoder, "validation_step", step)
    elif phase == "test":
        original = Autoencoder.test_step
        monkeypatch.setattr(Autoencoder, "test_step", lambda self, *args: (terminate_self(), original(self, *args))[1])
    else:  # evaluation: the probe, after testing
        from autoencoders.evaluation import probe

        original = probe.probe_splits
        monkeypatch.setattr(probe, "probe_splits", lambda *args: (terminate_self(), original(*args))[1])


@pytest.mark.parametrize("phase", ["sanity check", "test", "evaluation"])
def test_a_signal_in_any_phase_ends_interrupted_and_the_run_resumes(tiny_cfg, tmp_path, phase, monkeypatch):
    phase_hook(phase, monkeypatch)
    with pytest.raises(RunInterrupted) as stopped:
        train(tiny_cfg("trainer.max_epochs=2", *QUIET), run_dir=tmp_path)
    assert stopped.value.signal_number == signal.SIGTERM
    record = read_record(tmp_path)
    assert record["status"] == "interrupted" and record["error"]["type"] == "RunInterrupted"
    assert record["error"]["message"].startswith("Stopped by SIGTERM")  # the signal received, by name
    trained = (
        None if phase == "sanity check" else load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["global_step"]
    )
    monkeypatch.undo()
    metrics = resume_training(tmp_path)
    record = read_record(tmp_path)
    assert record["status"] == "completed" and "test/mse" in metrics and "test/probe_acc" in metrics
    last = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    if trained is not None:  # training had finished: the resume only tested and evaluated
        assert last["global_step"] == trained
        events = read_events(tmp_path)
        assert [event.step for event in events.Scalars("train/loss")] == [1, 3]  # no epoch trained twice
    else:
        assert last["epoch"] == 1  # stopped before training: the resume trained both epochs


@pytest.mark.slow
def test_sigterm_during_evaluation_exits_143_with_an_interrupted_record(tmp_path):
    # The VAE's test likelihood with many samples keeps the run in evaluation for seconds.
    args = [
        "model=vae",
        "data=synthetic",
        "trainer=fast",
        "torch_threads=1",
        *QUIET,
        "eval.nll_samples=20000",
        "eval.nll_images=null",
    ]
    process = start_ae_train(*args, cwd=tmp_path)
    out, err = signal_when(
        process, lambda: any("Linear probe" in path.read_text() for path in tmp_path.rglob("train.log")), signal.SIGTERM
    )
    assert process.returncode == 143, err[-2000:]
    run = only_run(tmp_path)
    assert read_record(run)["status"] == "interrupted"
    assert f"ae-train resume={run}" in err and "Traceback" not in out + err
