"""Every config key once: its type, range and choices, and the checks built on them.

The start-up check (`check_config`, inside each job) and direct construction (a model or
DataModule built in a notebook or by `load_run`, which call `check_section`) apply the same
rules, so they cannot disagree. A bad value becomes one ConfigError naming the key, the value
and what is allowed. The names the code maps to implementations (nets, losses, schedules,
corruptions, sparsity penalties) live here as plain tuples; tests hold them equal to the code's
own tables. This module imports no torch, so `ae-train --help` stays fast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import Any, ClassVar

from omegaconf import DictConfig, OmegaConf

from autoencoders.errors import ConfigError

# Names the code maps to implementations (models/nets.py, models/losses.py, models/base.py,
# models/dae.py, models/sparse.py, models/quantizer.py).
NETS = ("mlp", "conv")
RECONSTRUCTION_LOSSES = ("mse", "bce")
LR_SCHEDULES = ("constant", "cosine")
CORRUPTIONS = ("gaussian", "mask")
SPARSITY_PENALTIES = ("l1", "kl")
CODEBOOK_UPDATES = ("ema", "loss")
TC_ESTIMATORS = ("mws", "mss")


@dataclass(frozen=True)
class Rule:
    """What one key accepts. kind: "int", "float", "str", "bool", or "batches" (Lightning's
    limit_*_batches: a fraction <= 1.0 or a whole number of batches)."""

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: the value must be strictly above `low`
    high_open: bool = False
    choices: tuple[Any, ...] = ()
    nullable: bool = False

    def allowed(self) -> str:
        if self.choices:
            return "one of " + ", ".join(_plain(choice) for choice in self.choices)
        if self.kind == "batches":
            low, fraction = ("1", "(0, 1]") if self.low_open else ("0", "[0, 1]")
            return f"a fraction in {fraction} (0.25 = a quarter of the batches) or a whole number of batches >= {low}"
        noun = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}[self.kind]
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        text = noun + (" " + " and ".join(bounds) if bounds else "")
        return text + (" (or null)" if self.nullable else "")

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if self.choices:  # by type too: 1 == True in Python, but model.probe=1 is not `true`
            return any(type(value) is type(choice) and value == choice for choice in self.choices)
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "str":
            return isinstance(value, str)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.kind == "batches":  # Lightning reads an int as batches and a float as a fraction
            return (value > 0 if self.low_open else value >= 0) and (isinstance(value, int) or value <= 1)
        if self.kind == "int" and not isinstance(value, int):  # 2.0 would reach torch as a float
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))


def _plain(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


POSITIVE_INT = Rule("int", low=1)
NON_NEGATIVE_INT = Rule("int", low=0)
NON_NEGATIVE = Rule("float", low=0)
FRACTION = Rule("float", low=0, high=1)
RULES: dict[str, Rule] = {
    "seed": NON_NEGATIVE_INT,
    "torch_threads": Rule("int", low=1, nullable=True),
    # model: the keys every model shares, then each model's own
    "model.net": Rule("str", choices=NETS),
    "model.latent_dim": POSITIVE_INT,
    "model.lr": Rule("float", low=0, low_open=True),
    "model.weight_decay": NON_NEGATIVE,
    "model.loss": Rule("str", choices=RECONSTRUCTION_LOSSES),
    "model.lr_schedule": Rule("str", choices=LR_SCHEDULES),
    "model.beta": NON_NEGATIVE,
    "model.kl_warmup_epochs": NON_NEGATIVE,
    "model.free_bits": NON_NEGATIVE,
    "model.noise": Rule("str", choices=CORRUPTIONS),
    "model.noise_std": FRACTION,
    "model.mask_prob": FRACTION,
    "model.sparsity": Rule("str", choices=SPARSITY_PENALTIES),
    "model.sparsity_target": Rule("float", low=0, high=1, low_open=True, high_open=True),
    "model.sparsity_weight": NON_NEGATIVE,
    "model.decoder_weight_decay": NON_NEGATIVE,
    "model.contractive_weight": NON_NEGATIVE,
    "model.jacobian_projections": NON_NEGATIVE_INT,
    "model.embedding_dim": POSITIVE_INT,  # must also divide model.latent_dim (checked by the VQ-VAE)
    "model.codebook_size": POSITIVE_INT,
    "model.commitment": NON_NEGATIVE,
    "model.codebook_update": Rule("str", choices=CODEBOOK_UPDATES),
    "model.tc_estimator": Rule("str", choices=TC_ESTIMATORS),
    "model.ema_decay": Rule("float", low=0, high=1, high_open=True),
    "model.restart_dead_codes": Rule("bool"),
    # set by the code from the data, never by a config (rundir.checkpoints.FROM_DATA)
    "model.num_classes": POSITIVE_INT,
    "model.dataset_size": POSITIVE_INT,
    # data
    "data.batch_size": POSITIVE_INT,
    "data.val_size": POSITIVE_INT,
    "data.split_seed": NON_NEGATIVE_INT,
    "data.download": Rule("bool"),
    "data.path": Rule("str", nullable=True),  # data=npz: the .npz file
    "data.test_size": POSITIVE_INT,  # data=npz without test_images: images held out for testing
    # trainer: a free mapping of lightning.Trainer arguments; these are the ones we know
    "trainer.max_epochs": POSITIVE_INT,
    "trainer.log_every_n_steps": POSITIVE_INT,
    "trainer.check_val_every_n_epoch": POSITIVE_INT,
    "trainer.limit_train_batches": Rule("batches", low_open=True),  # 0 would train no step
    "trainer.max_steps": Rule("int", low=-1),  # -1: no limit; 0 is refused below (it trains no step)
    "trainer.limit_val_batches": Rule("batches"),
    "trainer.limit_test_batches": Rule("batches"),
    # logging: what goes to TensorBoard (README, "In TensorBoard")
    "logging.images_every_n_epochs": NON_NEGATIVE_INT,
    "logging.n_images": POSITIVE_INT,
    "logging.latents_every_n_epochs": NON_NEGATIVE_INT,
    "logging.projector_points": NON_NEGATIVE_INT,
    # eval: evaluation after testing and in ae-eval (README, "Evaluation")
    "eval.probe": Rule("bool"),
    "eval.probe_train_size": Rule("int", low=1, nullable=True),
    "eval.anomaly": Rule("str", choices=("auto", True, False)),
    "eval.anomaly_images": NON_NEGATIVE_INT,
    "eval.nll_samples": NON_NEGATIVE_INT,
    "eval.nll_images": Rule("int", low=1, nullable=True),
    "eval.class_consistency": Rule("bool"),
}


# What a resume may change (`ae-train resume=<run> key=value`): how long it trains, how it runs and
# what it logs or evaluates. Anything else would make it another experiment under the old name.
RESUME_MAY_CHANGE = ("trainer.max_epochs", "torch_threads", "logging.", "eval.")


def check_value(key: str, value: Any) -> None:
    """Raise ConfigError when `value` breaks the rule of `key` (keys without a rule pass)."""
    rule = RULES.get(key)
    if rule is not None and not rule.accepts(value):
        raise ConfigError(f"{key}={value!r} is not allowed: {key} must be {rule.allowed()}.")
    if key == "trainer.max_steps" and value == 0:
        raise ConfigError("trainer.max_steps=0 is not allowed: the run would train no step and report an untrained "
                          "model. Use -1 (no limit) or a number of steps >= 1.")  # fmt: skip


def check_section(section: str, values: Mapping[str, Any]) -> None:
    """Check every value of one config block, e.g. check_section("model", model.hparams)."""
    for name, value in values.items():
        check_value(f"{section}.{name}", value)


def check_known_keys(section: str, values: Mapping[str, Any], known: set[str] | frozenset[str]) -> None:
    """Raise ConfigError naming the first key of `values` that `known` lacks, listing `known`."""
    unknown = sorted(set(values) - set(known))
    if unknown:
        article = "an" if section[0] in "aeiou" else "a"
        raise ConfigError(f"{section}.{unknown[0]} is not {article} {section} setting; the settings are "
                          f"{', '.join(sorted(known))}.")  # fmt: skip


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


@dataclass(frozen=True)
class EvalSettings(Block):
    """The `eval:` block of conf/train.yaml (README, "Evaluation"); its rules are RULES["eval.*"]."""

    section: ClassVar[str] = "eval"

    probe: bool = True  # logistic regression on frozen codes -> test/probe_acc
    probe_train_size: int | None = 10_000  # training codes the probe is fitted on; None = all
    anomaly: bool | str = "auto"  # auto: when data.normal_classes or data.holdout_class is set
    anomaly_images: int = 16  # worst-reconstructed test images in the anomaly/worst grid; 0 = none
    nll_samples: int = 100  # VAE: importance samples per image for test/nll; 0 = off
    nll_images: int | None = 1000  # test images (a fixed seeded subset) for test/nll; None = all
    class_consistency: bool = True  # cvae: a pixel classifier checks the class of samples -> test/class_consistency


@dataclass(frozen=True)
class LoggingSettings(Block):
    """The `logging:` block of conf/train.yaml (README, "In TensorBoard"); its rules are RULES["logging.*"]."""

    section: ClassVar[str] = "logging"

    images_every_n_epochs: int = 1  # reconstructions (and prior samples); 0 = none
    n_images: int = 16
    latents_every_n_epochs: int = 0  # 0 = only after testing, with the tested checkpoint
    projector_points: int = 2000  # test codes in the projector and scatter plot; 0 = no latent views


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first value of a composed run config that breaks its rule."""
    EvalSettings.from_config(cfg.get("eval"))
    LoggingSettings.from_config(cfg.get("logging"))
    for key in RULES:
        if key.startswith(("eval.", "logging.")):
            continue
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is not _ABSENT:  # a model without `beta` skips its rule
            check_value(key, value)


_ABSENT = object()


@cache
def run_name_excluded_keys() -> frozenset[str]:
    """The override keys conf/train.yaml keeps out of run names (paths, thread counts: they do
    not change the experiment); ae-compare leaves them out of its differences too."""
    from importlib.resources import files

    train_yaml = OmegaConf.create(files("autoencoders.conf").joinpath("train.yaml").read_text())
    return frozenset(train_yaml.hydra.job.config.override_dirname.exclude_keys)
