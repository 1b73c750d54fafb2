"""Run directories made before the package was split into wings still load, evaluate and resume.

tests/fixtures/run_before_wings is a real run of that layout, written by ae-train at commit
a32ba71 (`ae-train data=synthetic trainer=fast model=vae model.net=conv model.latent_dim=2
torch_threads=1 logging.images_every_n_epochs=0 logging.projector_points=0 eval.probe=false
eval.nll_samples=0`): its config.yaml names `autoencoders.data.ImageDataModule`, and its
checkpoints record their class as that code wrote it.
"""

import shutil
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from autoencoders import load_run
from autoencoders.cli.evaluate import main as ae_eval_main
from autoencoders.models.vae import VAE
from autoencoders.rundir.checkpoints import load_checkpoint
from autoencoders.rundir.record import read_record
from autoencoders.training.pipeline import resume_training

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "run_before_wings"
BIN = Path(sys.executable).parent


@pytest.fixture
def old_run(tmp_path) -> Path:
    run = tmp_path / "old-run"
    shutil.copytree(FIXTURE, run)
    return run


def test_the_fixture_is_of_the_old_layout():
    assert OmegaConf.load(FIXTURE / "config.yaml").data._target_ == "autoencoders.data.ImageDataModule"
    assert load_checkpoint(FIXTURE / "checkpoints" / "best.ckpt")["model_class"] == "autoencoders.models.vae.VAE"
    assert read_record(FIXTURE)["provenance"]["git_commit"].startswith("a32ba71")
    assert "schema_version" not in read_record(FIXTURE)  # a record of layout 1, from before the field


def test_load_run_gives_the_old_runs_model(old_run):
    model = load_run(old_run)
    assert isinstance(model, VAE) and model.hparams.net == "conv" and model.hparams.latent_dim == 2
    saved = load_checkpoint(old_run / "checkpoints" / "best.ckpt")["state_dict"]
    assert all(torch.equal(value, model.state_dict()[key]) for key, value in saved.items())


def test_ae_eval_reproduces_the_old_runs_test_mse(old_run):
    ae_eval_main([str(old_run)])
    record = read_record(old_run)
    assert record["eval"]["metrics"]["test/mse"] == pytest.approx(record["metrics"]["test/mse"], rel=1e-6)


def test_an_old_run_resumes(old_run, caplog):
    metrics = resume_training(old_run, ["trainer.max_epochs=2"])
    assert "predates the record of its whole config" in caplog.text  # its model settings are checked, and said so
    record = read_record(old_run)
    assert record["config"]["sha256"] == load_checkpoint(old_run / "checkpoints" / "last.ckpt")["config_sha256"]
    assert record["status"] == "completed" and record["metrics"]["test/mse"] == metrics["test/mse"]
    assert record["schema_version"] == 2  # rewritten by today's code, in today's layout (a superset of 1)
    assert load_checkpoint(old_run / "checkpoints" / "last.ckpt")["epoch"] == 1  # epoch 0 was the old run's


def test_an_old_vae_run_from_before_model_prior_loads_with_the_normal_prior(old_run):
    assert "prior" not in OmegaConf.load(old_run / "config.yaml").model
    assert "prior" not in load_checkpoint(old_run / "checkpoints" / "best.ckpt")["hyper_parameters"]
    assert load_run(old_run).prior.name == "normal"
