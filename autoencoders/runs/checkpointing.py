"""How training writes checkpoints: whole or not at all, under fixed names, surviving a moved run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoint files written whole or not at all: a temporary file beside the target, flushed
    to disk, then renamed over it. A full disk (ENOSPC) leaves the previous checkpoint intact
    instead of a truncated one that no resume can load."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with temporary.open("wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that never versions its file name (best.ckpt stays best.ckpt) and keeps its
    best score when the run directory was moved or copied before a resume (Lightning's own forgets
    it then, and the next epoch would count as a new best whatever its loss)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(enable_version_counter=False, **kwargs)

    @property
    def state_key(self) -> str:
        # The key Lightning's own class uses, so checkpoints written before this class still restore it.
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved_dir = state_dict.get("dirpath")
        if saved_dir is not None and self.dirpath is not None and Path(saved_dir) != Path(self.dirpath):
            moved = lambda path: str(Path(self.dirpath) / Path(path).name) if path else path  # noqa: E731
            state_dict = {**state_dict, "dirpath": self.dirpath,
                          "best_model_path": moved(state_dict.get("best_model_path")),
                          "kth_best_model_path": moved(state_dict.get("kth_best_model_path")),
                          "last_model_path": moved(state_dict.get("last_model_path")),
                          "best_k_models": {moved(path): score for path, score in (state_dict.get("best_k_models") or {}).items()}}  # fmt: skip
        super().load_state_dict(state_dict)
