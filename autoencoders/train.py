"""`ae-train`: compose the config, train and test one model, write the run directory.

Heavy libraries (torch, lightning) are imported inside `train`, so `ae-train --help` and
shell completion stay fast.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import traceback
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from autoencoders.errors import USER_ERRORS, ConfigError
from autoencoders.run_record import RunRecord

log = logging.getLogger("autoencoders")

# A per-process token in run directory names: two runs started in the same second differ.
# use_cache keeps one value per composed config, so every reference agrees.
OmegaConf.register_new_resolver("run_token", lambda: f"{os.getpid()}{secrets.token_hex(2)}", use_cache=True, replace=True)

def resolve_threads(torch_threads: int | None) -> int:
    """Threads for torch: the configured number, or one per core up to 4."""
    if torch_threads is None:
        return max(1, min(4, os.cpu_count() or 1))
    if torch_threads < 1:
        raise ConfigError(f"torch_threads must be at least 1 (or null for automatic), got {torch_threads}.")
    return torch_threads


def train(cfg: DictConfig, run_dir: str | Path | None = None, overrides: list[str] | None = None) -> dict[str, float]:
    """Train and test the configured model; return the final metrics (also in metrics.json).

    `run_dir` and `overrides` default to Hydra's job output directory and command-line
    overrides, so tests can call this with a composed config and a temporary directory.
    """
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import TensorBoardLogger

    if run_dir is None:
        run_dir = HydraConfig.get().runtime.output_dir
        overrides = list(HydraConfig.get().overrides.task) if overrides is None else overrides
    run_dir = Path(run_dir)
    _route_lightning_logs_through_root()
    threads = resolve_threads(cfg.torch_threads)
    torch.set_num_threads(threads)
    record = RunRecord(run_dir, overrides or [], threads)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    try:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = _instantiate(cfg.data, seed=cfg.seed)
        datamodule.setup("fit")
        record.update(data=datamodule.describe())
        model = _instantiate(cfg.model, input_shape=list(datamodule.input_shape), _convert_="all")
        record.update(model={
            "name": _choice("model", cfg.model._target_),
            "target": cfg.model._target_,
            "parameters": sum(p.numel() for p in model.parameters()),
        })  # fmt: skip

        trainer_args = OmegaConf.to_container(cfg.trainer, resolve=True)
        checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor="val/loss", save_last=True)
        callbacks = [checkpoint, LearningRateMonitor(logging_interval="epoch")]
        if trainer_args.get("enable_progress_bar", True):
            # Redrawing the bar every step costs more than a small model's step.
            callbacks.append(TQDMProgressBar(refresh_rate=20))
        trainer = L.Trainer(
            **trainer_args,
            default_root_dir=run_dir,
            logger=TensorBoardLogger(save_dir=run_dir, name="", version="", default_hp_metric=False),
            callbacks=callbacks,
        )
        trainer.fit(model, datamodule=datamodule)
        metrics = _floats(trainer.callback_metrics)
        trainer.test(model, datamodule=datamodule, ckpt_path="best" if checkpoint.best_model_path else None, verbose=False)
        metrics.update(_floats(trainer.callback_metrics))
    except BaseException as error:
        status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        record.finish(status, error=error, traceback_text=traceback.format_exc())
        raise
    record.finish("completed", metrics=metrics)
    _print_table(metrics, run_dir)
    return metrics


def _instantiate(node: DictConfig, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, but a bad config value surfaces as its own clear error
    instead of Hydra's InstantiationException wrapper around it."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, USER_ERRORS):
            raise error.__cause__ from None
        raise


def _route_lightning_logs_through_root() -> None:
    """Lightning adds its own console handlers; Hydra's root handlers already print and save
    every record to the run's log file, so without this each Lightning message shows twice."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                logger.removeHandler(handler)
        logger.propagate = True


def _choice(group: str, fallback: str) -> str:
    """The option chosen for a config group (e.g. model=vae), when running under Hydra."""
    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.choices.get(group, fallback))
    return fallback


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in sorted(metrics.items())}


def _print_table(metrics: dict[str, float], run_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Final metrics")
    table.add_column("metric", style="cyan")
    table.add_column("value", justify="right", style="green")
    for name, value in metrics.items():
        if name.startswith(("val/", "test/")):
            table.add_row(name, f"{value:.6g}")
    console = Console(stderr=True)
    console.print(table)
    console.print(f"Run directory: {run_dir}")


# Jobs of this process that failed; main() turns them into a non-zero exit after Hydra returns,
# so a failing job never ends a sweep (sys.exit inside a job would).
FAILED_JOBS: list[str] = []


@hydra.main(config_path="pkg://autoencoders.conf", config_name="train", version_base="1.3")
def run_job(cfg: DictConfig) -> dict[str, float] | None:
    """One Hydra job: train, and turn an error into a message and a failed metrics.json."""
    try:
        return train(cfg)
    except USER_ERRORS as error:
        log.error("%s", error, exc_info=os.environ.get("HYDRA_FULL_ERROR") == "1")
        FAILED_JOBS.append(f"{HydraConfig.get().runtime.output_dir}: {error}")
    except Exception as error:
        log.error("Training failed: %s: %s (full traceback in %s/metrics.json)", type(error).__name__, error,
                  HydraConfig.get().runtime.output_dir, exc_info=os.environ.get("HYDRA_FULL_ERROR") == "1")  # fmt: skip
        FAILED_JOBS.append(f"{HydraConfig.get().runtime.output_dir}: {type(error).__name__}: {error}")
    return None


def main() -> None:
    """Console entry point of `ae-train`."""
    FAILED_JOBS.clear()
    run_job()
    if FAILED_JOBS:
        print(f"ae-train: {len(FAILED_JOBS)} run(s) failed:", file=sys.stderr)
        for line in FAILED_JOBS:
            print(f"  {line}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
