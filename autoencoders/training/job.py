"""One Hydra job, and `ae-train resume=<run>`: what happens around train() for a run directory.

The job takes the run directory's lock before it writes anything there, logs to its train.log,
then decides from what the directory holds: a new run, a completed one (skipped), an interrupted
one (resumed), a failed one (started over) or another run's (refused). Failures are recorded in
metrics.json and reported, and never end a sweep; an interrupt does.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from autoencoders.console import RUN_LOG, log_to_console, log_to_file
from autoencoders.distributed.processes import cluster_job, is_main_process
from autoencoders.errors import USER_ERRORS, RunInterrupted, describe, full_error_requested
from autoencoders.rundir.attempt import pending_record, where_now
from autoencoders.rundir.lock import LOCK_FILE, RunLock, wait_for_decision
from autoencoders.rundir.record import METRICS_FILE, read_record, timestamp, write_json_atomic
from autoencoders.rundir.resume import plan_resume
from autoencoders.rundir.trust import check_targets, own_targets
from autoencoders.training.sweep import FAILURES, plan_for_existing_dir

log = logging.getLogger("autoencoders")


class TrialFailed(RuntimeError):
    """Tells a search sweeper that this trial has no value."""


def run_job(cfg: DictConfig) -> dict[str, float] | float | None:
    """The task of `ae-train` under Hydra, for single runs and each job of a sweep."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = list(hydra_cfg.overrides.task)
    log_to_console()
    metrics = None
    try:
        if not is_main_process():  # a worker of a run the cluster started several processes for
            _join_as_worker(run_dir, own_targets(cfg))
            return None
        with RunLock(run_dir) as lock, log_to_file(run_dir):
            metrics = _run_in_directory(cfg, run_dir, overrides, lock)
    except RunInterrupted:
        raise  # ends the sweep too: the user asked to stop
    except KeyboardInterrupt:  # Ctrl-C before training took over the signals (start-up, data, imports)
        raise stopped_before_training(run_dir) from None
    except Exception as error:  # noqa: BLE001 - every failure is recorded and reported, none ends a sweep
        report_failure(run_dir, error)
    except SystemExit as error:  # a library calling sys.exit must not end the sweep either
        report_failure(run_dir, RuntimeError(f"sys.exit({error.code}) inside the job"))
    return _objective(cfg, metrics)


def _run_in_directory(cfg: DictConfig, run_dir: Path, overrides: list[str], lock: RunLock) -> dict[str, float]:
    """New, skipped, resumed or restarted, by what the directory holds (training/sweep.py)."""
    from autoencoders.training.pipeline import train  # torch and Lightning: only for a job

    plan = plan_for_existing_dir(run_dir, overrides)
    job = cluster_job()
    if plan == "skip":
        log.info("Skipping %s: it already completed.", run_dir)
        if job is not None:
            lock.announce({"job": job, "skip": True})
        return read_record(run_dir)["metrics"]
    # The run this very command started before (the overrides matched): its own classes are allowed.
    resumed = plan_resume(run_dir, [], trust=own_targets(cfg)) if plan == "resume" else None
    if resumed is None:
        _save_hydra_files(run_dir, cfg)
    if job is not None:  # the run's other processes, started by the cluster, follow this decision
        checkpoint = str(resumed.checkpoint) if resumed is not None and resumed.checkpoint is not None else None
        config = OmegaConf.to_container(resumed.cfg if resumed is not None else cfg, resolve=True)
        lock.announce({"job": job, "checkpoint": checkpoint, "config": config})
    if resumed is not None:
        return train(resumed.cfg, run_dir, overrides, resume=resumed)
    return train(cfg, run_dir, overrides)


def _join_as_worker(run_dir: Path, trust: list[str]) -> None:
    """A worker process started by the cluster: train beside the main process, as it decided (a
    config whose classes are this command's own, `trust`, or the shipped configs')."""
    from autoencoders.distributed.torch_setup import resolve_threads
    from autoencoders.training.pipeline import train_worker

    decision = wait_for_decision(run_dir, cluster_job() or "")
    if decision.get("skip"):
        return
    cfg = OmegaConf.create(decision["config"])
    check_targets(cfg, run_dir / LOCK_FILE, trust)
    checkpoint = Path(decision["checkpoint"]) if decision.get("checkpoint") else None
    train_worker(cfg, run_dir, checkpoint, resolve_threads(cfg.torch_threads))


def resume_run(run_dir: Path, overrides: list[str], checkpoint: Path | None = None) -> dict[str, float] | None:
    """`ae-train resume=<run> [key=value ...]`: continue a run in its own directory (rundir/resume.py)."""
    from autoencoders.training.pipeline import resume_training

    log_to_console()
    try:
        if pending_record(run_dir).is_file():  # a completed resume was killed while moving its files
            with RunLock(run_dir):  # whose holder finishes the move (rundir/attempt.py)
                checkpoint = where_now(checkpoint, run_dir) if checkpoint is not None else None
        plan_resume(run_dir, overrides, checkpoint)  # everything checked before anything is written, the lock included
        with RunLock(run_dir), log_to_file(run_dir):
            return resume_training(run_dir, overrides, checkpoint)  # and checked again, now that it is ours
    except RunInterrupted:
        raise
    except Exception as error:  # noqa: BLE001 - reported as one paragraph
        report_failure(run_dir, error)
    return None


