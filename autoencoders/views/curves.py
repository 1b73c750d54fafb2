"""TensorBoard's Custom Scalars tab: each loss term's train and val curves on one chart.

The Scalars tab draws `train/recon` and `val/recon` on cards of their own; a run's layout puts
them on one chart, so over- and underfitting show at a glance. TensorBoard merges the layouts of
all runs in a logdir by category and chart title, so a sweep of VAEs and plain autoencoders
shows one `loss` chart for all and a `kl` chart for the VAEs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lightning as L

from autoencoders.views.tensorboard import tensorboard

CATEGORY = "train and val"
STAGES = ("train", "val")


def loss_terms(metric_names: Iterable[str]) -> list[str]:
    """The terms a model trains with, from its logged metric names: `loss` first, then the
    others in the order logged ("train/recon" -> "recon"). Validation-only values (val/mse,
    val/kl_dim/3) have no training curve to compare with, so they get no chart."""
    terms = [name.split("/", 1)[1] for name in metric_names if name.startswith("train/")]
    return sorted(dict.fromkeys(terms), key=lambda term: term != "loss")


def layout(terms: list[str]) -> dict[str, dict[str, list[Any]]]:
    """SummaryWriter's layout: one multiline chart per term with its train and val tags.

    The patterns are anchored regular expressions (TensorBoard matches them at the start only),
    so the chart of `train/loss` does not also draw `train/loss_step`."""
    return {CATEGORY: {term: ["Multiline", [f"^{stage}/{re.escape(term)}$" for stage in STAGES]] for term in terms}}


def has_layout(log_dir: str | Path) -> bool:
    """Whether an event file of the run directory already holds a layout (a resumed or restarted run).

    Read from the files, not from a flag in the checkpoint: neither TensorBoard's server nor its
    EventAccumulator drops an earlier layout when a resume purges the steps it repeats, so any
    layout written before is still shown, whichever checkpoint the run resumed from."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.custom_scalar.metadata import CONFIG_SUMMARY_TAG

    for path in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            if any(value.tag == CONFIG_SUMMARY_TAG for value in event.summary.value):
                return True
    return False


class CurveLayout(L.Callback):
    """Writes the run directory's Custom Scalars layout once, as soon as the model's terms are
    known: at the start of the second epoch (the first epoch's train/* are logged after its
    validation), or at the end of training for a one-epoch run. A resumed run whose directory
    has a layout already writes none (`earlier`: the run directory, when the session writes
    elsewhere until it completes)."""

    def __init__(self, earlier: Path | None = None) -> None:
        self.written = False
        self.earlier = earlier

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write(trainer)

    def write(self, trainer: L.Trainer) -> None:
        writer = tensorboard(trainer)
        terms = loss_terms(trainer.callback_metrics)
        if self.written or writer is None or not terms:
            return
        writer.flush()  # so that has_layout sees this process's own events too
        if not has_layout(writer.get_logdir()) and not (self.earlier is not None and has_layout(self.earlier)):
            writer.add_custom_scalars(layout(terms))
            writer.flush()
        self.written = True
