"""The console's progress bar during training."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar


class RunProgressBar(TQDMProgressBar):
    """Lightning's bar, showing the running training loss (the model reads it back from the
    device every `trainer.log_every_n_steps` steps, so showing it costs no extra sync) and
    without the logger's version number, which is always empty here."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        running = getattr(pl_module, "running_loss", None)
        if running is not None:
            metrics["loss"] = f"{running:.4g}"
        return metrics
