"""Loggers beside TensorBoard (views/loggers.py): CSV gets every scalar TensorBoard gets, at the
same steps, also across a resume; a logger that fails mid-run is reported and the run's record
stays complete; extra callbacks come from config (callbacks=timing)."""

from __future__ import annotations

import csv
import json
import logging

import pytest
import yaml

from autoencoders.errors import ConfigError
from autoencoders.rundir.record import read_record
from autoencoders.training.pipeline import resume_training, train
from tests.helpers import read_events

QUIET = ["eval.probe=false", "logging.projector_points=0", "trainer.enable_progress_bar=false"]


def csv_series(run) -> dict[str, list[tuple[int, float]]]:
    """Each column of <run>/csv/metrics.csv as (step, value) points, empty cells skipped."""
    with (run / "csv" / "metrics.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    columns = {name for row in rows for name in row if name != "step"}
    return {
        name: [(int(row["step"]), float(row[name])) for row in rows if row.get(name) not in ("", None)]
        for name in columns
    }


def tensorboard_series(run) -> dict[str, list[tuple[int, float]]]:
    events = read_events(run)
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def assert_same_points(csv_points, tb_points) -> None:
    assert set(csv_points) == set(tb_points)
    for tag, points in tb_points.items():
        got = sorted(csv_points[tag])
        assert [step for step, _ in got] == sorted(step for step, _ in points), tag
        # TensorBoard keeps float32; the CSV the logged Python float.
        assert [value for _, value in got] == pytest.approx([value for _, value in sorted(points)], rel=1e-6), tag


def test_csv_columns_equal_tensorboards_scalars_at_the_same_steps_also_after_a_resume(tiny_cfg, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_cfg(
        "model=vae",
        "model.latent_dim=2",
        "logger=csv",
        "trainer.max_epochs=2",
        "eval.nll_samples=4",
        "eval.nll_images=8",
        *QUIET,
    )
    metrics = train(cfg, run_dir=run)
    points = csv_series(run)
    assert_same_points(points, tensorboard_series(run))
    # The three that went to the first logger only: the per-step loss, the evaluation's metrics and
    # the tested checkpoint's re-logged val/* (at the test step, beside test/*).
    assert [step for step, _ in points["train/loss_step"]] == [0, 1, 2, 3]  # log_every_n_steps=1, 2 batches x 2 epochs
    assert points["test/nll"] == [(4, pytest.approx(metrics["test/nll"]))]
    assert points["val/loss"][-1] == (4, pytest.approx(metrics["val/loss"]))
    hparams = yaml.safe_load((run / "csv" / "hparams.yaml").read_text())
    assert hparams["latent_dim"] == 2 and hparams["seed"] == 42 and hparams["batch_size"] == 32
    assert yaml.safe_load((run / "hparams.yaml").read_text())["latent_dim"] == 2  # TensorBoard's, not overwritten
    assert read_record(run)["loggers"] == {"csv": {"dir": "csv"}}

    resume_training(run, ["trainer.max_epochs=3"])  # from last.ckpt at step 4: epochs 2 adds steps 4, 5
    points = csv_series(run)
    assert_same_points(points, tensorboard_series(run))
    assert [step for step, _ in points["train/loss_step"]] == [0, 1, 2, 3, 4, 5]
    assert [step for step, _ in points["test/nll"]] == [
        6
    ]  # the first session's test point was purged, as in TensorBoard


def test_a_logger_failing_mid_run_is_reported_and_the_record_stays_complete(tiny_cfg, tmp_path, monkeypatch, caplog):
    from mlflow.tracking import MlflowClient

    original, calls = MlflowClient.log_batch, []

    def flaky(self, run_id, metrics=(), params=(), tags=(), **kwargs):
        if metrics:
            calls.append(len(metrics))
            if len(calls) > 2:
                raise ConnectionError("tracking server went away")
        return original(self, run_id, metrics=metrics, params=params, tags=tags, **kwargs)

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setattr(MlflowClient, "log_batch", flaky)
    run = tmp_path / "run"
    with caplog.at_level(logging.ERROR, logger="autoencoders"):
        metrics = train(tiny_cfg("logger=[csv,mlflow]", *QUIET), run_dir=run)
    record = read_record(run)
    assert record["status"] == "completed" and record["metrics"] == metrics and "test/mse" in metrics
    assert record["loggers"]["mlflow"]["error"] == "ConnectionError: tracking server went away"
    assert "error" not in record["loggers"]["csv"]
    assert len(calls) == 3  # after the failure the logger took no more writes
    assert [r.message for r in caplog.records if "MLflow stopped taking writes" in r.message]
    assert_same_points(csv_series(run), tensorboard_series(run))  # the other logger got everything


def test_an_mlflow_server_that_cannot_be_reached_fails_the_run_at_start_up(tiny_cfg, tmp_path, monkeypatch):
    from autoencoders.errors import LoggerUnavailable
    from tests.helpers import free_port

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(
        LoggerUnavailable,
        match=rf"The MLflow tracking server at {uri}/health cannot be reached .* "
        r"leave it null for the local store",
    ):
        train(tiny_cfg("logger=mlflow", f"logger.mlflow.tracking_uri={uri}", *QUIET), run_dir=tmp_path / "run")
    record = read_record(tmp_path / "run")
    assert record["status"] == "failed" and record["error"]["type"] == "LoggerUnavailable"
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing was trained


def test_extra_callbacks_come_from_config(tiny_cfg, tmp_path):
    metrics = train(
        tiny_cfg(
            "callbacks=timing",
            "trainer.max_epochs=2",
            "+callbacks.stop._target_=lightning.pytorch.callbacks.EarlyStopping",
            "+callbacks.stop.monitor=val/loss",
            "+callbacks.stop.patience=0",
            "+callbacks.stop.divergence_threshold=0.0",
            *QUIET,
        ),
        run_dir=tmp_path / "run",
    )
    assert (
        read_record(tmp_path / "run")["last"]["epoch"] == 0
    )  # a user's own callback from config stopped it after epoch 0
    epochs = json.loads((tmp_path / "run" / "timing.json").read_text())
    assert [epoch["epoch"] for epoch in epochs] == [0] and epochs[0]["images"] == 448 and "test/mse" in metrics
    for epoch in epochs:  # the parts add up to the epoch (nothing paused)
        parts = epoch["train_seconds"] + epoch["validation_seconds"] + epoch["epoch_end_seconds"]
        assert parts == pytest.approx(epoch["seconds"])
    with pytest.raises(ConfigError, match=r"callbacks.timing is not a callback: each entry .* a _target_"):
        train(tiny_cfg("+callbacks.timing=1", *QUIET), run_dir=tmp_path / "bad")
    with pytest.raises(ConfigError, match=r"logger.mine is not a logger: .* logger=\[csv,mlflow\]"):
        train(tiny_cfg("+logger.mine=1", *QUIET), run_dir=tmp_path / "bad2")
