"""Stopping cleanly on SIGINT/SIGTERM and continuing a run from its checkpoint.

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
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from autoencoders.errors import CheckpointError

INTERRUPTED_CHECKPOINT = "interrupted.ckpt"


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


def load_checkpoint(path: Path) -> dict[str, Any]:
    """torch.load with weights_only=True (nothing from the file is executed), with clear errors."""
    if not Path(path).is_file():
        raise CheckpointError(f"No checkpoint at {path}.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, wrong format, unsafe pickle: all mean "unusable"
        raise CheckpointError(
            f"Checkpoint {path} cannot be loaded ({type(error).__name__}: {str(error).splitlines()[0]}). "
            "It is corrupt or not an autoencoders checkpoint; use another checkpoint of the run "
            "(checkpoints/last.ckpt or best.ckpt) or start a new run."
        ) from None


def check_checkpoint_matches(checkpoint: dict[str, Any], path: Path, model_class: str, model_hparams: dict[str, Any]) -> None:
    """The checkpoint must hold weights of the same model and network as the config."""
    if checkpoint.get("model_class") != model_class:
        raise CheckpointError(
            f"Checkpoint {path} holds a {checkpoint.get('model_class', 'non-autoencoders')} model, not "
            f"{model_class}. Use a checkpoint of this model, or the matching model config."
        )
    saved = checkpoint.get("hyper_parameters", {})
    for key in ("net", "latent_dim", "input_shape"):
        if key in model_hparams and saved.get(key) != model_hparams[key]:
            raise CheckpointError(
                f"Checkpoint {path} was saved by a different model ({key}={saved.get(key)!r}, the config "
                f"says {model_hparams[key]!r}). Resume with the run's own config, or start a new run."
            )


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint to resume from: interrupted.ckpt if newer than last.ckpt, else last.ckpt."""
    folder = Path(run_dir) / "checkpoints"
    candidates = [path for path in (folder / INTERRUPTED_CHECKPOINT, folder / "last.ckpt") if path.is_file()]
    return max(candidates, key=lambda path: path.stat().st_mtime_ns) if candidates else None
