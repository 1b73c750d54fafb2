"""Callbacks that tests name by `_target_`, as a user names their own code: they run in every
process of a run, the DDP workers included."""

from __future__ import annotations

import json
import os
from pathlib import Path

from lightning.pytorch.callbacks import Callback

from tests.helpers import listening_sockets


class ListeningProbe(Callback):
    """Writes the TCP sockets its process listens on, once training starts (every process has met
    the others by then), to `<folder>/listening.<global rank>.json`."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_train_start(self, trainer, pl_module) -> None:
        sockets = listening_sockets(os.getpid())
        Path(self.folder, f"listening.{trainer.global_rank}.json").write_text(json.dumps(sockets))
