"""What the training loop keeps on the device between reads: epoch sums, and a watch on the loss.

Nothing here moves a number to the host on its own. On a GPU every `.item()` (or `bool()` of a
tensor) waits for all queued kernels, so the loop reads back once every `log_every_n_steps`
steps and at the end of an epoch, never per step.

A training step's terms are packed into one vector once (`pack`), and both the epoch sums
(`PackedMeans`) and the watch (`LossWatch`) work on it: four small device ops per step
whatever the number of terms (on a CPU each op costs microseconds of dispatch, which a
tutorial-sized network's step notices), where one set of ops per term per tally cost ~20.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

# Sums a tensor over all processes of a run (identity on one device): Lightning's strategy.reduce.
Reduce = Callable[[Tensor], Tensor]


def pack(terms: dict[str, Tensor]) -> tuple[tuple[str, ...], Tensor]:
    """A step's scalar terms as (names, one detached vector), in the order the model gave them."""
    values = torch.stack([value.detach() for value in terms.values()])
    if values.dim() != 1:  # one-element terms of shape (1,)
        values = values.reshape(-1)
    return tuple(terms), values


def _means(names: list[str], packed: Tensor, count: int, reduce: Reduce | None) -> dict[str, Tensor]:
    """Sums over count samples as means; with `reduce`, sums and counts over all processes first."""
    packed = packed.float()
    total = torch.tensor(float(count), device=packed.device)
    if reduce is not None:
        packed, total = reduce(torch.cat([packed, total[None]])).split([len(names), 1])
    return dict(zip(names, packed / total.clamp(min=1)))


class EpochMeans:
    """Sample-weighted means of detached per-batch terms over an epoch; no host sync until read.

    With several processes, `compute` sums the sums and the counts over all of them first, so the
    mean is exact (each process's shard may differ in size; a mean of means would not be).
    Validation and testing use it, whose terms may differ from batch to batch in name."""

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
        return _means(names, torch.stack([self.sums[name].float() for name in names]), self.count, reduce)


class PackedMeans:
    """EpochMeans of training steps, whose terms are the same at every step: one vector of sums,
    two ops per step. Each element is summed exactly as EpochMeans sums its term (the term times
    the batch size, added in turn), so both give the same numbers to the last bit."""

    def __init__(self) -> None:
        self.names: tuple[str, ...] = ()
        self.sums: Tensor | None = None
        self.count = 0

    def update(self, names: tuple[str, ...], values: Tensor, batch_size: int) -> None:
        weighted = values * batch_size
        if self.sums is None:
            self.names, self.sums = names, weighted
        elif names == self.names:
            self.sums = self.sums + weighted
        else:
            raise ValueError(_changed_terms(self.names, names))
        self.count += batch_size

    def compute(self, reduce: Reduce | None = None) -> dict[str, Tensor]:
        if self.sums is None:
            return {}
        return _means(list(self.names), self.sums, self.count, reduce)


def _changed_terms(before: tuple[str, ...], now: tuple[str, ...]) -> str:
    return (
        f"The model's training terms changed from one step to the next ({', '.join(before)} -> {', '.join(now)}). "
        "loss_terms must return the same terms at every training step; return a term as 0 where it does not apply."
    )


# Rows of per-step values kept as separate tensors before they are stacked into one: bounds
# the number of small tensors alive when reads are far apart (a large log_every_n_steps).
ROWS_PER_BLOCK = 256


class LossWatch:
    """The training terms of every step, watched on the device.

    Per step it adds the terms to a running sum (one op) and keeps the step's vector; nothing
    is checked there. `read` then brings back, in one transfer, the running mean of the loss
    since the last read, the step's own loss, and the first step since then at which any term
    was non-finite, with the terms of that step.
    """

    def __init__(self) -> None:
        self.names: tuple[str, ...] = ()
        self.since: Tensor | None = None  # sum of each term since the last read
        self.steps = 0
        self.rows: list[Tensor] = []  # each step's values since the last read ...
        self.blocks: list[Tensor] = []  # ... the older ones stacked, ROWS_PER_BLOCK at a time
        self.row_steps: list[int] = []  # the step of each row, blocks' and rows' in order
        self.last: Tensor | None = None  # the latest step's values

    def update(self, names: tuple[str, ...], values: Tensor, step: int) -> None:
        if self.since is None:
            self.names, self.since = names, torch.zeros_like(values)
        elif names != self.names:
            raise ValueError(_changed_terms(self.names, names))
        self.since = self.since + values
        self.steps += 1
        self.last = values
        self.rows.append(values)
        self.row_steps.append(step)
        if len(self.rows) == ROWS_PER_BLOCK:
            self.blocks.append(torch.stack(self.rows))
            self.rows = []

    def read(self, reduce: Reduce | None = None) -> Reading:
        """What the steps since the last read left, brought to the host in one transfer. With
        `reduce` (several processes), a non-finite term on any process counts for all, so that
        every process stops at the same step. Read again with no step between, the running mean
        is 0 and the loss the last step's."""
        if self.since is None:
            return Reading(float("nan"), float("nan"), False, None, {})
        blocks = [*self.blocks, torch.stack(self.rows)] if self.rows else self.blocks
        values = torch.cat(blocks) if blocks else self.last[None]  # one row per step since the last read
        bad_rows = ~torch.isfinite(values).all(1)
        first = bad_rows.to(torch.uint8).argmax()  # the first non-finite row (0 when there is none)
        bad = bad_rows[first].float()
        if reduce is not None:
            bad = reduce(bad)
        head = torch.stack([(self.since[0] / max(self.steps, 1)).float(), values[-1, 0].float(), bad, first.float()])
        running, last, bad, first, *row = torch.cat([head, values[first].float()]).tolist()  # the one transfer
        steps = self.row_steps
        self.since, self.steps = torch.zeros_like(self.since), 0
        self.rows, self.blocks, self.row_steps = [], [], []
        if steps and not all(math.isfinite(value) for value in row):
            return Reading(running, last, True, steps[int(first)], dict(zip(self.names, row)))
        return Reading(running, last, bool(bad), None, {})  # bad: another process went non-finite


@dataclass(frozen=True)
class Reading:
    """One read of a LossWatch."""

    running_loss: float  # mean training loss of the steps since the previous read
    loss: float  # the loss of the latest step
    diverged: bool  # a term went non-finite (on any process)
    first_bad_step: int | None  # where, when it was on this process
    bad_terms: dict[str, float]  # the terms of that step
