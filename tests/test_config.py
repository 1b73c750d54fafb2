"""Config composition: every group option composes, sweepable keys exist without `+`."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from autoencoders.rundir.loading import data_arguments

CONF = Path(__file__).resolve().parent.parent / "conf"


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


def test_defaults_are_the_documented_ones(compose_cfg):
    cfg = compose_cfg()
    assert cfg.model.net == {"_target_": "autoencoders.nets.mlp.MLPEncoder", "hidden": [256, 64], "activation": "relu"}
    assert cfg.model.latent_dim == 32 and cfg.model.loss == "mse"
    # The speed issue's quality recipe replaced Diaz 2026's constant lr 1e-3.
    assert cfg.model.lr == 8e-3 and cfg.model.lr_schedule == "cosine"
    assert compose_cfg("model=vae").model.lr == 1e-3
    assert cfg.data.name == "fashionmnist" and cfg.data.batch_size == 256 and cfg.data.val_size == 5000
    assert cfg.trainer.max_epochs == 20 and cfg.seed == 42


@pytest.mark.parametrize("group", ["model", "model/net", "data", "trainer"])
def test_every_group_option_composes(compose_cfg, group):
    assert options(group), f"conf/{group} is empty"
    for option in options(group):
        cfg = compose_cfg(f"{group}={option}")
        assert OmegaConf.select(cfg, group.replace("/", ".")) is not None


# What a DataModule gives the models that need it (rundir.loading.data_arguments): FashionMNIST's sizes.
DATA = SimpleNamespace(input_shape=(1, 28, 28), num_classes=10, dataset_size=55_000)


@pytest.mark.parametrize("option", options("model"))
def test_every_model_has_a_net_and_instantiates_with_both_nets(compose_cfg, option):
    for net in ("mlp", "conv"):
        cfg = compose_cfg(f"model={option}", f"model.net={net}")
        sizes = data_arguments(get_class(cfg.model._target_), DATA)
        model = instantiate(cfg.model, **sizes, _convert_="all")
        assert model.hparams.net == net and model.hparams.input_shape == [1, 28, 28]


def test_sweepable_keys_exist_without_plus(compose_cfg):
    cfg = compose_cfg(
        "model.latent_dim=8",
        "model.lr=0.01",
        "model.net=conv",
        "data.batch_size=64",
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=5",
        "trainer.accelerator=cpu",
        "seed=7",
        "torch_threads=1",
    )
    assert (cfg.model.latent_dim, cfg.model.net, cfg.data.batch_size, cfg.trainer.max_epochs) == (8, "conv", 64, 3)
    assert (cfg.trainer.limit_train_batches, cfg.trainer.accelerator, cfg.seed, cfg.torch_threads) == (5, "cpu", 7, 1)


def test_any_trainer_argument_passes_with_double_plus(compose_cfg):
    cfg = compose_cfg("++trainer.gradient_clip_val=0.5")
    assert cfg.trainer.gradient_clip_val == 0.5


def plain(value) -> bool:
    """A value weights-only checkpoints can hold: numbers, strings, None, and lists and str-keyed dicts of them."""
    if isinstance(value, dict):
        return all(isinstance(key, str) and plain(item) for key, item in value.items())
    if isinstance(value, list):
        return all(plain(item) for item in value)
    return isinstance(value, (int, float, str, bool, type(None)))


def test_checkpoint_hyperparameters_are_plain_values(compose_cfg):
    # Plain hydra instantiate works on a model block (model.net is built by the model: _recursive_: false).
    model = instantiate(compose_cfg("model=conv").model, input_shape=[1, 28, 28], _convert_="all")
    for value in model.hparams.values():
        assert plain(value), type(value)
    assert model.hparams.net == {**compose_cfg("model=conv").model.net}  # the network as a plain mapping
    assert not plain({"net": object()}) and not plain([{1: 2}])  # the check can fail
