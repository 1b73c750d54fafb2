"""The training step's tallies (machinery/tally.py): one packed vector of terms per step gives the
same epoch means as summing term by term, to the last bit, and the loss watch still names the
first non-finite step and its terms when it reads, however far apart the reads are."""

import math

import pytest
import torch

from autoencoders.machinery import tally
from autoencoders.machinery.tally import EpochMeans, LossWatch, PackedMeans, pack


def steps(count: int, seed: int = 0) -> list[tuple[dict[str, torch.Tensor], int]]:
    """Per-step terms (three scalars, one needing grad as a loss does) and batch sizes, the last one short."""
    generator = torch.Generator().manual_seed(seed)
    found = []
    for step in range(count):
        values = torch.rand(3, generator=generator) * 10
        loss = values[0].clone().requires_grad_()
        found.append(({"loss": loss * 1.0, "recon": values[1], "kl": values[2]}, 256 if step < count - 1 else 88))
    return found


def test_packed_means_are_epoch_means_to_the_last_bit():
    packed, per_term = PackedMeans(), EpochMeans()
    for terms, batch_size in steps(215):
        names, values = pack(terms)
        assert names == ("loss", "recon", "kl") and not values.requires_grad
        packed.update(names, values, batch_size)
        per_term.update(terms, batch_size)
    fast, slow = packed.compute(), per_term.compute()
    assert list(fast) == list(slow) == ["loss", "recon", "kl"]
    assert all(torch.equal(fast[name], slow[name]) for name in slow)
    # and they are the sample-weighted means, by hand in double precision
    by_hand = sum(terms["kl"].item() * size for terms, size in steps(215)) / (214 * 256 + 88)
    assert fast["kl"].item() == pytest.approx(by_hand, rel=1e-6)


def test_packed_means_sum_over_processes_first():
    packed = PackedMeans()
    packed.update(("loss", "kl"), torch.tensor([1.0, 2.0]), 10)
    # another process with 30 samples of loss 3 and kl 4: sums and counts add
    other = torch.tensor([90.0, 120.0, 30.0])
    means = packed.compute(lambda tensor: tensor + other)
    assert means["loss"].item() == pytest.approx(100 / 40) and means["kl"].item() == pytest.approx(140 / 40)


def test_terms_that_change_between_steps_are_refused_clearly():
    packed, watch = PackedMeans(), LossWatch()
    packed.update(("loss", "kl"), torch.tensor([1.0, 2.0]), 4)
    watch.update(("loss", "kl"), torch.tensor([1.0, 2.0]), 0)
    for tally_of_a_step in (packed.update, watch.update):
        with pytest.raises(ValueError, match=r"training terms changed from one step to the next \(loss, kl -> loss\)"):
            tally_of_a_step(("loss",), torch.tensor([1.0]), 1)


def test_the_watch_names_the_first_non_finite_step_however_far_apart_the_reads(monkeypatch):
    monkeypatch.setattr(tally, "ROWS_PER_BLOCK", 8)  # steps stacked into blocks many times between reads
    watch = LossWatch()
    losses = []
    for step in range(40):
        loss = 1.0 + step / 100
        kl = float("inf") if step == 29 else float("nan") if step == 23 else 0.5
        watch.update(("loss", "kl"), torch.tensor([loss, kl]), step)
        losses.append(loss)
    reading = watch.read()
    assert reading.diverged and reading.first_bad_step == 23
    assert reading.bad_terms == pytest.approx({"loss": 1.23, "kl": math.nan}, nan_ok=True)
    assert reading.loss == pytest.approx(1.39) and reading.running_loss == pytest.approx(sum(losses) / 40)


def test_the_watch_reads_the_steps_since_the_last_read_only():
    watch = LossWatch()
    for step in range(5):
        watch.update(("loss",), torch.tensor([float(step)]), step)
    first = watch.read()
    assert (first.running_loss, first.loss, first.diverged) == (2.0, 4.0, False)
    watch.update(("loss",), torch.tensor([10.0]), 5)
    watch.update(("loss",), torch.tensor([20.0]), 6)
    assert (watch.read().running_loss, LossWatch().read().diverged) == (15.0, False)
    # read again with no step between (the epoch's end right after a cadence read): the last loss, a mean of 0
    again = watch.read()
    assert (again.running_loss, again.loss, again.diverged, again.first_bad_step) == (0.0, 20.0, False, None)


def test_a_non_finite_term_on_another_process_stops_this_one_too():
    watch = LossWatch()
    watch.update(("loss",), torch.tensor([1.0]), 0)
    reading = watch.read(lambda flag: flag + 1)  # the other process's flag is 1
    assert reading.diverged and reading.first_bad_step is None and reading.bad_terms == {}
