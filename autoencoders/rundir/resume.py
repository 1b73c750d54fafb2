"""What a resume may do, decided before any file of the run is touched.

`ae-train resume=<run> [key=value ...]` continues the same experiment: the run's config.yaml and
its record's `overrides` stay its identity; the resume may change only what schema.RESUME_MAY_CHANGE
lists (how long it trains, threads, logging, evaluation), written in Hydra's override grammar.
Each resume's overrides are kept in metrics.json's `resumes`, and a later resume replays those
of the resumes that completed, so an extended run stays extended (`inherited_overrides`). A
resume that failed, diverged or was killed passes nothing on: its settings may be why it failed.
A resume that was stopped (interrupted) passes its settings on only to the resume that continues
its attempt folder, which finishes the same attempt. Everything is checked first (the
overrides, the values, a checkpoint that loads and belongs to the run, the learning-rate
schedule), so a refused resume changes nothing and a failed one leaves the finished run as it was.
The run's classes are checked before any is imported (rundir/trust.py): `trust=[MODULE,...]`
allows more for this resume only; it is neither an override nor recorded, so no later resume
inherits it from the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from autoencoders.errors import CheckpointError, ConfigError
from autoencoders.rundir.attempt import ATTEMPT_DIR, in_attempt
from autoencoders.rundir.checkpoints import check_belongs, load_checkpoint, usable_checkpoint
from autoencoders.rundir.record import METRICS_FILE, read_record
from autoencoders.rundir.trust import TRUST_KEY, check_target, check_targets
from autoencoders.schema import RESUME_MAY_CHANGE, check_config

log = logging.getLogger("autoencoders")


@dataclass
class ResumePlan:
    """A checked resume: the config to continue with and the checkpoint to continue from."""

    run_dir: Path
    cfg: DictConfig  # config.yaml with the earlier resumes' overrides and this one's applied
    overrides: list[str]  # this resume's own overrides, as typed (without its trust=[...])
    checkpoint: Path | None  # None: the run stopped before its first checkpoint; training starts over
    skipped: list[str] = field(default_factory=list)  # newer checkpoints passed over, and why
    config_changes: dict[str, list[Any]] = field(default_factory=dict)  # config.yaml edits: key -> [was, now]

    @property
    def checkpoint_name(self) -> str | None:
        if self.checkpoint is None:
            return None
        try:
            return str(self.checkpoint.resolve().relative_to(self.run_dir.resolve()))
        except ValueError:
            return str(self.checkpoint)


def plan_resume(
    run_dir: Path, overrides: list[str], checkpoint: Path | None = None, trust: Iterable[str] = ()
) -> ResumePlan:
    """Check a resume of `run_dir` (from `checkpoint`, or its newest usable one) without writing.
    `trust`, with the overrides' trust=[...]: modules whose classes the run may name beyond the
    shipped configs' (rundir/trust.py)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / METRICS_FILE).is_file():
        raise CheckpointError(
            f"{run_dir} is not a run directory (it needs config.yaml and {METRICS_FILE}); "
            "pass the directory of a run, or one of its checkpoints/*.ckpt files."
        )
    allowed, overrides = split_trust(overrides)
    trust = [*trust, *allowed]
    cfg = effective_config(run_dir, trust)
    recorded = recorded_config(run_dir)
    if recorded is None:
        log.warning(
            "%s predates the record of its whole config: edits of its config.yaml are checked against the "
            "config hash its checkpoints carry, and for checkpoints older than that hash, for the model's "
            "settings only.",
            run_dir,
        )
        before, changes = cfg.copy(), {}
    else:
        before, changes = recorded, check_config_edits(recorded, cfg, run_dir)
    apply_overrides(cfg, overrides)
    check_config(cfg)
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    identity = run_config_hash(run_dir)
    if checkpoint is not None:
        saved = load_checkpoint(checkpoint)
        if saved.get("model_class") is not None:  # (usable_checkpoint's has the checked config's class)
            check_target("model", saved["model_class"], checkpoint, trust, key="its model_class")
        check_belongs(saved, checkpoint, model_cfg, identity)
        skipped: list[str] = []
    else:
        checkpoint, saved, skipped = usable_checkpoint(run_dir, model_cfg, identity)
        if checkpoint is None and skipped:
            raise CheckpointError(
                f"No checkpoint of {run_dir} can be resumed from ({'; '.join(skipped)}). Start a new run."
            )
    if checkpoint is not None and in_attempt(checkpoint, run_dir):  # it finishes a stopped resume's attempt
        cfg = effective_config(run_dir, trust, continues=True)
        before = recorded_config(run_dir, continues=True) if recorded is not None else cfg.copy()
        apply_overrides(cfg, overrides)
        check_config(cfg)
    if checkpoint is not None:
        _check_schedule_can_continue(before, cfg, saved, checkpoint)
    return ResumePlan(run_dir, cfg, list(overrides), checkpoint, skipped, changes)


