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

from omegaconf import DictConfig, OmegaConf

from autoencoders import machine
from autoencoders.config_keys import (  # noqa: F401  (re-exported: the names' old home)
    CODEBOOK_UPDATES,
    CORRUPTIONS,
    DATASETS,
    DECLARED_SECTIONS,
    LOGGERS,
    LR_SCHEDULES,
    NETS,
    RECONSTRUCTION_LOSSES,
    RULES,
    SPARSITY_PENALTIES,
    TC_ESTIMATORS,
    Rule,
    default_of,
)
from autoencoders.errors import ConfigError

# What a resume may change (`ae-train resume=<run> key=value`): how long it trains, how it runs and
# what it logs or evaluates. Anything else would make it another experiment under the old name.
RESUME_MAY_CHANGE = ("trainer.max_epochs", "torch_threads", "logging.", "eval.")


def check_value(key: str, value: Any) -> None:
    """Raise ConfigError when `value` breaks the rule of `key`, or when `key` is in a declared
    section (model, data, eval, logging) and has no declaration. Other keys (trainer.*) pass."""
    rule = RULES.get(key)
    if rule is None and key.split(".", 1)[0] in DECLARED_SECTIONS:
        section = key.split(".", 1)[0]
        known = ", ".join(sorted(name.split(".", 1)[1] for name in RULES if name.startswith(section + ".")))
        raise ConfigError(
            f"{key} is not a {section} setting of any model or dataset here; the {section} settings "
            f"are {known}. Check the spelling (a new setting is declared in autoencoders/schema.py)."
        )
    if rule is not None and not rule.accepts(value):
        raise ConfigError(f"{key}={value!r} is not allowed: {key} must be {rule.allowed()}.")
    if key == "trainer.max_steps" and value == 0:
        raise ConfigError(
            "trainer.max_steps=0 is not allowed: the run would train no step and report an untrained "
            "model. Use -1 (no limit) or a number of steps >= 1."
        )


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
