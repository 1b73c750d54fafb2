"""The shared loop for models that update several parameter groups in turn on every batch.

An adversarial model trains a discriminator beside its autoencoder: each batch runs phases
(the aae: reconstruction, then discriminator, then generator), each with its own loss and its
own optimizer, each computed after the previous phase's update. That is Lightning's manual
optimisation, and `PhasedAutoencoder` keeps every guarantee of the automatic loop
(machinery/base.py) for it:

- One step is one batch. Lightning counts every `LightningOptimizer.step()` in `global_step`
  under manual optimisation; only the first optimizer (the autoencoder's) steps through it, the
  others through the strategy's `optimizer_step` (the same precision and strategy handling,
  without the count). So `trainer.max_steps`, `log_every_n_steps` (the loss watch,
  `train/loss_step`), image steps, the purge step on resume, the DDP stop cadence and the
  cosine schedule's length (`estimated_stepping_batches`) all count batches, as for every model.
- Schedules: `model.lr_schedule` applies to every optimizer, each stepped here once per batch.
- Gradient clipping: `++trainer.gradient_clip_val` (and `gradient_clip_algorithm`) are handed to
  the model by the trainer builder (Lightning refuses them under manual optimisation) and applied
  to each phase with `self.clip_gradients`. Gradient accumulation is refused before training
  (training.trainer.check_trainer_fits_model).
- Epoch means, the loss watch (no host sync per step) and the divergence stop naming the term
  are the base loop's, over the union of the phases' terms. Checkpoints hold every optimizer and
  schedule; Lightning restores them all on resume.

Kept apart from base.py, which the one-optimizer models train through unchanged: Lightning's
automatic loop was faster for them (docs/objectives.md, "The two loops").
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from autoencoders.machinery.base import AutoencoderBase
from autoencoders.machinery.inference import condition
from autoencoders.machinery.optim import LR_SCHEDULES, adam

# One phase of a training step: the name of the optimizer it updates, the loss that optimizer
# minimises, and the batch-mean terms it logs.
Phase = tuple[str, Tensor, dict[str, Tensor]]


class PhasedAutoencoder(AutoencoderBase):
    """A model trained by several optimizers per batch. Subclasses define `optimizer_settings`
    (name -> parameters and Adam settings; the first is the autoencoder's) and `training_phases`."""

    def __init__(self, **shared: Any) -> None:
        super().__init__(**shared)
        self.automatic_optimization = False
        # ++trainer.gradient_clip_val / gradient_clip_algorithm, set by the trainer builder.
        self.gradient_clipping: dict[str, Any] = {}

    def optimizer_settings(self) -> dict[str, dict[str, Any]]:
        """name -> {"params": [...], and Adam's lr, betas, weight_decay where they differ from the
        model's}. The first entry is the autoencoder, stepped once per batch: the run's step."""
        raise NotImplementedError

    def training_phases(self, x: Tensor, *condition: Tensor) -> Iterator[Phase]:
        """The batch's phases in update order. Each is backpropagated and its optimizer stepped
        before the next is drawn, so a phase sees the parameters the previous ones updated."""
        raise NotImplementedError

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, labels = batch
        step = self.global_step  # this batch's number: the first optimizer's step below adds 1
        names = self._optimizer_names
        optimizers = dict(zip(names, self._as_list(self.optimizers())))
        terms: dict[str, Tensor] = {}
        for name, loss, phase_terms in self.training_phases(x, *condition(self, labels)):
            optimizer = optimizers[name]
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            self.clip_gradients(optimizer, **self.gradient_clipping)
            if name == names[0]:
                optimizer.step()  # counted: global_step is the number of batches trained
            else:
                self.trainer.strategy.optimizer_step(optimizer.optimizer, closure=_no_closure, model=self)
            terms.update(phase_terms)
        for scheduler in self._as_list(self.lr_schedulers()):
            scheduler.step()
        self._after_training_step(terms, len(x), step)

    @staticmethod
    def _as_list(value: Any) -> list:
        """Lightning returns one optimizer (scheduler) bare, several as a list, none as None."""
        if value is None:
            return []
        return list(value) if isinstance(value, (list, tuple)) else [value]

    def configure_optimizers(self) -> Any:
        optimizers = []
        self._optimizer_names = list(self.optimizer_settings())  # in the order Lightning keeps them
        for settings in self.optimizer_settings().values():
            options = {"weight_decay": self.hparams.weight_decay, **settings}
            params, lr = options.pop("params"), options.pop("lr", self.hparams.lr)
            optimizers.append(adam(params, lr, self.device, **options))
        schedule = LR_SCHEDULES[self.hparams.lr_schedule]
        if schedule is None:
            return optimizers
        # One multiplier per optimizer, each stepped once per batch over all batches of the run.
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        schedulers = [
            {
                "scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(total_steps)),
                "name": _lr_name(name, first=index == 0),
            }
            for index, (name, optimizer) in enumerate(zip(self._optimizer_names, optimizers))
        ]
        return optimizers, schedulers


# As for AutoencoderBase.training_step: Lightning reads the signature every step.
PhasedAutoencoder.training_step.__signature__ = inspect.signature(PhasedAutoencoder.training_step)


def _no_closure() -> None:
    """The phase's backward has run already (manual_backward)."""


def _lr_name(optimizer: str, first: bool) -> str:
    """The learning-rate tag of an optimizer's schedule: the autoencoder's is `lr-Adam`, as for
    every other model, so runs compare on one tag; the others' carry their names."""
    return "lr-Adam" if first else f"lr-Adam/{optimizer}"
