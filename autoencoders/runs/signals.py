"""Stopping cleanly on SIGINT or SIGTERM, in every phase of a run.

`StopSignals` handles both signals for the whole run. While training it only notes the signal, and
`GracefulStop` stops after the current batch and saves checkpoints/interrupted.ckpt (mid-epoch,
resumable). In any other phase (sanity check, test, evaluation) nothing is lost by stopping at
once, so the handler raises right away; training's own checkpoints are already on disk. Either
way the run ends with status "interrupted" and exit code 128 + the signal number, and
`ae-train resume=<run-dir>` continues it (a run whose training had finished only tests and
evaluates again).

Lightning's own SIGTERM handler runs first when it is installed (it also passes the signal on to
DDP worker processes); ours is called after it.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

from autoencoders.runs.checkpoints import INTERRUPTED_CHECKPOINT

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """SIGINT/SIGTERM handlers for one run; `signal_number` is the first signal received."""

    def __init__(self) -> None:
        self.signal_number: int | None = None
        self.graceful = False  # True while training: stop at the next batch boundary
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():  # only there can Python set handlers
            self._previous = {number: signal.signal(number, self._received) for number in SIGNALS}

    def restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _received(self, signal_number: int, frame: FrameType | None) -> None:
        first = self.signal_number is None
        self.signal_number = self.signal_number or signal_number
        if first and not self.graceful:
            raise SIGTERMException()  # a SystemExit: Lightning hands it to the callbacks and re-raises it

    def check(self) -> None:
        """Raise at a safe point when a stop was asked for."""
        if self.signal_number is not None:
            raise SIGTERMException()


class GracefulStop(L.Callback):
    """Stops training at a batch boundary after a signal, and saves a resumable checkpoint."""

    def __init__(self, signals: StopSignals, checkpoint_dir: Path) -> None:
        self.signals = signals
        self.checkpoint_dir = Path(checkpoint_dir)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.signals.graceful = True

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.signals.check()

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self.signals.graceful:
            self.signals.check()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.signals.graceful = False
        self.signals.check()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.signals.graceful = False
        stopped = isinstance(exception, (SIGTERMException, KeyboardInterrupt))
        if stopped and trainer.state.fn == "fit":  # testing changes no weights: last.ckpt is the state
            if self.signals.signal_number is None:
                self.signals.signal_number = signal.SIGTERM if isinstance(exception, SIGTERMException) else signal.SIGINT
            trainer.save_checkpoint(self.checkpoint_dir / INTERRUPTED_CHECKPOINT, weights_only=False)
