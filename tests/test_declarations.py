"""Each config key is declared once (autoencoders/config_keys.py): every key of every YAML file
and every constructor argument has a declaration, the defaults agree, docs/config.md is the
declarations' table, and a key without a declaration never passes silently."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra.utils import get_class
from omegaconf import OmegaConf

from autoencoders.config_keys import DECLARED_SECTIONS, RULES, reference_table
from autoencoders.errors import ConfigError
from autoencoders.schema import EvalSettings, LoggingSettings, check_value

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
MODELS = sorted(path.stem for path in (CONF / "model").glob("*.yaml"))
DATA = sorted(path.stem for path in (CONF / "data").glob("*.yaml"))
# Given by the data, not by a config, and not a setting anyone types (rundir.checkpoints.FROM_DATA).
NOT_SETTINGS = {"model.input_shape", "data.seed"}


def undeclared(keys: list[str]) -> list[str]:
    """The keys of declared sections that have no declaration."""
    return [key for key in keys if key.split(".", 1)[0] in DECLARED_SECTIONS and key not in RULES]


def leaf_keys(node: Any, prefix: str) -> list[str]:
    return [
        f"{prefix}{name}" for name in node if name != "defaults" and not name.startswith("_")
    ]  # _target_, _recursive_


def constructor_arguments(cls: type) -> dict[str, inspect.Parameter]:
    """Every named argument of a class's constructor and of the constructors it passes **kwargs to."""
    found: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass.__module__.split(".")[0] != "autoencoders":
            continue
        for name, parameter in inspect.signature(klass.__init__).parameters.items():
            if name != "self" and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                found.setdefault(name, parameter)
    return found


@pytest.mark.parametrize("option", MODELS)
def test_every_model_key_and_constructor_argument_is_declared(compose_cfg, option):
    cfg = compose_cfg(f"model={option}")
    assert not undeclared(leaf_keys(cfg.model, "model.")), option
    arguments = constructor_arguments(get_class(cfg.model._target_))
    assert not undeclared([f"model.{name}" for name in arguments if f"model.{name}" not in NOT_SETTINGS])


@pytest.mark.parametrize("option", DATA)
def test_every_data_key_and_constructor_argument_is_declared(compose_cfg, option):
    cfg = compose_cfg(f"data={option}")
    assert not undeclared(leaf_keys(cfg.data, "data.")), option
    arguments = constructor_arguments(get_class(cfg.data._target_))
    assert not undeclared([f"data.{name}" for name in arguments if f"data.{name}" not in NOT_SETTINGS])


def test_top_level_eval_and_logging_keys_are_declared(compose_cfg):
    cfg = compose_cfg()
    # logger and callbacks: blocks of _target_ entries (conf/logger/, conf/callbacks/); the loggers'
    # own keys are checked below.
    top = [name for name in cfg if name not in ("model", "data", "trainer", "eval", "logging", "logger", "callbacks")]
    assert not [name for name in top if name not in RULES]
    assert not undeclared(leaf_keys(cfg.eval, "eval.") + leaf_keys(cfg.logging, "logging."))


LOGGER_OPTIONS = sorted(path.stem for path in (CONF / "logger").glob("*.yaml"))


@pytest.mark.parametrize("option", LOGGER_OPTIONS)
def test_every_logger_key_is_declared_and_its_defaults_agree(compose_cfg, option):
    # The YAML's value, the declared default and the factory's default agree, key by key.
    cfg = compose_cfg(f"logger={option}")
    for name, entry in cfg.logger.items():
        factory = _factory(entry._target_)
        defaults = {
            key: parameter.default
            for key, parameter in inspect.signature(factory).parameters.items()
            if key != "context"
        }
        assert set(defaults) == {key for key in entry if key != "_target_"}, option
        for key, value in entry.items():
            if key != "_target_":
                assert value == RULES[f"logger.{name}.{key}"].default == defaults[key], f"logger.{name}.{key}"


def _factory(path: str):
    import importlib

    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def test_a_misspelt_logger_key_is_refused_naming_the_known_ones(compose_cfg):
    from autoencoders.schema import check_config

    with pytest.raises(
        ConfigError,
        match=r"logger.mlflow.trackin_uri is not a logger.mlflow setting; the settings "
        r"are experiment_name, tracking_uri",
    ):
        check_config(compose_cfg("logger=mlflow", "+logger.mlflow.trackin_uri=http://x"))
    with pytest.raises(
        ConfigError, match=r"logger.wandb.mode=.onlin. is not allowed: .* one of offline, online, disabled"
    ):
        check_config(compose_cfg("logger=wandb", "logger.wandb.mode=onlin"))
    check_config(compose_cfg("logger=[csv,mlflow,wandb]", "+logger.mine._target_=my.Logger"))  # a user's own: free


def test_the_checks_find_a_planted_gap():
    # A YAML key and a constructor argument that nobody declared are both reported.
    assert undeclared(["model.latent_dim", "model.planted_weight", "trainer.gradient_clip_val"]) == [
        "model.planted_weight"
    ]

    class Planted:
        def __init__(self, *, planted_weight: float = 1.0, **shared: Any) -> None: ...

    Planted.__module__ = "autoencoders.models.planted"
    assert undeclared([f"model.{name}" for name in constructor_arguments(Planted)]) == ["model.planted_weight"]
    with pytest.raises(
        ConfigError, match=r"model.planted_weight is not a model setting.*declared in autoencoders/config_keys"
    ):
        check_value("model.planted_weight", -5.0)
    check_value("trainer.gradient_clip_val", 0.5)  # trainer stays a free mapping of Trainer arguments


