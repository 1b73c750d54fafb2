"""Shared fixtures: compose configs the way ae-train does, into a temporary output dir."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

# Tests run side by side with other work on 2 cores; one thread avoids stalls.
torch.set_num_threads(1)

FAST = [
    "trainer=fast",
    "torch_threads=1",
]


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """compose_cfg("model=conv", ...) -> the composed train config, output under tmp_path."""

    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_module("autoencoders.conf", version_base="1.3"):
            return compose("train", overrides=[f"output_root={tmp_path}", *overrides])

    return _compose


@pytest.fixture
def tiny_cfg(compose_cfg) -> Callable[..., DictConfig]:
    """A config that trains in a second: generated data, two batches per stage."""

    def _tiny(*overrides: str) -> DictConfig:
        return compose_cfg("data=synthetic", *FAST, *overrides)

    return _tiny


@pytest.fixture
def finished_run(tiny_cfg, tmp_path) -> Path:
    """A tiny vae run on the generated set with class 3 held out."""
    from autoencoders.rundir.record import read_record
    from autoencoders.training.pipeline import train
    from tests.helpers import read_events

    run = tmp_path / "run"
    metrics = train(
        tiny_cfg("model=vae", "model.latent_dim=4", "data.holdout_class=3", "eval.nll_samples=10"), run_dir=run
    )
    expected = {"test/probe_acc", "test/nll", "test/anomaly_auroc", "test/anomaly_f1_p99", "test/anomaly_recall_p95"}
    assert expected <= set(metrics) and read_record(run)["metrics"] == metrics
    assert read_record(run)["data"]["normal_classes"] == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    events = read_events(run)
    assert "anomaly/worst" in events.Tags()["images"] and "test/probe_acc" in events.Tags()["scalars"]
    return run


def pytest_collection_modifyitems(config, items):
    """Slow tests first: the workers (pytest-xdist) then end together instead of one waiting on
    the other's last long test. The order of the others is kept."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
