"""Fixtures of finished runs for the runs wing's tests."""

from pathlib import Path

import pytest

from autoencoders.runs.record import read_record
from autoencoders.runs.train import train
from tests.helpers import read_events


@pytest.fixture
def finished_run(tiny_cfg, tmp_path) -> Path:
    """A tiny vae run on the generated set with class 3 held out."""
    run = tmp_path / "run"
    metrics = train(tiny_cfg("model=vae", "model.latent_dim=4", "data.holdout_class=3", "eval.nll_samples=10"), run_dir=run)
    expected = {"test/probe_acc", "test/nll", "test/anomaly_auroc", "test/anomaly_f1_p99", "test/anomaly_recall_p95"}
    assert expected <= set(metrics) and read_record(run)["metrics"] == metrics
    assert read_record(run)["data"]["normal_classes"] == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    events = read_events(run)
    assert "anomaly/worst" in events.Tags()["images"] and "test/probe_acc" in events.Tags()["scalars"]
    return run
