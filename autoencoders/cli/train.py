"""`ae-train`: the command line around train(cfg).

    ae-train [overrides]          one run (Hydra composes conf/ and the overrides)
    ae-train -m [sweep overrides] a multirun; a failing job never stops the others
    ae-train resume=<run-dir> [overrides]   continue an interrupted or finished run

Errors end as one paragraph and exit code 1 (the traceback only with HYDRA_FULL_ERROR=1);
SIGINT/SIGTERM end with a resumable checkpoint and exit code 128 + the signal number.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from autoencoders.errors import LOG_FORMAT, USER_ERRORS, CheckpointError, RunInterrupted, describe, full_error_requested
from autoencoders.runs.record import read_record
from autoencoders.runs.sweep import FAILURES, plan_for_existing_dir
from autoencoders.runs.train import train

log = logging.getLogger("autoencoders")

# A per-process token in run directory names (conf/train.yaml): two runs started in the same
# second differ. use_cache keeps one value per composed config, so every reference agrees.
OmegaConf.register_new_resolver("run_token", lambda: f"{os.getpid()}{secrets.token_hex(2)}", use_cache=True, replace=True)


def _report_failure(run_dir: str | Path, error: Exception) -> None:
    if isinstance(error, USER_ERRORS):
        log.error("%s", error, exc_info=full_error_requested())
    else:
        log.error("Training failed: %s (the traceback is in %s/metrics.json; HYDRA_FULL_ERROR=1 prints it)",
                  describe(error), run_dir, exc_info=full_error_requested())  # fmt: skip
    FAILURES.append(f"{run_dir}: {describe(error)}")


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


class TrialFailed(RuntimeError):
    """Tells a search sweeper that this trial has no value."""


@hydra.main(config_path="pkg://autoencoders.conf", config_name="train", version_base="1.3")
def run_job(cfg: DictConfig) -> dict[str, float] | float | None:
    """One Hydra job. Errors become a message and a failed metrics.json, never an exception or
    sys.exit that would end the whole sweep."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    overrides = list(HydraConfig.get().overrides.task)
    try:
        plan = plan_for_existing_dir(run_dir, overrides)
        if plan == "skip":
            log.info("Skipping %s: it already completed.", run_dir)
            return _objective(cfg, read_record(run_dir)["metrics"])
        return _objective(cfg, train(cfg, run_dir, overrides, resume=plan == "resume"))
    except RunInterrupted:
        raise  # ends the sweep too: the user asked to stop
    except Exception as error:  # noqa: BLE001 - every failure is recorded and reported, none ends a sweep
        _report_failure(run_dir, error)
    except SystemExit as error:  # a library calling sys.exit must not end the sweep either
        _report_failure(run_dir, RuntimeError(f"sys.exit({error.code}) inside the job"))
    return _objective(cfg, None)


def resume_run(run_dir: Path, overrides: list[str]) -> None:
    """`ae-train resume=<dir> [key=value ...]`: continue a run into its own directory with its
    saved config (config.yaml is not rewritten); overrides such as trainer.max_epochs=40 apply."""
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise CheckpointError(f"{run_dir} is not a run directory (no config.yaml); pass the directory of a run.")
    cfg = OmegaConf.merge(OmegaConf.load(config_path), OmegaConf.from_dotlist([o.lstrip("+") for o in overrides]))
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT,
                        handlers=[logging.StreamHandler(), logging.FileHandler(run_dir / "train.log")])  # fmt: skip
    train(cfg, run_dir, read_record(run_dir).get("overrides", []), resume=True)


def main() -> None:
    """Console entry point of `ae-train`."""
    FAILURES.clear()
    resume = [arg for arg in sys.argv[1:] if arg.startswith("resume=")]
    try:
        if resume:
            run_dir = Path(resume[0].split("=", 1)[1]).expanduser()
            others = [arg for arg in sys.argv[1:] if not arg.startswith("resume=")]
            try:
                resume_run(run_dir, others)
            except Exception as error:  # noqa: BLE001 - reported as one paragraph
                _report_failure(run_dir, error)
        else:
            run_job()
    except RunInterrupted as stopped:
        print(f"ae-train: {stopped}", file=sys.stderr)
        sys.exit(128 + stopped.signal_number)
    if FAILURES:
        print(f"ae-train: {len(FAILURES)} run(s) did not complete:", file=sys.stderr)
        for line in FAILURES:
            print(f"  {line}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
