"""train(cfg): build the data, model and trainer from a composed config, train, test, and
write the run directory (TensorBoard events, checkpoints, config.yaml, metrics.json).

Heavy libraries (torch, lightning) are imported inside `train`, so `ae-train --help` and
shell completion stay fast. The command line lives in autoencoders/cli.py.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from autoencoders.checks import check_config
from autoencoders.errors import USER_ERRORS, CheckpointError, ConfigError, Diverged, RunInterrupted
from autoencoders.run_record import RunRecord

log = logging.getLogger("autoencoders")

# A per-process token in run directory names: two runs started in the same second differ.
# use_cache keeps one value per composed config, so every reference agrees.
OmegaConf.register_new_resolver("run_token", lambda: f"{os.getpid()}{secrets.token_hex(2)}", use_cache=True, replace=True)


def resolve_threads(torch_threads: int | None) -> int:
    """Threads for torch: the configured number, or automatic (see autoencoders.sweep)."""
    from autoencoders.sweep import threads_per_job

    if torch_threads is not None:
        return torch_threads
    launcher = HydraConfig.get().launcher if HydraConfig.initialized() else None
    return threads_per_job(launcher)


def set_up_torch(threads: int) -> None:
    """torch's intra-op threads, and denormal floats flushed to zero on the CPU.

    Late in training, Adam's running averages and some gradients fall into float32's denormal
    range (below 1.2e-38), where x86 arithmetic is many times slower: the mlp's CPU time per
    step grew from 10.7 to 16.8 ms over 9 epochs here, and stayed at 10.7 with flushing.
    Zero instead of a denormal changes nothing a float32 model can resolve. torch's worker
    threads copy the setting when they start, so call this before torch's first parallel
    operation, as train() and ae-eval do (later, only the calling thread gets it).
    """
    import torch

    torch.set_flush_denormal(True)
    torch.set_num_threads(threads)


def train(
    cfg: DictConfig, run_dir: str | Path | None = None, overrides: list[str] | None = None, resume: bool = False
) -> dict[str, float]:
    """Train and test the configured model; return the final metrics (also in metrics.json).

    `run_dir` and `overrides` default to Hydra's job output directory and command-line
    overrides, so tests can call this with a composed config and a temporary directory.
    `resume=True` continues the run in `run_dir` from its newest checkpoint.
    """
    import lightning as L

    from autoencoders.evaluate import evaluate_model
    from autoencoders.resume import GracefulStop, check_checkpoint_matches, load_checkpoint, newest_checkpoint

    if run_dir is None:
        run_dir = HydraConfig.get().runtime.output_dir
        overrides = list(HydraConfig.get().overrides.task) if overrides is None else overrides
    run_dir = Path(run_dir)
    _route_lightning_logs_through_root()
    resume_from = newest_checkpoint(run_dir) if resume else None
    if resume and resume_from is None:
        raise CheckpointError(f"{run_dir} has no checkpoint to resume from (checkpoints/last.ckpt or interrupted.ckpt).")
    try:
        check_config(cfg)  # before anything is built or trained
        config_error = None
    except ConfigError as error:
        config_error = error
    threads = resolve_threads(cfg.torch_threads) if config_error is None else None
    if resume:
        record = RunRecord.reopen(run_dir, threads)
    else:
        record = RunRecord(run_dir, overrides or [], threads)
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    if config_error is not None:
        record.finish("failed", error=config_error)
        raise config_error
    set_up_torch(threads)
    metrics: dict[str, float] = {}
    trainer = None
    stop = GracefulStop(run_dir / "checkpoints")
    try:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = _instantiate(cfg.data, seed=cfg.seed)
        datamodule.setup("fit")
        record.update(data=datamodule.describe())
        model = _instantiate(cfg.model, input_shape=list(datamodule.input_shape), _convert_="all")
        model_name = _choice("model", cfg.model._target_)
        record.update(model={
            "name": model_name,
            "target": cfg.model._target_,
            "parameters": sum(p.numel() for p in model.parameters()),
        })  # fmt: skip
        # Resuming: events from the checkpoint's step on are dropped from the old event files,
        # so curves continue without duplicate points. A restart over a failed attempt drops all
        # of its events; a brand-new run gets no purge marker (TensorBoard reads event files in
        # name order, and a marker in a later-sorting file would drop the test phase's events).
        purge_step = 0 if any(run_dir.glob("events.out.tfevents.*")) else None
        if resume_from is not None:
            saved = load_checkpoint(resume_from)
            check_checkpoint_matches(saved, resume_from, f"{type(model).__module__}.{type(model).__qualname__}",
                                     dict(model.hparams))  # fmt: skip
            purge_step = saved["global_step"]
            log.info("Resuming %s from %s (step %d)", run_dir, resume_from.name, purge_step)

        trainer, checkpoint = _build_trainer(cfg, run_dir, model_name, purge_step, stop)
        with _cuda_check_without_nvml():
            trainer.fit(model, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
            metrics = _floats(trainer.callback_metrics)
            trainer.test(model, datamodule=datamodule, ckpt_path=checkpoint.best_model_path or None,
                         verbose=False, weights_only=True)  # fmt: skip
            metrics.update(_floats(trainer.callback_metrics))
            # Probe, anomaly scores and NLL on the tested (best) weights.
            metrics.update(evaluate_model(cfg.eval, model, datamodule, trainer.logger))
    except (KeyboardInterrupt, SystemExit) as error:
        # SIGTERM (Lightning's SIGTERMException) or SIGINT (GracefulStop): the checkpoint is saved.
        signal_number = stop.signal_number or signal.SIGINT
        record.finish("interrupted", metrics=metrics or _last_metrics(trainer), error=error, traceback_text=traceback.format_exc())
        raise RunInterrupted(
            f"Stopped by {signal.Signals(signal_number).name}; a resumable checkpoint is in "
            f"{run_dir / 'checkpoints'}. Continue with: ae-train resume={run_dir}", signal_number
        ) from None
    except BaseException as error:
        status = "diverged" if isinstance(error, Diverged) else "failed"
        record.finish(status, metrics=metrics or _last_metrics(trainer), error=error, traceback_text=traceback.format_exc())
        raise
    record.finish("completed", metrics=metrics)
    _print_table(metrics, run_dir)
    return metrics


def _build_trainer(cfg: DictConfig, run_dir: Path, model_name: str, purge_step: int | None, stop: Any) -> tuple[Any, Any]:
    """The Lightning Trainer with our logger and callbacks, and the best-checkpoint callback."""
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import TensorBoardLogger

    from autoencoders.callbacks import build_callbacks

    trainer_args = OmegaConf.to_container(cfg.trainer, resolve=True)
    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor="val/loss")
    # Lightning's save_last only writes when a new best was saved; resuming needs every epoch.
    last = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", enable_version_counter=False)
    callbacks = [checkpoint, last, LearningRateMonitor(logging_interval="epoch")]
    callbacks.extend(build_callbacks(cfg.logging, hparams={
        "model": model_name, "data": cfg.data.name, "batch_size": cfg.data.batch_size, "seed": cfg.seed,
    }))  # fmt: skip
    callbacks.append(stop)
    if trainer_args.get("enable_progress_bar", True):
        # Redrawing the bar every step costs more than a small model's step.
        callbacks.append(TQDMProgressBar(refresh_rate=20))
    trainer = L.Trainer(
        **trainer_args,
        default_root_dir=run_dir,
        logger=TensorBoardLogger(save_dir=run_dir, name="", version="", default_hp_metric=False, purge_step=purge_step),
        callbacks=callbacks,
    )
    return trainer, checkpoint


@contextmanager
def _cuda_check_without_nvml() -> Iterator[None]:
    """Within the block, torch's "is CUDA available?" uses its cached CUDA runtime answer.

    Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 on import, so that merely asking does not
    initialize CUDA before a fork. torch's optimizers ask on every step, and on a machine
    without an NVIDIA driver the NVML route loads (and fails to load) libnvidia-ml each time:
    66 µs a step here, 1 % of an mlp step. Training and testing fork nothing (no DataLoader
    workers), and the device is chosen by then.
    """
    saved = os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = saved


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


def _last_metrics(trainer: Any) -> dict[str, float]:
    """What the trainer last logged, for the record of a run that stopped early."""
    return _floats(trainer.callback_metrics) if trainer is not None else {}


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in sorted(metrics.items())}


def _print_table(metrics: dict[str, float], run_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Final metrics")
    table.add_column("metric", style="cyan")
    table.add_column("value", justify="right", style="green")
    for name, value in metrics.items():
        if name.startswith(("val/", "test/")) and "/kl_dim/" not in name:  # per-dimension KL: TensorBoard
            table.add_row(name, f"{value:.6g}")
    console = Console(stderr=True)
    console.print(table)
    console.print(f"Run directory: {run_dir}")
