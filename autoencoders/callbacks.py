"""What goes to TensorBoard beyond the loss scalars: throughput, image grids, the HParams session.

`build_callbacks(cfg.logging, hparams=...)` is the one entry point `train()` uses; the latent
views (projector, scatter plot, interpolation, traversal) live in `latents.py`. Every view works
from the datamodule's in-memory tensors rather than the dataloaders, so it sees the same images
every epoch, also when `limit_val_batches` cuts the loaders short.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter

from autoencoders.errors import ConfigError


# --- helpers shared with latents.py ----------------------------------------------------------
def tensorboard(trainer: L.Trainer) -> SummaryWriter | None:
    """The run's SummaryWriter, or None when there is no TensorBoard logger (or not rank 0)."""
    if not trainer.is_global_zero:
        return None
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


@contextmanager
def evaluating(module: L.LightningModule) -> Iterator[None]:
    """Eval mode without gradients, restoring the module's mode afterwards (hooks run in both)."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def to_module(tensor: Tensor, module: L.LightningModule) -> Tensor:
    """On the module's device and in its dtype: hooks bypass Lightning's input conversion."""
    return tensor.to(device=module.device, dtype=module.dtype)


def epoch_step(trainer: L.Trainer) -> int:
    """The step of the epoch's last batch, where Lightning logs epoch metrics (train/loss, val/*).

    Images use global steps like the scalars, not epochs: then they share the scalars' x axis,
    and a resumed run's purge_step drops the images of the epochs it repeats, too.
    """
    return max(trainer.global_step - 1, 0)


def is_due(epoch: int, every_n_epochs: int) -> bool:
    """True after every `every_n_epochs`-th epoch (epochs 0-based, as Lightning counts them)."""
    return every_n_epochs > 0 and (epoch + 1) % every_n_epochs == 0


def grid(images: Tensor, nrow: int) -> Tensor:
    """A (3, H, W) grid of images in [0, 1], white lines between them."""
    from torchvision.utils import make_grid

    return make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)


# --- scalars ---------------------------------------------------------------------------------
class Throughput(L.Callback):
    """`train/images_per_s` (training batches only) and `train/epoch_time_s` (wall clock of the
    whole epoch, validation and logging included), one point per epoch."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Also here: a run resumed mid-epoch starts without on_train_epoch_start.
        self.on_train_epoch_start(trainer, pl_module)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = self.last_batch_end = time.perf_counter()
        self.images = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        # On a GPU this clock runs ahead of queued kernels by at most a step or two, which an
        # epoch of steps averages out; a synchronize here would cost more than it corrects.
        self.images += len(batch[0] if isinstance(batch, (list, tuple)) else batch)
        self.last_batch_end = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        train_time = self.last_batch_end - self.start
        metrics = {"train/epoch_time_s": time.perf_counter() - self.start}
        if train_time > 0:
            metrics["train/images_per_s"] = self.images / train_time
        # Straight to the loggers: timings are not results, so they stay out of callback_metrics
        # (and metrics.json), like base.py's train/loss_step.
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=epoch_step(trainer))


# --- images ----------------------------------------------------------------------------------
class ImageGrids(L.Callback):
    """`images/reconstructions`: fixed validation images, each row of originals above the row of
    their reconstructions; `images/samples` (models with `sample`): decodings of one fixed noise
    batch. Every `every_n_epochs` validation epochs, at the epoch's last step."""

    def __init__(self, every_n_epochs: int = 1, n_images: int = 16, seed: int = 0) -> None:
        self.every_n_epochs, self.n_images, self.seed = every_n_epochs, n_images, seed
        self.per_row = min(n_images, 8)
        self.noise: Tensor | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = tensorboard(trainer)
        if writer is None or trainer.sanity_checking or not is_due(trainer.current_epoch, self.every_n_epochs):
            return
        if getattr(trainer, "datamodule", None) is None:
            return
        images = trainer.datamodule.val_set.tensors[0][: self.n_images]
        with evaluating(pl_module):
            reconstructions = pl_module.reconstruct(to_module(images, pl_module)).float().cpu()
            # Originals and reconstructions in alternating rows, so each pair is one above the other.
            rows = [part for start in range(0, len(images), self.per_row)
                    for part in (images[start : start + self.per_row], reconstructions[start : start + self.per_row])]  # fmt: skip
            writer.add_image("images/reconstructions", grid(torch.cat(rows), self.per_row), epoch_step(trainer))
            if callable(getattr(pl_module, "sample", None)):
                # decode(fixed z), not sample(n): the same noise every epoch, so epochs compare.
                if self.noise is None:
                    generator = torch.Generator().manual_seed(self.seed)
                    self.noise = torch.randn(self.n_images, pl_module.hparams.latent_dim, generator=generator)
                samples = pl_module.decode(to_module(self.noise, pl_module))
                writer.add_image("images/samples", grid(samples, self.per_row), epoch_step(trainer))


