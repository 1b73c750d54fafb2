"""Config values checked before anything is built or trained.

Each rule names a key, the type it must have and the range allowed; a bad value becomes one
ConfigError naming the key, the value and what is allowed. Keys absent from a config (a
model without `beta`) are skipped, so one table serves every model. Models still check
their own arguments, for callers that build them without a config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from autoencoders.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    kind: type  # int, float, str or bool
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: the value must be strictly above `low`
    high_open: bool = False
    choices: tuple[str, ...] = ()
    nullable: bool = False

    def allowed(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        noun = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[self.kind]
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
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is str:
            return isinstance(value, str) and (not self.choices or value in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is int and not isinstance(value, int):  # 2.0 would reach torch as a float
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))


POSITIVE_INT = Rule(int, low=1)
FRACTION = Rule(float, low=0, high=1)

RULES: dict[str, Rule] = {
    "seed": Rule(int, low=0),
    "torch_threads": Rule(int, low=1, nullable=True),
    "model.net": Rule(str, choices=("mlp", "conv")),
    "model.latent_dim": POSITIVE_INT,
    "model.lr": Rule(float, low=0, low_open=True),
    "model.weight_decay": Rule(float, low=0),
    "model.loss": Rule(str, choices=("mse", "bce")),
    "model.lr_schedule": Rule(str, choices=("constant", "cosine")),
    "model.beta": Rule(float, low=0),
    "model.kl_warmup_epochs": Rule(float, low=0),
    "model.free_bits": Rule(float, low=0),
    "model.noise": Rule(str, choices=("gaussian", "mask")),
    "model.noise_std": FRACTION,
    "model.mask_prob": FRACTION,
    "model.sparsity": Rule(str, choices=("l1", "kl")),
    "model.sparsity_target": Rule(float, low=0, high=1, low_open=True, high_open=True),
    "model.sparsity_weight": Rule(float, low=0),
    "model.decoder_weight_decay": Rule(float, low=0),
    "model.contractive_weight": Rule(float, low=0),
    "model.jacobian_projections": Rule(int, low=0),
    "data.batch_size": POSITIVE_INT,
    "data.val_size": POSITIVE_INT,
    "data.split_seed": Rule(int, low=0),
    "data.download": Rule(bool),
    "trainer.max_epochs": POSITIVE_INT,
    "trainer.log_every_n_steps": POSITIVE_INT,
    "trainer.check_val_every_n_epoch": POSITIVE_INT,
}
# Lightning takes a fraction (<= 1.0) or a whole number of batches for these.
for _stage in ("train", "val", "test"):
    RULES[f"trainer.limit_{_stage}_batches"] = Rule(float, low=0)


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first value that breaks its rule. The `eval` block has its own
    checks (autoencoders.evaluate.EvalSettings), run here too so a bad value fails at start-up,
    not after training."""
    if "eval" in cfg:
        from autoencoders.evaluate import EvalSettings

        EvalSettings.from_config(cfg.eval).check()
    for key, rule in RULES.items():
        if OmegaConf.select(cfg, key, default="<absent>") == "<absent>":
            continue
        value = OmegaConf.select(cfg, key)
        if not rule.accepts(value):
            raise ConfigError(f"{key}={value!r} is not allowed: {key} must be {rule.allowed()}.")
