"""Stopping cleanly on SIGINT/SIGTERM with a resumable checkpoint.

SIGTERM: Lightning's own handler raises SIGTERMException after the current batch. SIGINT:
we install a handler that asks for the same, instead of a KeyboardInterrupt that could land
in the middle of an optimizer step. Either way `GracefulStop` saves
checkpoints/interrupted.ckpt (mid-epoch, resumable) before the run ends with status
"interrupted"; `ae-train resume=<run-dir>` continues from the newest checkpoint.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

from autoencoders.runs.checkpoints import INTERRUPTED_CHECKPOINT


class GracefulStop(L.Callback):
    """Turns SIGINT into a stop after the current batch and saves a checkpoint on any stop signal."""

    def __init__(self, checkpoint_dir: Path) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        self.signal_number: int | None = None
        self._previous_sigint: Any = None

    def _request_stop(self, signal_number: int, frame: Any) -> None:
        self.signal_number = signal_number

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._previous_sigint = signal.signal(signal.SIGINT, self._request_stop)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_sigint()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self.signal_number is not None:
            raise SIGTERMException()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore_sigint()
        if isinstance(exception, (SIGTERMException, KeyboardInterrupt)):
            if self.signal_number is None:
                self.signal_number = signal.SIGTERM if isinstance(exception, SIGTERMException) else signal.SIGINT
            trainer.save_checkpoint(self.checkpoint_dir / INTERRUPTED_CHECKPOINT, weights_only=False)

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None
