"""One rule for whether a checkpoint belongs to a run, the same for resume, ae-eval and load_run."""

import pytest
from omegaconf import OmegaConf

from autoencoders import load_run
from autoencoders.errors import CheckpointError, ConfigError
from autoencoders.rundir import checkpoints
from autoencoders.rundir.checkpoints import check_belongs, load_checkpoint
from autoencoders.rundir.record import read_record, write_json_atomic
from autoencoders.training.pipeline import resume_training, train

QUIET = ["logging.images_every_n_epochs=0", "logging.projector_points=0", "eval.probe=false", "eval.nll_samples=0"]
VAE_CFG = {
    "_target_": "autoencoders.models.vae.VAE",
    "net": "mlp",
    "latent_dim": 4,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "loss": "bce",
    "lr_schedule": "constant",
    "beta": 1.0,
    "kl_warmup_epochs": 0.0,
    "free_bits": 0.0,
}


def saved(**changes) -> dict:
    hparams = {key: value for key, value in VAE_CFG.items() if key != "_target_"}
    return {
        "model_class": "autoencoders.models.vae.VAE",
        "hyper_parameters": {**hparams, "input_shape": [1, 28, 28], **changes},
    }


def test_a_checkpoint_belongs_when_class_and_every_hyperparameter_agree():
    check_belongs(saved(), "x.ckpt", VAE_CFG)  # input_shape comes from the data, not the config
    for key, value in (("beta", 2.0), ("lr", 3e-3), ("kl_warmup_epochs", 1.0), ("latent_dim", 8)):
        with pytest.raises(CheckpointError, match=f"{key}={value!r} in the checkpoint"):
            check_belongs(saved(**{key: value}), "x.ckpt", VAE_CFG)
    with pytest.raises(CheckpointError, match="holds a autoencoders.models.vae.VAE model, not .*Autoencoder"):
        check_belongs(saved(), "x.ckpt", {**VAE_CFG, "_target_": "autoencoders.models.autoencoder.Autoencoder"})
    with pytest.raises(CheckpointError, match="extra=1 in the checkpoint, None in the config"):
        check_belongs(saved(extra=1), "x.ckpt", VAE_CFG)


def test_a_moved_class_still_matches_through_its_alias(monkeypatch):
    monkeypatch.setitem(checkpoints.CLASS_ALIASES, "autoencoders.old_place.VAE", "autoencoders.models.vae.VAE")
    old = {**saved(), "model_class": "autoencoders.old_place.VAE"}
    check_belongs(old, "x.ckpt", VAE_CFG)
    check_belongs(saved(), "x.ckpt", {**VAE_CFG, "_target_": "autoencoders.old_place.VAE"})


def test_resume_ae_eval_and_load_run_agree_on_a_changed_model_key(tiny_cfg, tmp_path):
    # Before the one rule, resume accepted model.beta=2 and ae-eval then refused the run.
    run = tmp_path / "run"
    train(tiny_cfg("model=vae", "model.latent_dim=4", *QUIET), run_dir=run)
    with pytest.raises(ConfigError, match="model.beta=2.0 cannot be changed on resume"):
        resume_training(run, ["model.beta=2.0", "trainer.max_epochs=2"])
    model = load_run(run)  # the run's own config and checkpoint agree
    assert model.hparams.beta == 1.0
    changed = OmegaConf.load(run / "config.yaml")
    changed.model.beta = 2.0
    with pytest.raises(CheckpointError, match="beta=1.0 in the checkpoint, 2.0 in the config"):
        check_belongs(
            load_checkpoint(run / "checkpoints" / "best.ckpt"), "best.ckpt", OmegaConf.to_container(changed.model)
        )
    # A config.yaml edited by hand: no checkpoint of the run belongs to it any more.
    OmegaConf.save(changed, run / "config.yaml")
    with pytest.raises(ConfigError, match=r"config.yaml was edited since the run started \(model.beta: 1.0 -> 2.0\)"):
        resume_training(run)  # the record's copy of the config says what changed
    record = read_record(run)
    del record["config"]  # a run recorded before the record kept its config: its checkpoints still refuse it
    write_json_atomic(run / "metrics.json", record)
    with pytest.raises(CheckpointError, match="No checkpoint of .* can be resumed from .*beta=1.0 in the checkpoint"):
        resume_training(run)
    with pytest.raises(CheckpointError, match="beta=1.0 in the checkpoint, 2.0 in the config"):
        load_run(run)


def test_checkpoints_carry_the_runs_config_hash_and_a_resume_refuses_another_configs(tiny_cfg, tmp_path):
    from autoencoders.rundir.resume import config_fingerprint

    constant = [*QUIET, "model.lr_schedule=constant"]
    run, other = tmp_path / "run", tmp_path / "other"
    train(tiny_cfg(*constant), run_dir=run)
    sha = read_record(run)["config"]["sha256"]
    assert sha == config_fingerprint(OmegaConf.load(run / "config.yaml"))["sha256"]  # config.yaml as saved
    assert {load_checkpoint(path)["config_sha256"] for path in (run / "checkpoints").glob("*.ckpt")} == {sha}
    # Another run of the same model (another seed): its checkpoint holds the model, but not this run.
    train(tiny_cfg(*constant, "seed=7"), run_dir=other)
    foreign = load_checkpoint(other / "checkpoints" / "last.ckpt")
    check_belongs(foreign, "last.ckpt", OmegaConf.to_container(OmegaConf.load(run / "config.yaml").model))
    with pytest.raises(CheckpointError, match=r"last.ckpt was saved under another config than this run's"):
        resume_training(run, checkpoint=other / "checkpoints" / "last.ckpt")
    # A run recorded before the record kept its config: config.yaml is compared with the checkpoints' hash.
    record = read_record(run)
    del record["config"]
    write_json_atomic(run / "metrics.json", record)
    original = (run / "config.yaml").read_text()
    assert "\nseed: 42\n" in original
    (run / "config.yaml").write_text(original.replace("seed: 42", "seed: 7"))
    with pytest.raises(CheckpointError, match="No checkpoint of .* can be resumed from .*saved under another config"):
        resume_training(run)
    (run / "config.yaml").write_text(original)
    resume_training(run, ["trainer.max_epochs=2"])
    assert read_record(run)["config"]["sha256"] == sha  # recorded once a resume of it completed
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["config_sha256"] == sha
