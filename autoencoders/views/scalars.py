"""Scalars beyond the loss terms: training throughput and epoch time."""

from __future__ import annotations

import time
from typing import Any

import lightning as L

from autoencoders.views.tensorboard import epoch_step


class Throughput(L.Callback):
    """`train/images_per_s` (training batches only) and `train/epoch_time_s` (wall clock of the
    whole epoch, validation and logging included), one point per epoch."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Also here: a run resumed mid-epoch starts without on_train_epoch_start.
        self.on_train_epoch_start(trainer, pl_module)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = self.last_batch_end = time.perf_counter()
        self.images = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # On a GPU this clock runs ahead of queued kernels by at most a step or two, which an
        # epoch of steps averages out; a synchronize here would cost more than it corrects.
        self.images += len(batch[0] if isinstance(batch, (list, tuple)) else batch)
        self.last_batch_end = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        train_time = self.last_batch_end - self.start
        metrics = {"train/epoch_time_s": time.perf_counter() - self.start}
        if train_time > 0:
            metrics["train/images_per_s"] = self.images / train_time
        # Straight to the loggers: timings are not results, so they stay out of callback_metrics
        # (and metrics.json), like base.py's train/loss_step.
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=epoch_step(trainer))
