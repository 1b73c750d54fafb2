"""Every config key once: its type, range and choices, and the checks built on them.

The declarations (kind, default, range, doc) are in config_keys.py. The start-up check (`check_config`, inside each job) and direct construction (a model or
DataModule built in a notebook or by `load_run`, which call `check_section`) apply the same
rules, so they cannot disagree. A bad value becomes one ConfigError naming the key, the value
and what is allowed. This module imports no torch, so `ae-train --help` stays fast.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import Any, ClassVar

from omegaconf import DictConfig, ListConfig, OmegaConf

from autoencoders import machine
from autoencoders.config_keys import DECLARED_SECTIONS, LOGGERS, NETS, RULES
from autoencoders.errors import ConfigError

# What a resume may change (`ae-train resume=<run> key=value`): how long it trains, how it runs and
# what it logs or evaluates. Anything else would make it another experiment under the old name.
RESUME_MAY_CHANGE = ("trainer.max_epochs", "torch_threads", "compile", "logging.", "eval.")


def check_value(key: str, value: Any) -> None:
    """Raise ConfigError when `value` breaks the rule of `key`, or when `key` is in a declared
    section (model, data, eval, logging) and has no declaration. Other keys (trainer.*) pass."""
    rule = RULES.get(key)
    if rule is None and key.split(".", 1)[0] in DECLARED_SECTIONS:
        section = key.split(".", 1)[0]
        known = ", ".join(sorted(name.split(".", 1)[1] for name in RULES if name.startswith(section + ".")))
        raise ConfigError(
            f"{key} is not a {section} setting of any model or dataset here; the {section} settings "
            f"are {known}. Check the spelling (a new setting is declared in autoencoders/config_keys.py)."
        )
    if rule is not None and not rule.accepts(value):
        raise ConfigError(f"{key}={_shown(value)} is not allowed: {key} must be {rule.allowed()}.")
    if rule is not None and rule.kind == "net":
        check_net(value, key)
    if key == "trainer.max_steps" and value == 0:
        raise ConfigError(
            "trainer.max_steps=0 is not allowed: the run would train no step and report an untrained "
            "model. Use -1 (no limit) or a number of steps >= 1."
        )


def _shown(value: Any) -> str:
    return repr(OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value)


@cache
def _shipped_net_files() -> dict[str, str]:
    from importlib.resources import files

    folder = files("autoencoders.conf").joinpath("model", "net")
    return {name: folder.joinpath(f"{name}.yaml").read_text() for name in NETS}


def shipped_nets() -> dict[str, dict[str, Any]]:
    """Each shipped network family's config (conf/model/net/<family>.yaml) as a new plain mapping."""
    return {name: OmegaConf.to_container(OmegaConf.create(text)) for name, text in _shipped_net_files().items()}


def check_net(value: Any, key: str = "model.net") -> None:
    """A model.net mapping: a shipped family's keys are declared (net.<family>.<key>) and checked,
    in `decoder` too; a class of the user's own takes keys of its own (its constructor says)."""
    if isinstance(value, str):
        return  # a family's name, at its defaults: the rule has checked it
    families = {config["_target_"]: name for name, config in shipped_nets().items()}
    family = families.get(value["_target_"])
    _check_net_keys(key, family, {name: item for name, item in value.items() if name not in ("_target_", "decoder")})
    decoder = value.get("decoder")
    if decoder is None:
        return
    if not isinstance(decoder, Mapping):
        raise ConfigError(
            f"{key}.decoder={_shown(decoder)} is not allowed: it must be a mapping of the keys the decoder "
            "takes apart from the encoder (and optionally its own _target_), or null."
        )
    if "_target_" not in decoder:  # the family's decoder with some sizes of its own
        _check_net_keys(f"{key}.decoder", family, {name: item for name, item in decoder.items()})


def _check_net_keys(key: str, family: str | None, values: Mapping[str, Any]) -> None:
    if family is None:
        return
    known = sorted(name.rsplit(".", 1)[1] for name in RULES if name.startswith(f"net.{family}."))
    settings = ", ".join(known) or "none (it is the network as its paper builds it)"
    for name, item in values.items():
        if name not in known:
            raise ConfigError(
                f"{key}.{name} is not a setting of the {family} network; its settings are {settings} (docs/config.md)."
            )
        rule = RULES[f"net.{family}.{name}"]
        if not rule.accepts(item):
            raise ConfigError(f"{key}.{name}={_shown(item)} is not allowed: it must be {rule.allowed()}.")


