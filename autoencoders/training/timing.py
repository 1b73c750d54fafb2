"""callbacks=timing: each epoch's wall time, split into training steps, validation and epoch end.

Written to `<run>/timing.json` when training ends: a list with one entry per epoch of this
session, in seconds. scripts/bench_paths.py extends it to interleave other work between steps
(`pause()` keeps that work out of the epoch's times).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L


class EpochTimes(L.Callback):
    """`marks[k]`: epoch k's start, validation start and end, end, and the seconds paused in it.

    Added after the run's own callbacks, its hooks run after the progress bar and the views but
    before the checkpoints (Lightning moves ModelCheckpoint last): checkpoint writes fall in the
    epoch end."""

    def __init__(self, file: str | None = "timing.json") -> None:
        self.file = file
        self.marks: list[dict[str, float]] = []
        self.images_per_epoch = 0
        self.trainer: L.Trainer | None = None

    @contextmanager
    def pause(self) -> Iterator[None]:
        """Time spent in the block is not the epoch's."""
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.marks:
                self.marks[-1]["paused"] += time.perf_counter() - start

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = time.perf_counter()
        if self.marks:
            self.marks[-1]["end"] = now  # the epoch ends where the next starts: checkpoint writes are its end
        self.trainer = trainer
        self.images_per_epoch = len(trainer.train_dataloader.dataset)
        self.marks.append({"epoch": trainer.current_epoch, "start": time.perf_counter(), "paused": 0.0})

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and self.marks:
            self.marks[-1]["val_start"] = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and self.marks:
            self.marks[-1]["val_end"] = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.marks:
            self.marks[-1]["end"] = time.perf_counter()
        if self.file is not None and trainer.is_global_zero and trainer.default_root_dir:
            path = Path(trainer.default_root_dir) / self.file
            path.write_text(json.dumps([self.epoch(k) for k in range(len(self.marks))], indent=2) + "\n")

    @property
    def seconds(self) -> list[float]:
        """Each epoch's own wall time (without the paused time)."""
        return [mark["end"] - mark["start"] - mark["paused"] for mark in self.marks]

    def phase_seconds(self, epochs: slice) -> dict[str, float]:
        """Seconds in training steps, validation and epoch end, summed over the epochs."""
        marks = self.marks[epochs]
        return {
            "train": sum(m.get("val_start", m["end"]) - m["start"] - m["paused"] for m in marks),
            "validation": sum(m.get("val_end", 0.0) - m.get("val_start", 0.0) for m in marks),
            "epoch end": sum(m["end"] - m.get("val_end", m["end"]) for m in marks),
        }

    def epoch(self, k: int) -> dict[str, Any]:
        """Epoch k as timing.json holds it: its number, images, total and per-phase seconds."""
        phases = self.phase_seconds(slice(k, k + 1))
        return {
            "epoch": int(self.marks[k]["epoch"]),
            "images": self.images_per_epoch,
            "seconds": self.seconds[k],
            **{f"{name.replace(' ', '_')}_seconds": value for name, value in phases.items()},
        }
