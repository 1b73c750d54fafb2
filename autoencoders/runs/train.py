"""train(cfg): build the data, model and trainer from a composed config, train, test, evaluate,
and write the run directory (TensorBoard events, checkpoints, config.yaml, metrics.json).

It reads as its steps: open the run's record, build data and model, build the trainer, fit,
test, evaluate, finish. Heavy libraries (torch, lightning) are imported inside the steps, so
`ae-train --help` and shell completion stay fast. The command line lives in autoencoders/cli/.
"""

from __future__ import annotations

import logging
import signal
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from autoencoders.errors import CheckpointError, ConfigError, Diverged, RunInterrupted
from autoencoders.runs.checkpoints import check_belongs, load_checkpoint, newest_checkpoint
from autoencoders.runs.loading import instantiate
from autoencoders.runs.record import RunRecord, floats
from autoencoders.runs.report import print_metrics
from autoencoders.runs.signals import GracefulStop
from autoencoders.runs.torch_setup import cuda_check_without_nvml, resolve_threads, set_up_torch
from autoencoders.runs.trainer import build_trainer
from autoencoders.schema import check_config

log = logging.getLogger("autoencoders")


@dataclass
class RunState:
    """What a run has so far: its record, and the trainer and metrics for a record of a stop."""

    record: RunRecord
    trainer: Any = None
    metrics: dict[str, float] = field(default_factory=dict)

    def metrics_so_far(self) -> dict[str, float]:
        if self.metrics or self.trainer is None:
            return self.metrics
        return floats(self.trainer.callback_metrics)


def train(
    cfg: DictConfig, run_dir: str | Path | None = None, overrides: list[str] | None = None, resume: bool = False
) -> dict[str, float]:
    """Train and test the configured model; return the final metrics (also in metrics.json).

    `run_dir` and `overrides` default to Hydra's job output directory and command-line
    overrides, so tests can call this with a composed config and a temporary directory.
    `resume=True` continues the run in `run_dir` from its newest checkpoint.
    """
    if run_dir is None:
        run_dir = HydraConfig.get().runtime.output_dir
        overrides = list(HydraConfig.get().overrides.task) if overrides is None else overrides
    run_dir = Path(run_dir)
    route_lightning_logs_through_root()
    resume_from = _checkpoint_to_resume(run_dir) if resume else None
    state = RunState(_open_record(cfg, run_dir, overrides or [], resume))
    stop = GracefulStop(run_dir / "checkpoints")
    try:
        _fit_test_evaluate(cfg, run_dir, resume_from, stop, state)
    except (KeyboardInterrupt, SystemExit) as error:
        # SIGTERM (Lightning's SIGTERMException) or SIGINT (GracefulStop): the checkpoint is saved.
        signal_number = stop.signal_number or signal.SIGINT
        state.record.finish("interrupted", state.metrics_so_far(), error, traceback.format_exc())
        raise RunInterrupted(
            f"Stopped by {signal.Signals(signal_number).name}; a resumable checkpoint is in "
            f"{run_dir / 'checkpoints'}. Continue with: ae-train resume={run_dir}", signal_number
        ) from None
    except BaseException as error:
        status = "diverged" if isinstance(error, Diverged) else "failed"
        state.record.finish(status, state.metrics_so_far(), error, traceback.format_exc())
        raise
    state.record.finish("completed", state.metrics)
    print_metrics("Final metrics", state.metrics, f"Run directory: {run_dir}")
    return state.metrics


def _checkpoint_to_resume(run_dir: Path) -> Path:
    checkpoint = newest_checkpoint(run_dir)
    if checkpoint is None:
        raise CheckpointError(f"{run_dir} has no checkpoint to resume from (checkpoints/last.ckpt or interrupted.ckpt).")
    return checkpoint


def _open_record(cfg: DictConfig, run_dir: Path, overrides: list[str], resume: bool) -> RunRecord:
    """The run's metrics.json (new, or reopened to resume) and config.yaml; a config that breaks
    the schema is recorded as failed and raised before anything is built or trained."""
    try:
        check_config(cfg)
        error = None
    except ConfigError as caught:
        error = caught
    threads = resolve_threads(cfg.torch_threads) if error is None else None
    if resume:
        record = RunRecord.reopen(run_dir, threads)
    else:
        record = RunRecord(run_dir, overrides, threads)
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    if error is not None:
        record.finish("failed", error=error)
        raise error
    set_up_torch(threads)
    return record


def _fit_test_evaluate(cfg: DictConfig, run_dir: Path, resume_from: Path | None, stop: GracefulStop,
                       state: RunState) -> None:  # fmt: skip
    """Build data, model and trainer; fit, test the best checkpoint, evaluate it; metrics into `state`."""
    import lightning as L

    from autoencoders.evaluation.evaluate import evaluate_model

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_data(cfg, state.record)
    model = build_model(cfg, datamodule, state.record)
    purge_step = _purge_step(run_dir, resume_from, OmegaConf.to_container(cfg.model, resolve=True))
    state.trainer, best = build_trainer(cfg, run_dir, state.record.payload["model"]["name"], purge_step, stop)
    with cuda_check_without_nvml():
        state.trainer.fit(model, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
        state.metrics = floats(state.trainer.callback_metrics)
        state.trainer.test(model, datamodule=datamodule, ckpt_path=best.best_model_path or None,
                           verbose=False, weights_only=True)  # fmt: skip
        state.metrics.update(floats(state.trainer.callback_metrics))
        # Probe, anomaly scores and NLL on the tested (best) weights.
        state.metrics.update(evaluate_model(cfg.eval, model, datamodule, state.trainer.logger))


def build_data(cfg: DictConfig, record: RunRecord) -> Any:
    """The run's DataModule, set up for fitting; its description goes into the record."""
    datamodule = instantiate(cfg.data, seed=cfg.seed)
    datamodule.setup("fit")
    record.update(data=datamodule.describe())
    return datamodule


def build_model(cfg: DictConfig, datamodule: Any, record: RunRecord) -> Any:
    """The run's model, sized by the data's input shape; its name and size go into the record."""
    model = instantiate(cfg.model, input_shape=list(datamodule.input_shape), _convert_="all")
    record.update(model={
        "name": _chosen_option("model", cfg.model._target_),
        "target": cfg.model._target_,
        "parameters": sum(p.numel() for p in model.parameters()),
    })  # fmt: skip
    return model


def _purge_step(run_dir: Path, resume_from: Path | None, model_cfg: dict[str, Any]) -> int | None:
    """Where TensorBoard drops earlier events of this run directory.

    Resuming: events from the checkpoint's step on are dropped from the old event files, so
    curves continue without duplicate points. A restart over a failed attempt drops all of its
    events; a brand-new run gets no purge marker (TensorBoard reads event files in name order,
    and a marker in a later-sorting file would drop the test phase's events).
    """
    if resume_from is None:
        return 0 if any(run_dir.glob("events.out.tfevents.*")) else None
    saved = load_checkpoint(resume_from)
    check_belongs(saved, resume_from, model_cfg)
    log.info("Resuming %s from %s (step %d)", run_dir, resume_from.name, saved["global_step"])
    return saved["global_step"]


def route_lightning_logs_through_root() -> None:
    """Lightning adds its own console handlers; Hydra's root handlers already print and save
    every record to the run's log file, so without this each Lightning message shows twice."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                logger.removeHandler(handler)
        logger.propagate = True


def _chosen_option(group: str, fallback: str) -> str:
    """The option chosen for a config group (e.g. model=vae), when running under Hydra."""
    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.choices.get(group, fallback))
    return fallback