def effective_config(run_dir: Path, trust: Iterable[str] = (), continues: bool = False) -> DictConfig:
    """The run's config.yaml with the overrides later resumes inherit applied, in order
    (`inherited_overrides`; `continues`: for a resume that continues the attempt folder); every
    `_target_` in it one the user may import (rundir.trust.check_targets; UntrustedCode otherwise)."""
    path = Path(run_dir) / "config.yaml"
    cfg = OmegaConf.load(path)
    check_targets(cfg, path, trust)
    inherited = inherited_overrides(read_record(run_dir).get("resumes", []), continues)
    apply_overrides(cfg, inherited)
    if inherited:  # from metrics.json, they may set eval.* and logging.* blocks
        check_targets(cfg, Path(run_dir) / METRICS_FILE, trust)
    return cfg


def attempt_config(run_dir: Path, trust: Iterable[str] = ()) -> DictConfig:
    """The config of the resume running now (the record's `attempt`): what a worker process of
    a DDP resume trains with, the same as its main process's plan. For a first run, config.yaml.
    Its classes are checked as effective_config's are."""
    record, path = read_record(run_dir), Path(run_dir) / "config.yaml"
    index = (record.get("attempt") or {}).get("resume")
    cfg = OmegaConf.load(path)
    check_targets(cfg, path, trust)
    if index is None:
        return cfg
    entries = record.get("resumes", [])
    apply_overrides(cfg, inherited_overrides(entries[:index], _continues(entries[index])))
    apply_overrides(cfg, [str(item) for item in entries[index].get("overrides") or []])
    check_targets(cfg, Path(run_dir) / METRICS_FILE, trust)
    return cfg


def inherited_overrides(resumes: list[Any], continues: bool = False) -> list[str]:
    """The overrides of earlier resumes (metrics.json's `resumes`) that a new resume starts from:
    those of every resume that completed, each with those of the stopped resumes whose attempt
    it finished; and when the new resume continues the attempt folder (`continues`), those of
    the stopped resumes that folder is the attempt of. A failed, diverged, killed or running
    resume passes nothing on."""
    kept: list[str] = []
    stopped: list[str] = []  # the interrupted resumes of the attempt folder as it is after `entry`
    for entry in resumes:
        if not isinstance(entry, dict):
            continue
        if not _continues(entry):  # it cleared the attempt folder and started its own
            stopped = []
        overrides = [str(item) for item in entry.get("overrides") or []]
        status = entry.get("status", "completed")  # records before statuses: every resume completed
        if status == "completed":
            kept += stopped + overrides
            stopped = []
        elif status == "interrupted":
            stopped += overrides
    return kept + (stopped if continues else [])


def _continues(entry: dict[str, Any]) -> bool:
    """Whether a `resumes` entry started from a checkpoint in the attempt folder (rundir/attempt.py)."""
    return str(entry.get("checkpoint") or "").startswith(f"{ATTEMPT_DIR}/")


def split_trust(overrides: list[str]) -> tuple[list[str], list[str]]:
    """A resume's `trust=[MODULE,...]` (this command's allowance, rundir/trust.py) and its other
    overrides, as typed."""
    trust, rest = [], []
    for text, override in zip(overrides, _parse(overrides)):
        if override.key_or_group != TRUST_KEY:
            rest.append(text)
            continue
        value = override.value()
        modules = value if isinstance(value, list) else [value]
        if override.is_delete() or not modules or not all(isinstance(name, str) and name for name in modules):
            raise ConfigError(
                f"{text} is not an allowance: {TRUST_KEY}= takes a module or a list of them, e.g. "
                f"{TRUST_KEY}=mymodule or {TRUST_KEY}=[mymodule,other.module]."
            )
        trust.extend(modules)
    return trust, rest


