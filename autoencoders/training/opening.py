"""A run's opening, before anything is built: its config checked, its paths made absolute, its
record (metrics.json, new or reopened to resume) and config.yaml written, torch set up."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from autoencoders.distributed.torch_setup import resolve_threads, set_up_torch
from autoencoders.errors import ConfigError
from autoencoders.machinery.contract import check_prior
from autoencoders.rundir.checkpoints import FROM_DATA, current_class_path
from autoencoders.rundir.loading import constructor_arguments
from autoencoders.rundir.record import RunRecord
from autoencoders.rundir.resume import ResumePlan, config_fingerprint
from autoencoders.schema import check_config, check_known_keys
from autoencoders.training.trainer import check_trainer_fits_model

log = logging.getLogger("autoencoders")

# Arguments the code passes to the model and DataModule itself; a config may not set them.
SET_BY_CODE = {"model": FROM_DATA, "data": {"seed"}}


def open_record(cfg: DictConfig, run_dir: Path, overrides: list[str], resume: ResumePlan | None) -> RunRecord:
    """The run's metrics.json (new, or reopened to resume) and config.yaml. A new run's config that
    breaks the schema is recorded as failed and raised before anything is built or trained; a
    resume was checked in full before (rundir.resume), so a refused one changes no file."""
    if resume is not None:
        threads = resolve_threads(cfg.torch_threads, _processes_here(cfg))
        record = RunRecord.reopen(run_dir, resume.overrides, resume.checkpoint_name, threads, resume.config_changes)
        if not isinstance(record.payload.get("config"), dict):  # recorded before the field: kept once this completes
            record.update(config=config_fingerprint(OmegaConf.load(run_dir / "config.yaml")))
        for line in resume.skipped:
            log.warning("Resuming %s: %s", run_dir, line)
        set_up_torch(threads)
        return record
    try:
        check_new_run(cfg)
        error = None
    except ConfigError as caught:
        error = caught
    threads = resolve_threads(cfg.torch_threads, _processes_here(cfg)) if error is None else None
    record = RunRecord(run_dir, overrides, threads)
    resolved = resolve_paths(cfg)  # beside the verbatim overrides, which a sweep re-run compares
    # What config.yaml says now, whole and hashed: a resume compares them (an edit obeys its rules).
    record.update(config=config_fingerprint(cfg), **({"resolved_paths": resolved} if resolved else {}))
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    if error is not None:
        record.finish("failed", error=error)
        raise error
    set_up_torch(threads)
    return record


def check_new_run(cfg: DictConfig) -> None:
    """The checks of a new run's config before anything is built: every value by its rule
    (schema.check_config), every model.* and data.* key an argument of its class, the Inception
    weights file. The checks that need the data and the model follow in training/building.py."""
    from autoencoders.evaluation.inception import check_inception_weights

    check_config(cfg)
    check_settings_exist(cfg)
    check_inception_weights(OmegaConf.select(cfg, "eval.inception_weights", default=None))


PATH_KEYS = ("data.path", "data.root", "eval.inception_weights")


def resolve_paths(cfg: DictConfig) -> dict[str, str]:
    """Make the run's file paths absolute in `cfg` (so config.yaml resumes and evaluates from any
    directory); the keys whose value changed, with their absolute value."""
    changed = {}
    for key in PATH_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        if isinstance(value, str) and value:
            absolute = str(Path(value).expanduser().absolute())
            if absolute != value:
                OmegaConf.update(cfg, key, absolute, force_add=False)
                changed[key] = absolute
    return changed


def _processes_here(cfg: DictConfig) -> int:
    """How many processes of the run share this machine's cores (DDP on CPUs starts `devices`)."""
    from autoencoders.training.trainer import DDP_STRATEGIES

    devices = cfg.trainer.get("devices")
    return devices if cfg.trainer.get("strategy") in DDP_STRATEGIES and isinstance(devices, int) else 1


def check_settings_exist(cfg: DictConfig) -> None:
    """Every model.* and data.* key is an argument of the class it configures (`+model.foo=1`
    would otherwise fail deep inside Hydra's instantiate, after the data had loaded), and
    model.prior is one the model can take (the contract's `prior_choices`)."""
    if "prior" in cfg.model:
        check_prior(get_class(current_class_path(cfg.model._target_)), cfg.model.prior)
    for section in ("model", "data"):
        node = cfg[section]
        known = constructor_arguments(get_class(current_class_path(node._target_)))
        given = {key for key in node if not key.startswith("_")}
        check_known_keys(section, dict.fromkeys(given), known - SET_BY_CODE[section])
    check_trainer_fits_model(cfg.trainer, get_class(current_class_path(cfg.model._target_)))
