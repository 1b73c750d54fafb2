"""The run's loggers beside TensorBoard (views/loggers.py), given what they need to know of the run:
its directory, its sweep, its parameters, and what earlier sessions recorded (a resume reattaches)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from autoencoders.rundir.record import WorkerRecord
from autoencoders.views.hparams import flatten_hparams
from autoencoders.views.loggers import RunContext, build_loggers, finish_run


def run_loggers(
    cfg: DictConfig, run_dir: Path, record: Any, purge_step: int, write_dir: Path | None = None
) -> list[Any]:
    """The loggers of `cfg.logger`, their ids in metrics.json's `loggers`. A DDP worker process
    (no RunRecord of its own) gets none: the main process logs for the run. `write_dir`: where
    the loggers that write files write them, when not the run directory (a resume's attempt folder)."""
    if isinstance(record, WorkerRecord) or not cfg.get("logger"):
        return []
    resumes = record.payload.get("resumes") or []
    context = RunContext(
        run_dir=run_dir,
        output_root=Path(cfg.output_root).resolve(),
        experiment=sweep_name(),
        run_name=run_dir.name,
        params=run_params(cfg),
        previous=record.current("loggers") or {},
        purge_step=purge_step,
        resume_overrides=tuple(resumes[-1].get("overrides", ())) if resumes else None,
        resume_number=len(resumes),
        write_dir=write_dir,
    )
    loggers = build_loggers(cfg.logger, context)
    record.update(loggers={name: logger.record_entry() for name, logger in loggers.items()})
    return list(loggers.values())


def flush_files(trainer: Any) -> None:
    """Everything the loggers hold for the files they write, written now, and the event file
    closed (before a resume's files are promoted into the run directory: rundir/attempt.py)."""
    trainer.logger.close()
    for logger in trainer.loggers[1:]:
        logger.save()


def close_loggers(trainer: Any, record: Any, outcome: str, metrics: dict[str, float], run_dir: Path) -> None:
    """The session's event file closed (views/tensorboard.SessionLogger); the other loggers get the
    attempt's end (its status, final metrics, files), and one that stopped mid-run is named in the
    record (`loggers.<name>.error`)."""
    trainer.logger.close()
    if not trainer.is_global_zero:
        return
    finish_run(trainer.loggers, outcome, metrics, record.current("tested"), run_dir)
    broken = {
        logger.config_name: logger.record_entry() for logger in trainer.loggers if getattr(logger, "broken", None)
    }
    if broken and not isinstance(record, WorkerRecord):
        record.update(loggers={**(record.current("loggers") or {}), **broken})


def sweep_name() -> str:
    """The experiment a tracker files the run under: its sweep directory's name, or "runs"."""
    if HydraConfig.initialized() and HydraConfig.get().mode.name == "MULTIRUN":
        return Path(HydraConfig.get().sweep.dir).name
    return "runs"


def run_params(cfg: DictConfig) -> dict[str, Any]:
    """The run's composed config as flat `section.key` parameters, without the logger and callback
    entries (how it is logged, not what it trains)."""
    values = OmegaConf.to_container(cfg, resolve=True)
    return flatten_hparams(
        {name: value for name, value in values.items() if name not in ("logger", "callbacks", "hydra")}
    )