def stopped_before_training(run_dir: Path) -> RunInterrupted:
    """After a SIGINT that came before training handled signals: a record that says running now
    says interrupted (a resume's entry, for a resume), and a directory holding nothing of a run
    (only the lock and an empty log) is removed. The error to end with: one line, exit 130."""
    record_path = run_dir / METRICS_FILE
    if record_path.is_file():
        record = read_record(run_dir)
        attempt = record.pop("attempt", None) or {}
        error = {"type": "RunInterrupted", "message": "Stopped by SIGINT before training started", "traceback": None}
        if attempt.get("resume") is not None:
            record["resumes"][attempt["resume"]].update(status="interrupted", error=error, finished=timestamp())
        elif record.get("status") == "running":
            record.update(status="interrupted", error=error)
        write_json_atomic(record_path, record)
        return RunInterrupted(
            f"Stopped by SIGINT before training started; the record says so ({record_path}).", signal.SIGINT
        )
    for name in (LOCK_FILE, RUN_LOG):
        path = run_dir / name
        if path.is_file() and (name == LOCK_FILE or path.stat().st_size == 0):
            path.unlink()
    if run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()
    return RunInterrupted("Stopped by SIGINT before the run started; nothing was kept.", signal.SIGINT)


def report_failure(run_dir: str | Path, error: Exception) -> None:
    """One paragraph for the console (and the run's log, when it holds the run); the list of
    failures ae-train exits 1 for."""
    if isinstance(error, USER_ERRORS):
        log.error("%s", error, exc_info=full_error_requested())
    else:
        path = Path(run_dir) / METRICS_FILE
        where = (
            f"the traceback is in {path}; HYDRA_FULL_ERROR=1 prints it"
            if _recorded(run_dir, error)
            else f"{path} could not record it; HYDRA_FULL_ERROR=1 prints the traceback"
        )
        log.error("Training failed: %s (%s)", describe(error), where, exc_info=full_error_requested())
    FAILURES.append(f"{run_dir}: {describe(error)}")


def _recorded(run_dir: str | Path, error: Exception) -> bool:
    """Whether the run's metrics.json holds `error` (as the run's error, or its latest resume's):
    not when the record could not be written, or the failure came before there was one."""
    try:
        record = read_record(Path(run_dir))
    except (OSError, ValueError):
        return False
    entries = [record.get("error"), *[entry.get("error") for entry in record.get("resumes", [])[-1:]]]
    return any(isinstance(entry, dict) and entry.get("message") == str(error) for entry in entries)


def _objective(cfg: DictConfig, metrics: dict[str, float] | None) -> dict[str, float] | float | None:
    """What a job returns: the metrics, or one number for a search sweeper (`optimized_metric`).
    A failed trial raises (after it was recorded and reported): the Optuna sweeper marks the
    trial failed and, with max_failure_rate 1.0, goes on with the study."""
    metric = cfg.get("optimized_metric")
    if not metric:
        return metrics
    if metrics is None:
        raise TrialFailed(f"trial failed; see {HydraConfig.get().runtime.output_dir}/metrics.json")
    return float(metrics.get(metric, math.nan))


def _save_hydra_files(run_dir: Path, cfg: DictConfig) -> None:
    """Hydra's copies of the composed config in <run>/.hydra/, written once the run holds its
    directory (Hydra's own writing is off in conf/train.yaml: it would come before the lock)."""
    hydra_cfg: Any = HydraConfig.get()
    folder = run_dir / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder / "config.yaml")
    OmegaConf.save(OmegaConf.create({"hydra": OmegaConf.to_container(hydra_cfg)}), folder / "hydra.yaml")
    OmegaConf.save(hydra_cfg.overrides.task, folder / "overrides.yaml")


class OutputDirectoryCheck(Callback):
    """Hydra callback: a run or sweep directory that cannot be created (a path under a file, a
    read-only place) ends ae-train with one paragraph and exit code 1, before Hydra's own attempt
    would fail with a traceback."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        HydraConfig.instance().set_config(config)  # as Hydra does next: run.dir names the chosen options
        _create_or_exit(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _create_or_exit(config.hydra.sweep.dir, "hydra.sweep.dir")


def _create_or_exit(directory: str, key: str) -> None:
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(
            f"ae-train: cannot create the output directory {directory} ({type(error).__name__}: {error.strerror or error}). "
            f"Choose a writable place with output_root=<dir> (or {key}=<dir>).",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
