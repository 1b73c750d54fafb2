"""What the training loop keeps on the device between reads: epoch sums, and a watch on the loss.

Nothing here moves a number to the host on its own. On a GPU every `.item()` (or `bool()` of a
tensor) waits for all queued kernels, so the loop reads back once every `log_every_n_steps`
steps and at the end of an epoch, never per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

# Sums a tensor over all processes of a run (identity on one device): Lightning's strategy.reduce.
Reduce = Callable[[Tensor], Tensor]


class EpochMeans:
    """Sample-weighted means of detached per-batch terms over an epoch; no host sync until read.

    With several processes, `compute` sums the sums and the counts over all of them first, so the
    mean is exact (each process's shard may differ in size; a mean of means would not be)."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.count = 0

    def update(self, terms: dict[str, Tensor], batch_size: int) -> None:
        for name, value in terms.items():
            weighted = value.detach() * batch_size
            self.sums[name] = self.sums[name] + weighted if name in self.sums else weighted
        self.count += batch_size

    def compute(self, reduce: Reduce | None = None) -> dict[str, Tensor]:
        if not self.sums:
            return {}
        names = list(self.sums)
        packed = torch.stack([self.sums[name].float() for name in names])
        count = torch.tensor(float(self.count), device=packed.device)
        if reduce is not None:
            packed, count = reduce(torch.cat([packed, count[None]])).split([len(names), 1])
        return dict(zip(names, packed / count.clamp(min=1)))


class LossWatch:
    """The training terms of every step, watched on the device.

    Per step it adds the loss to a running sum and notes the first step at which any term was
    non-finite, with the terms of that step, using only device ops (torch.where). `read` then
    brings back, in one transfer, the running mean since the last read, the step's own loss, and
    the first non-finite step with its terms.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self.loss_sum: Tensor | None = None

    def update(self, terms: dict[str, Tensor], step: int) -> None:
        values = torch.stack([value.detach().float().reshape(()) for value in terms.values()])
        if self.loss_sum is None:
            self.names = list(terms)
            self.loss_sum = torch.zeros((), device=values.device)
            self.steps = torch.zeros((), device=values.device)
            self.bad_step = torch.full((), -1.0, device=values.device)
            self.bad_values = torch.zeros_like(values)
        first_bad = ~torch.isfinite(values).all() & (self.bad_step < 0)
        self.bad_step = torch.where(first_bad, float(step), self.bad_step)
        self.bad_values = torch.where(first_bad, values, self.bad_values)
        self.loss_sum = self.loss_sum + values[0]
        self.steps = self.steps + 1
        self.last_loss = values[0]

    def read(self, reduce: Reduce | None = None) -> Reading:
        """What the steps since the last read left, brought to the host in one transfer. With
        `reduce` (several processes), a non-finite term on any process counts for all, so that
        every process stops at the same step."""
        if self.loss_sum is None:
            return Reading(float("nan"), float("nan"), False, None, {})
        bad = (self.bad_step >= 0).float()
        if reduce is not None:
            bad = reduce(bad)
        head = torch.stack([self.loss_sum / self.steps.clamp(min=1), self.last_loss, bad, self.bad_step])
        running, last, bad, bad_step, *values = torch.cat([head, self.bad_values]).tolist()  # the one transfer
        self.loss_sum, self.steps = torch.zeros_like(self.loss_sum), torch.zeros_like(self.steps)
        first = int(bad_step) if bad_step >= 0 else None  # None: another process went non-finite
        return Reading(running, last, bool(bad), first, dict(zip(self.names, values)) if first is not None else {})


@dataclass(frozen=True)
class Reading:
    """One read of a LossWatch."""

    running_loss: float  # mean training loss of the steps since the previous read
    loss: float  # the loss of the latest step
    diverged: bool  # a term went non-finite (on any process)
    first_bad_step: int | None  # where, when it was on this process
    bad_terms: dict[str, float]  # the terms of that step