def yaml_values(path: Path) -> dict[str, Any]:
    return {
        name: value
        for name, value in (yaml.safe_load(path.read_text()) or {}).items()
        if name != "defaults" and not name.startswith("_")
    }


def test_shared_model_defaults_agree_with_the_base_constructor():
    from autoencoders.machinery.base import AutoencoderBase

    base = constructor_arguments(AutoencoderBase)
    for name, value in yaml_values(CONF / "shared" / "model.yaml").items():
        assert value == RULES[f"model.{name}"].default == base[name].default, name


@pytest.mark.parametrize("option", MODELS)
def test_each_models_own_defaults_agree(compose_cfg, option):
    # A model's own keys: the constructor's default, the YAML's value and the declaration agree.
    # (A model's YAML may override a shared key for its recipe, e.g. the VAE's bce, mlp's lr.)
    # net: every model's network is the model/net group's choice (tested below, with the families).
    shared = set(yaml_values(CONF / "shared" / "model.yaml")) | {"net"}
    cfg = compose_cfg(f"model={option}")
    cls = get_class(cfg.model._target_)
    own = {
        name: parameter
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if name not in shared and parameter.default is not inspect.Parameter.empty
    }
    for name, parameter in own.items():
        assert parameter.default == RULES[f"model.{name}"].default, f"{cls.__name__}.{name}"
        if name in cfg.model:
            assert cfg.model[name] == parameter.default, f"conf/model/{option}.yaml: {name}"


def test_data_trainer_and_root_defaults_agree():
    from autoencoders.data import ImageDataModule

    arguments = constructor_arguments(ImageDataModule)
    for name, value in yaml_values(CONF / "data" / "fashionmnist.yaml").items():
        assert value == RULES[f"data.{name}"].default == arguments[name].default, name
    for name, value in yaml_values(CONF / "trainer" / "default.yaml").items():
        if f"trainer.{name}" in RULES:
            assert value == RULES[f"trainer.{name}"].default, name
    train = yaml.safe_load((CONF / "train.yaml").read_text())
    for name in ("seed", "torch_threads", "optimized_metric", "output_root"):
        assert train[name] == RULES[name].default, name
    for section, block in (("eval", EvalSettings), ("logging", LoggingSettings)):
        assert train[section] == {
            name.split(".")[1]: rule.default for name, rule in RULES.items() if name.startswith(section + ".")
        }
        assert OmegaConf.structured(block()) == train[section]  # the dataclasses take RULES' defaults


def test_every_declaration_has_a_doc_and_an_allowed_default():
    for name, rule in RULES.items():
        assert rule.doc and "\n" not in rule.doc, name
        assert rule.default is None or rule.accepts(rule.default), name


def test_docs_config_md_is_the_declarations_table():
    text = (ROOT / "docs" / "config.md").read_text()
    for section in ("", *DECLARED_SECTIONS, "net", "trainer", "logger"):
        assert reference_table(section) in text, (
            f"docs/config.md: the {section or 'top-level'} table is stale; "
            "regenerate it with `python scripts/config_reference.py > docs/config.md`"
        )


NET_FAMILIES = sorted(path.stem for path in (CONF / "model" / "net").glob("*.yaml"))


def test_the_network_families_are_the_declared_ones():
    from autoencoders.config_keys import NETS

    assert sorted(NETS) == NET_FAMILIES
    assert RULES["model.net"].default == "mlp"  # every model's defaults list names model/net: mlp, but conv's


@pytest.mark.parametrize("family", NET_FAMILIES)
def test_every_network_key_is_declared_and_its_defaults_agree(family):
    # conf/model/net/<family>.yaml, its declarations net.<family>.<key> and the encoder's and the
    # decoder's constructor defaults agree, key by key.
    from autoencoders.nets.families import import_class

    values = yaml_values(CONF / "model" / "net" / f"{family}.yaml")
    declared = {name.split(".")[2]: rule.default for name, rule in RULES.items() if name.startswith(f"net.{family}.")}
    assert values == declared, family
    encoder = import_class(yaml.safe_load((CONF / "model" / "net" / f"{family}.yaml").read_text())["_target_"], "t")
    for cls in (encoder, encoder.mirror):
        parameters = inspect.signature(cls.__init__).parameters
        for name, value in values.items():
            default = parameters[name].default
            assert (list(default) if isinstance(default, tuple) else default) == value, f"{cls.__name__}.{name}"


def test_every_model_trains_on_the_mlp_family_but_conv(compose_cfg):
    mlp = yaml_values(CONF / "model" / "net" / "mlp.yaml")
    for option in MODELS:
        net = compose_cfg(f"model={option}").model.net
        family = "conv" if option == "conv" else "mlp"
        assert net._target_ == yaml.safe_load((CONF / "model" / "net" / f"{family}.yaml").read_text())["_target_"]
        if family == "mlp":
            assert {key: net[key] for key in mlp} == mlp, option
