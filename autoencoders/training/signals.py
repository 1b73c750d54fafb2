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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from autoencoders.internals import stop_lightnings_sigterm_exchange
from autoencoders.rundir.checkpoints import INTERRUPTED_CHECKPOINT

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """SIGINT/SIGTERM handlers for one run; `signal_number` is the first signal received."""

    def __init__(self) -> None:
        self.signal_number: int | None = None
        self.graceful = False  # True while training: stop at the next batch boundary
        self.forward: Callable[[int], None] | None = None  # passes a signal on to the run's worker processes
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():  # only there can Python set handlers
            self._previous = {number: signal.signal(number, self._received) for number in SIGNALS}

    def take_over(self) -> None:
        """Handle both signals ourselves again (Lightning installs its own SIGTERM handler when a
        stage starts; during training ours decides when every process stops)."""
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                signal.signal(number, self._received)

    def restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _received(self, signal_number: int, frame: FrameType | None) -> None:
        first = self.signal_number is None
        self.signal_number = self.signal_number or signal_number
        if first and self.forward is not None:
            self.forward(signal_number)
        if first and not self.graceful:
            raise SIGTERMException()  # a SystemExit: Lightning hands it to the callbacks and re-raises it

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """A stretch no signal may cut in half (a completed resume's files moved into place and its
        record written): a signal is only noted there, and the run ends as that stretch does."""
        graceful, self.graceful = self.graceful, True
        try:
            yield
        finally:
            self.graceful = graceful

    def check(self) -> None:
        """Raise at a safe point when a stop was asked for."""
        if self.signal_number is not None:
            raise SIGTERMException()


class GracefulStop(L.Callback):
    """Stops training at a batch boundary after a signal, and saves a resumable checkpoint.

    With several processes (DDP) they must all stop after the same batch, or one would wait for
    the others in the next gradient exchange. So they agree every `trainer.log_every_n_steps`
    steps, in one collective, instead of Lightning's exchange of its SIGTERM flag at every step
    (a host sync per step on a GPU); the signal reaches the worker processes from the main one.
    """

    def __init__(self, signals: StopSignals, checkpoint_dir: Path) -> None:
        self.signals = signals
        self.checkpoint_dir = Path(checkpoint_dir)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.signals.graceful = True
        if trainer.world_size > 1:
            # Lightning's own SIGTERM flag would stop each process at its own next batch; ours
            # stop them together. (One process: Lightning's handler runs first, then ours, and
            # Lightning stops at its safe points, the end of an epoch included.)
            self.signals.take_over()
            launcher = trainer.strategy.launcher
            if getattr(launcher, "procs", None):
                self.signals.forward = launcher.kill
            stop_lightnings_sigterm_exchange(trainer)  # we agree on our cadence

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.world_size == 1:
            self.signals.check()  # a Python flag: no device sync
        elif trainer.global_step % trainer.log_every_n_steps == 0:
            self._agree_and_stop(trainer)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size > 1:  # a signal that came while the last epoch ended: stop before the next one
            self._agree_and_stop(trainer)

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self.signals.graceful and trainer.world_size == 1:
            self.signals.check()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.signals.graceful = False
        if trainer.world_size == 1:
            self.signals.check()
        else:
            self._agree_and_stop(trainer)

    def _agree_and_stop(self, trainer: L.Trainer) -> None:
        """Stop every process if any of them received a signal (one collective)."""
        flag = torch.tensor(float(self.signals.signal_number is not None), device=trainer.strategy.root_device)
        if trainer.strategy.reduce(flag, reduce_op="max").item() > 0:
            self.signals.signal_number = self.signals.signal_number or signal.SIGTERM
            raise SIGTERMException()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.signals.graceful = False
        stopped = isinstance(exception, (SIGTERMException, KeyboardInterrupt))
        if stopped and trainer.state.fn == "fit":  # testing changes no weights: last.ckpt is the state
            if self.signals.signal_number is None:
                self.signals.signal_number = (
                    signal.SIGTERM if isinstance(exception, SIGTERMException) else signal.SIGINT
                )
            trainer.save_checkpoint(self.checkpoint_dir / INTERRUPTED_CHECKPOINT, weights_only=False)