def check_section(section: str, values: Mapping[str, Any]) -> None:
    """Check every value of one config block, e.g. check_section("model", model.hparams)."""
    for name, value in values.items():
        check_value(f"{section}.{name}", value)


def check_known_keys(section: str, values: Mapping[str, Any], known: set[str] | frozenset[str]) -> None:
    """Raise ConfigError naming the first key of `values` that `known` lacks, listing `known`."""
    unknown = sorted(set(values) - set(known))
    if unknown:
        article = "an" if section[0] in "aeiou" else "a"
        raise ConfigError(
            f"{section}.{unknown[0]} is not {article} {section} setting; the settings are {', '.join(sorted(known))}."
        )


@dataclass(frozen=True)
class Block:
    """A config block with a fixed set of keys (its fields), each checked by its rule."""

    section: ClassVar[str]

    @classmethod
    def from_config(cls, node: Any) -> Block:
        """The block's settings from a config node or mapping (None: the defaults)."""
        values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})
        check_known_keys(cls.section, values, {field.name for field in fields(cls)})
        check_section(cls.section, values)
        return cls(**values)


def settings_block(section: str) -> type[Block]:
    """The frozen dataclass of one fixed block (eval, logging): a field per declared key of the
    section, with its declared default, so the defaults live in RULES only."""
    from dataclasses import field, make_dataclass

    names = [name for name in RULES if name.startswith(section + ".")]
    columns = [(name.split(".", 1)[1], Any, field(default=RULES[name].default)) for name in names]
    cls = make_dataclass(
        f"{section.title()}Settings",
        columns,
        bases=(Block,),
        frozen=True,
        namespace={
            "section": section,
            "__doc__": f"The `{section}:` block of conf/train.yaml "
            f"(docs/config.md); its keys and defaults are RULES['{section}.*'].",
        },
    )
    cls.__module__ = __name__
    return cls


EvalSettings = settings_block("eval")
LoggingSettings = settings_block("logging")


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first value of a composed run config that breaks its rule."""
    EvalSettings.from_config(cfg.get("eval"))
    LoggingSettings.from_config(cfg.get("logging"))
    check_loggers(cfg.get("logger"))
    for key in RULES:
        if key.startswith(("eval.", "logging.")):
            continue
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is not _ABSENT:  # a model without `beta` skips its rule
            check_value(key, value)
    check_threads(cfg.get("torch_threads"))


def check_threads(threads: Any) -> None:
    """torch_threads at most the cores of the machine that runs the job (the check runs there):
    more threads than cores only contend, and far more crash torch's thread pool later."""
    cores = machine.cores()
    if isinstance(threads, int) and threads > cores:
        raise ConfigError(
            f"torch_threads={threads} is more than the {cores} cores of this machine ({platform.node()}). "
            f"Use a number from 1 to {cores}, or null (automatic: the cores but one, at most 4)."
        )


_ABSENT = object()


def check_loggers(node: Any) -> None:
    """The keys of the loggers conf/logger/ ships are declared (`logger.mlflow.tracking_uri`); a
    misspelt one would otherwise fail inside Hydra's instantiate. Other entries are the user's own."""
    for name in LOGGERS:
        entry = (node or {}).get(name)
        if isinstance(entry, Mapping):
            known = {key.rsplit(".", 1)[1] for key in RULES if key.startswith(f"logger.{name}.")}
            check_known_keys(f"logger.{name}", {key: None for key in entry if not str(key).startswith("_")}, known)


@cache
def run_name_excluded_keys() -> frozenset[str]:
    """The override keys conf/train.yaml keeps out of run names (paths, thread counts: they do
    not change the experiment); ae-compare leaves them out of its differences too."""
    from importlib.resources import files

    train_yaml = OmegaConf.create(files("autoencoders.conf").joinpath("train.yaml").read_text())
    return frozenset(train_yaml.hydra.job.config.override_dirname.exclude_keys)