def config_fingerprint(cfg: DictConfig) -> dict[str, Any]:
    """What the record keeps of the config a run started with: the resolved values and their hash."""
    values = OmegaConf.to_container(cfg, resolve=True)
    text = json.dumps(values, sort_keys=True, default=str)
    return {"sha256": hashlib.sha256(text.encode()).hexdigest(), "resolved": values}


def run_config_hash(run_dir: Path) -> str:
    """The hash of the config that is the run's identity, which its checkpoints carry: the record's
    (the config it started with), or for a run recorded before the record kept it, its config.yaml's
    as it is now (a resume of it by this version records that, rundir/record.py)."""
    saved = read_record(run_dir).get("config")
    if isinstance(saved, dict) and saved.get("sha256"):
        return str(saved["sha256"])
    return config_fingerprint(OmegaConf.load(Path(run_dir) / "config.yaml"))["sha256"]


def recorded_config(run_dir: Path, continues: bool = False) -> DictConfig | None:
    """The config the run started with (from its record), with the overrides later resumes
    inherit applied (`effective_config`); None for runs recorded before the record kept it."""
    record = read_record(run_dir)
    saved = record.get("config")
    if not isinstance(saved, dict) or "resolved" not in saved:
        return None
    cfg = OmegaConf.create(saved["resolved"])
    apply_overrides(cfg, inherited_overrides(record.get("resumes", []), continues))
    return cfg


def check_config_edits(recorded: DictConfig, current: DictConfig, run_dir: Path) -> dict[str, list[Any]]:
    """Keys of config.yaml edited since the run recorded it, under the rules of a resume's
    overrides: a key a resume may not change is refused; the others are returned (was, now)."""
    was, now = (
        _flat(OmegaConf.to_container(recorded, resolve=True)),
        _flat(OmegaConf.to_container(current, resolve=True)),
    )
    changes = {key: [was.get(key), now.get(key)] for key in sorted(set(was) | set(now)) if was.get(key) != now.get(key)}
    refused = [key for key in changes if not key.startswith(RESUME_MAY_CHANGE)]
    if refused:
        edits = "; ".join(f"{key}: {changes[key][0]!r} -> {changes[key][1]!r}" for key in refused)
        raise ConfigError(
            f"{run_dir / 'config.yaml'} was edited since the run started ({edits}). A resume continues "
            "the same experiment, so its config may change only as a resume's overrides may; undo the "
            "edit (and pass e.g. trainer.max_epochs=N as an override), or start a new run."
        )
    return changes


def _flat(values: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(values, dict):
        return {prefix.rstrip("."): values}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        flat.update(_flat(value, f"{prefix}{key}."))
    return flat


def _parse(overrides: list[str]) -> list[Any]:
    """A resume's overrides read with Hydra's grammar."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return OverridesParser.create().parse_overrides(overrides=overrides)
    except HydraException as error:
        raise ConfigError(f"Cannot read the resume's overrides {overrides}: {str(error).splitlines()[0]}") from None


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> None:
    """Apply a resume's overrides (Hydra's grammar) to `cfg`, refusing keys a resume may not change."""
    for override in _parse(overrides):
        key = override.key_or_group
        if not key.startswith(RESUME_MAY_CHANGE) or override.is_delete() or override.is_sweep_override():
            allowed = ", ".join(f"{name}*" if name.endswith(".") else name for name in RESUME_MAY_CHANGE)
            raise ConfigError(
                f"{override.input_line} cannot be changed on resume: a resume continues the same "
                f"experiment and may change only {allowed}. Start a new run for other settings."
            )
        OmegaConf.update(cfg, key, override.value(), force_add=True)


def _check_schedule_can_continue(before: DictConfig, after: DictConfig, saved: dict[str, Any], path: Path) -> None:
    """A cosine schedule that already reached 0 cannot usefully be extended: more epochs at lr 0."""
    if after.model.get("lr_schedule") != "cosine" or after.trainer.max_epochs <= before.trainer.max_epochs:
        return
    states = [state for scheduler in saved.get("lr_schedulers", []) for state in scheduler.get("lr_lambdas", [])]
    finished = any(
        isinstance(state, dict) and saved.get("global_step", 0) >= state.get("total_steps", float("inf"))
        for state in states
    )
    if finished:
        raise ConfigError(
            f"{path} ends a run whose cosine learning-rate schedule already decayed to 0, so "
            f"trainer.max_epochs={after.trainer.max_epochs} would train more epochs at lr 0. Start a new run with "
            "more epochs instead (or resume an interrupted run, whose schedule has steps left)."
        )
