"""Lightning's own floor (`scripts/bench.py` prints it beside the speed table): the time per step
of `Trainer(barebones=True)`, every feature that may cost speed off, on a trivial model, against a
plain loop over the same model, taking turns. What no configuration of Lightning's loop can go
below; the rest of (c) − (a+) is ours, or Lightning's features we use.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor, nn

from autoencoders.machinery.optim import adam

FLOOR_WIDTH = 16  # the trivial model: one Linear(16, 16) on a batch of 16


class TrivialLoop:
    """A plain loop over the trivial model: forward, MSE to zero, zero_grad, backward, fused Adam."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = nn.Linear(FLOOR_WIDTH, FLOOR_WIDTH)
        self.optimizer = adam(self.model.parameters(), lr=1e-3, device=torch.device("cpu"))
        self.x = torch.randn(FLOOR_WIDTH, FLOOR_WIDTH)

    def steps(self, n: int) -> int:
        for _ in range(n):
            loss = self.model(self.x).square().mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        return n


class Batches:
    """One in-memory batch, `n` times: a loader with no data cost (a list would be several loaders)."""

    def __init__(self, batch: Tensor, n: int) -> None:
        self.batch, self.n = batch, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return (self.batch for _ in range(self.n))


def lightning_floor(steps: int, chunk: int, manual: bool) -> tuple[list[float], list[float]]:
    """Seconds per step of Trainer(barebones=True) on the trivial model and of TrivialLoop,
    taking turns every `chunk` steps (one callback runs the plain loop's turn: its dispatch is
    part of the Lightning figure); per turn, after the first 5 turns as warm-up."""
    import lightning as L

    plain = TrivialLoop()
    lightning_times: list[float] = []
    plain_times: list[float] = []

    class Trivial(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(FLOOR_WIDTH, FLOOR_WIDTH)
            self.automatic_optimization = not manual

        def training_step(self, batch: Tensor, batch_idx: int) -> Tensor | None:
            loss = self.layer(batch).square().mean()
            if self.automatic_optimization:
                return loss
            optimizer = self.optimizers()
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()
            return None

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return adam(self.parameters(), lr=1e-3, device=torch.device("cpu"))

        def train_dataloader(self) -> Batches:
            return Batches(torch.randn(FLOOR_WIDTH, FLOOR_WIDTH), steps)

    class Turns(L.Callback):
        mark = 0.0

        def on_train_start(self, *args: object) -> None:
            self.mark = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            if (batch_idx + 1) % chunk == 0:
                now = time.perf_counter()
                lightning_times.append((now - self.mark) / chunk)
                plain.steps(chunk)
                plain_times.append((time.perf_counter() - now) / chunk)
                self.mark = time.perf_counter()

    trainer = L.Trainer(barebones=True, max_epochs=1, accelerator="cpu", devices=1, callbacks=[Turns()])
    trainer.fit(Trivial())
    return lightning_times[5:], plain_times[5:]