# --- hparams ---------------------------------------------------------------------------------
def flatten_hparams(params: Mapping[str, Any], prefix: str = "") -> dict[str, float | int | str | bool]:
    """Nested hyperparameters as the scalars and strings the HParams plugin accepts."""
    flat: dict[str, float | int | str | bool] = {}
    for name, value in params.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(flatten_hparams(value, f"{key}."))
        elif isinstance(value, (list, tuple)):
            flat[key] = "x".join(str(item) for item in value)  # input_shape [1, 28, 28] -> "1x28x28"
        elif isinstance(value, (bool, int, float, str)):
            flat[key] = value
        elif isinstance(value, Tensor) and value.numel() == 1:
            flat[key] = value.item()
        else:
            flat[key] = str(value)
    return flat


class HParamsSession(L.Callback):
    """One HParams session per run, written after testing so that the final metrics exist.

    Lightning's own log_hyperparams at fit start writes nothing here (train.py's logger has
    default_hp_metric=False and no metrics are passed), so this is the run's only session and
    there is no -1 placeholder. Metric values are not copied: the plugin reads each metric's
    last scalar in the run (val/* of the last epoch, test/* of the tested checkpoint).

    We write the session start and end but no `Experiment` summary: TensorBoard takes the first
    Experiment it finds as the column list for the whole logdir, which would hide the
    hyperparameters and loss terms of every other model (beta, test/kl ...) in `outputs/`.
    Without one it takes the union of all runs' hyperparameters and scalar tags.
    """

    def __init__(self, extra: Mapping[str, Any] | None = None) -> None:
        self.extra = dict(extra or {})
        self.written = False

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = tensorboard(trainer)
        if writer is None or self.written:
            return
        from torch.utils.tensorboard.summary import hparams

        # No max_epochs: extending a finished run by resuming would leave the first value showing
        # (TensorBoard keeps a tag's first metadata); the `epoch` metric column says it instead.
        params = flatten_hparams({**pl_module.hparams, **self.extra})
        _, session_start, session_end = hparams(params, metric_dict={})  # metrics only enter the Experiment
        file_writer = writer._get_file_writer()  # add_hparams would open a second run directory
        file_writer.add_summary(session_start)
        file_writer.add_summary(session_end)
        writer.flush()
        self.written = True


# --- the entry point -------------------------------------------------------------------------
def build_callbacks(logging_cfg: Mapping[str, Any], hparams: Mapping[str, Any] | None = None) -> list[L.Callback]:
    """The TensorBoard callbacks for a `logging:` config block (conf/train.yaml).

    `hparams` are run settings outside the model's own hyperparameters (seed, batch size,
    data ...) to show beside them in the HParams tab.
    """
    from autoencoders.latents import LatentViews

    settings = {"images_every_n_epochs": 1, "n_images": 16, "latents_every_n_epochs": 0, "projector_points": 2000}
    settings.update(logging_cfg or {})
    for key, value in settings.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if key == "n_images" else 0):
            allowed = "a positive integer" if key == "n_images" else "a non-negative integer (0 = off / only at the end)"
            raise ConfigError(f"logging.{key} must be {allowed}, got {value!r}.")
    callbacks: list[L.Callback] = [Throughput(), HParamsSession(hparams)]
    if settings["images_every_n_epochs"] > 0:
        callbacks.append(ImageGrids(settings["images_every_n_epochs"], settings["n_images"]))
    if settings["projector_points"] > 0:
        callbacks.append(LatentViews(settings["latents_every_n_epochs"], settings["projector_points"]))
    return callbacks
