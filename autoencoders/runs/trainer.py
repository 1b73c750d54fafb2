"""The Lightning Trainer of a run: our logger, checkpoints, views, signal handling, progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from autoencoders.runs.signals import GracefulStop


def build_trainer(cfg: DictConfig, run_dir: Path, model_name: str, purge_step: int | None,
                  stop: GracefulStop) -> tuple[Any, Any]:  # fmt: skip
    """The Trainer for `cfg.trainer`, and its best-checkpoint callback (whose checkpoint is tested).

    `purge_step`: TensorBoard drops the run's events from this step on (a resumed run repeats them).
    """
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, TQDMProgressBar
    from lightning.pytorch.loggers import TensorBoardLogger

    from autoencoders.runs.checkpointing import AtomicCheckpointIO, RunCheckpoint
    from autoencoders.views import build_callbacks

    trainer_args = OmegaConf.to_container(cfg.trainer, resolve=True)
    checkpoint = RunCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor="val/loss")
    # Lightning's save_last only writes when a new best was saved; resuming needs every epoch.
    last = RunCheckpoint(dirpath=run_dir / "checkpoints", filename="last")
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
        plugins=[AtomicCheckpointIO()],
    )
    return trainer, checkpoint
