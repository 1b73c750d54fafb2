"""The experiments that reproduce papers (docs/reproductions.md): each composes to the paper's
protocol, and trains and evaluates a few steps end to end on data of the real format."""

from __future__ import annotations

import pytest

from autoencoders.rundir.per_image import read_per_image
from autoencoders.rundir.record import read_record
from autoencoders.training.pipeline import train
from tests.data.test_shapes import write_dsprites
from tests.training.test_sweep import hydra_cfg

QUIET = ["logging.projector_points=0", "logging.images_every_n_epochs=0", "torch_threads=1"]


def test_iwae_vs_vae_is_burda_et_als_one_layer_model_on_dynamically_binarised_mnist():
    cfg = hydra_cfg("experiment=iwae_vs_vae")
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.hydra.launcher.n_jobs == 2
    assert dict(cfg.hydra.sweeper.params) == {"iwae_vs_vae": "iwae_k50,iwae_k5,iwae_k1,vae", "seed": "0,1"}
    arms = {
        "vae": ("vae.VAE", None),
        "iwae_k1": ("iwae.IWAE", 1),
        "iwae_k5": ("iwae.IWAE", 5),
        "iwae_k50": ("iwae.IWAE", 50),
    }
    for arm, (target, samples) in arms.items():
        cfg = hydra_cfg("experiment=iwae_vs_vae", f"iwae_vs_vae={arm}")
        model = cfg.model
        assert model._target_ == f"autoencoders.models.{target}" and model.get("samples") == samples, arm
        # Two deterministic layers of 200 tanh units each way, 50 latents, Bernoulli likelihood.
        assert model.net._target_ == "autoencoders.nets.mlp.MLPEncoder" and list(model.net.hidden) == [200, 200]
        assert (model.net.activation, model.latent_dim, model.loss, model.beta) == ("tanh", 50, "bce", 1.0), arm
        assert (cfg.data.name, cfg.data.binarize, cfg.data.val_size) == ("mnist", "dynamic", 400), arm
        assert (cfg.eval.nll_samples, cfg.eval.nll_images, cfg.trainer.max_epochs) == (5000, 500, 60), arm


def test_iwae_vs_vae_trains_and_keeps_each_test_images_nll(compose_cfg, tmp_path):
    small = ["trainer=fast", "eval.nll_samples=20", "eval.nll_images=30", "eval.probe=false", *QUIET]
    cfg = compose_cfg("experiment=iwae_vs_vae", "iwae_vs_vae=iwae_k5", *small)
    metrics = train(cfg, run_dir=tmp_path / "run")
    record = read_record(tmp_path / "run")
    assert record["status"] == "completed" and record["data"]["binarize"] == "dynamic"
    assert record["data"]["train"] == 7600 and record["data"]["test"] == 2000  # the 10,000-digit subset
    values = read_per_image(tmp_path / "run", "test/nll")
    assert len(values) == 30 and sum(values.values()) / 30 == pytest.approx(metrics["test/nll"], rel=1e-6)
    assert {"test/active_units", "test/iw_bound", "test/kl"} <= set(metrics)


# disentanglement_lib's grids (config/unsupervised_study_v1/sweep.py), per model: its weight.
PAPER_GRIDS = {
    "beta_vae": ("vae.VAE", "beta", (1, 2, 4, 6, 8, 16)),
    "tcvae": ("tcvae.TCVAE", "beta", (1, 2, 4, 6, 8, 10)),
    "factorvae": ("factorvae.FactorVAE", "gamma", (10, 20, 30, 40, 50, 100)),
}


def test_disentangle_paper_is_locatello_et_als_protocol_on_dsprites():
    cfg = hydra_cfg("experiment=disentangle_paper")
    points = [f"{name}_{weight}" for name, (_, _, grid) in PAPER_GRIDS.items() for weight in grid]
    assert cfg.hydra.sweeper.params.disentangle_paper.replace(" ", "").split(",") == points
    assert cfg.hydra.sweeper.params.seed == "0,1,2" and cfg.hydra.mode.name == "MULTIRUN"
    for name, (target, key, grid) in PAPER_GRIDS.items():
        for weight in grid:
            cfg = hydra_cfg("experiment=disentangle_paper", f"disentangle_paper={name}_{weight}")
            model = cfg.model
            assert model._target_ == f"autoencoders.models.{target}" and model[key] == weight
            assert model.beta == 1.0 or key == "beta"  # the factorvae's KL is not reweighed
            assert model.net._target_ == "autoencoders.nets.burgess.BurgessEncoder"
            assert (model.latent_dim, model.loss, model.lr, model.lr_schedule) == (10, "bce", 1e-4, "constant")
            assert (cfg.data.name, cfg.data.batch_size, cfg.data.subsample) == ("dsprites", 64, None)
            assert cfg.trainer.max_steps == 300_000 and cfg.trainer.max_epochs * 11_000 > 300_000


def test_disentangle_paper_trains_on_a_file_in_dsprites_format(compose_cfg, tmp_path):
    # 216 sprites of 64 × 64 in the published layout; the factorvae, whose steps take two batches.
    write_dsprites(tmp_path / "dsprites.npz", side=64)
    data = [f"data.path={tmp_path / 'dsprites.npz'}", "data.test_size=40", "data.val_size=20", f"data.root={tmp_path}"]
    short = ["trainer.max_steps=2", "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false"]
    quiet = ["eval.sample_quality=false", "eval.factorvae_votes=100", "eval.nll_samples=5", "eval.nll_images=10"]
    cfg = compose_cfg("experiment=disentangle_paper", "disentangle_paper=factorvae_10", *data, *short, *quiet, *QUIET)
    metrics = train(cfg, run_dir=tmp_path / "run")
    record = read_record(tmp_path / "run")
    assert record["status"] == "completed" and record["tested"]["step"] == 2
    assert record["data"]["train"] == 156 and record["data"]["factors"] == {
        "shape": 3,
        "scale": 2,
        "orientation": 4,
        "position_x": 3,
        "position_y": 3,
    }
    assert record["model"]["network"] == "burgess" and record["model"]["target"].endswith(".FactorVAE")
    assert {"test/mig", "test/sap", "test/factorvae_score", "test/tc", "test/nll"} <= set(metrics)
