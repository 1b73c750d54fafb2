"""A finished run's record changes only when a new attempt finishes: a resume that fails or is
stopped, at any point, leaves the record of the last finished state as it was and is kept as an
entry of `resumes` with its status and error. Relative paths a run was given resume from anywhere."""

import json
import os
import signal

import numpy as np
import pytest

from autoencoders.data.datamodule import ImageDataModule
from autoencoders.errors import RunInterrupted
from autoencoders.rundir.record import read_record
from autoencoders.training.pipeline import resume_training, train
from autoencoders.training.sweep import plan_for_existing_dir

QUIET = ["logging.images_every_n_epochs=0", "logging.projector_points=0", "eval.probe=false"]
# Fields that describe the last finished state; a resume that does not complete changes none.
FINISHED_STATE = ("status", "metrics", "tested", "last", "data", "model", "error", "overrides")


def write_images(path) -> None:
    rng = np.random.default_rng(0)
    np.savez(path, images=rng.integers(0, 256, (120, 8, 8), dtype=np.uint8), labels=rng.integers(0, 3, 120))


@pytest.fixture
def npz_run(tiny_cfg, tmp_path, monkeypatch):
    """A completed run on data=npz, started in tmp/a with a relative data.path."""
    (tmp_path / "a").mkdir()
    write_images(tmp_path / "a" / "good.npz")
    monkeypatch.chdir(tmp_path / "a")
    run = tmp_path / "run"
    overrides = [
        "data=npz",
        "data.path=good.npz",
        "data.val_size=20",
        "data.test_size=20",
        "model.lr_schedule=constant",
        *QUIET,
    ]
    train(tiny_cfg(*overrides), run_dir=run, overrides=overrides)
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "b")  # a user continues the run from elsewhere
    return run


def finished_state(run) -> dict:
    record = read_record(run)
    return {name: record.get(name) for name in FINISHED_STATE}


def test_the_record_holds_the_resolved_path_and_the_verbatim_override(npz_run, tmp_path):
    record = read_record(npz_run)
    assert "data.path=good.npz" in record["overrides"] and "attempt" not in record
    assert record["resolved_paths"]["data.path"] == str(tmp_path / "a" / "good.npz")
    metrics = resume_training(npz_run, ["trainer.max_epochs=2"])  # from tmp/b: the data is found
    assert read_record(npz_run)["status"] == "completed" and read_record(npz_run)["metrics"] == metrics
    assert read_record(npz_run)["resumes"][0]["status"] == "completed"


def test_a_failed_resume_leaves_a_completed_run_as_it_was(npz_run, tmp_path):
    before = finished_state(npz_run)
    (tmp_path / "a" / "good.npz").write_text("not an npz file any more")
    with pytest.raises(Exception):  # noqa: B017  (which error the data raises is its own tests' business)
        resume_training(npz_run, ["trainer.max_epochs=2"])
    record = read_record(npz_run)
    assert finished_state(npz_run) == before and before["status"] == "completed" and before["metrics"]
    assert "attempt" not in record
    (entry,) = record["resumes"]
    assert entry["status"] == "failed" and entry["error"]["message"] and entry["finished"]
    # A sweep re-run of the same job skips it: the completed record stands.
    assert plan_for_existing_dir(npz_run, record["overrides"]) == "skip"


def test_a_stopped_resume_leaves_a_completed_run_as_it_was(npz_run, monkeypatch):
    before = finished_state(npz_run)
    original = ImageDataModule.setup

    def setup_then_sigterm(self, stage=None):
        original(self, stage)
        os.kill(os.getpid(), signal.SIGTERM)  # right after the data loads: a stop before training

    monkeypatch.setattr(ImageDataModule, "setup", setup_then_sigterm)
    with pytest.raises(RunInterrupted):
        resume_training(npz_run, ["trainer.max_epochs=2"])
    monkeypatch.undo()
    assert finished_state(npz_run) == before
    assert read_record(npz_run)["resumes"][0]["status"] == "interrupted"


def test_a_live_attempt_has_its_own_field(npz_run, monkeypatch):
    seen = {}
    original = ImageDataModule.setup

    def look(self, stage=None):
        seen.update(json.loads((npz_run / "metrics.json").read_text()))
        original(self, stage)

    monkeypatch.setattr(ImageDataModule, "setup", look)
    resume_training(npz_run, ["trainer.max_epochs=2"])
    assert seen["status"] == "completed"  # the last finished state, while the attempt runs
    assert seen["attempt"]["status"] == "running" and seen["attempt"]["pid"] == os.getpid()
    assert seen["attempt"]["resume"] == 0 and seen["resumes"][0]["status"] == "running"


def edit_config(run, key: str, value) -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(run / "config.yaml")
    OmegaConf.update(cfg, key, value)
    OmegaConf.save(cfg, run / "config.yaml")


@pytest.mark.parametrize("key, value", [("seed", 7), ("data.batch_size", 8), ("model.latent_dim", 3)])
def test_an_edit_of_config_yaml_that_an_override_could_not_make_is_refused(npz_run, key, value):
    from autoencoders.errors import ConfigError

    before = read_record(npz_run)
    assert before["config"]["sha256"] and before["config"]["resolved"]["seed"] == 42
    edit_config(npz_run, key, value)
    with pytest.raises(ConfigError, match=rf"config.yaml was edited since the run started \({key}: .* -> {value}\)"):
        resume_training(npz_run)
    assert read_record(npz_run) == before  # refused before anything was written


def test_an_allowed_edit_of_config_yaml_is_recorded_in_resumes(npz_run):
    edit_config(npz_run, "trainer.max_epochs", 2)
    resume_training(npz_run)
    record = read_record(npz_run)
    assert record["status"] == "completed" and record["last"]["epoch"] == 1  # it trained the second epoch
    assert record["resumes"][0]["config_changes"] == {"trainer.max_epochs": [1, 2]}


def test_extending_a_finished_cosine_run_through_config_yaml_is_refused_like_the_override(tiny_cfg, tmp_path):
    from autoencoders.errors import ConfigError

    run = tmp_path / "cosine"
    train(tiny_cfg(*QUIET), run_dir=run)  # model=mlp: the cosine schedule decays to 0 by the last step
    edit_config(run, "trainer.max_epochs", 3)
    with pytest.raises(ConfigError, match="already decayed to 0"):
        resume_training(run)


def test_an_eval_entry_survives_the_trainers_later_writes(npz_run, monkeypatch):
    from autoencoders.evaluation.finished_run import evaluate_run

    entry = json.loads(json.dumps(evaluate_run(npz_run, overrides=["eval.nll_samples=0"]), default=str))
    assert read_record(npz_run)["eval"] == entry
    original = ImageDataModule.setup

    def setup_then_sigterm(self, stage=None):
        original(self, stage)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(ImageDataModule, "setup", setup_then_sigterm)
    with pytest.raises(RunInterrupted):
        resume_training(npz_run, ["trainer.max_epochs=2"])  # a resume that stops
    monkeypatch.undo()
    assert read_record(npz_run)["eval"] == entry
    resume_training(npz_run, ["trainer.max_epochs=2"])  # one that completes: new results, the evaluation kept
    record = read_record(npz_run)
    assert record["eval"] == entry and record["last"]["epoch"] == 1 and record["resumes"][-1]["status"] == "completed"
