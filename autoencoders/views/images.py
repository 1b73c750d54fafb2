"""Image grids of every epoch: fixed validation images and their reconstructions, prior samples."""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

from autoencoders.machinery.contract import GridSampler, Sampler, prior_of
from autoencoders.machinery.inference import condition, evaluating, to_module
from autoencoders.machinery.priors import PRIORS
from autoencoders.views.loggers import log_grid
from autoencoders.views.tensorboard import epoch_step, grid, is_due, tensorboard


def log_image(trainer: L.Trainer, writer: object, tag: str, image: Tensor, step: int) -> None:
    """An image grid to TensorBoard and to every other logger that holds images."""
    writer.add_image(tag, image, step)
    log_grid(trainer.loggers, tag, image, step)


def samples_grid(model: L.LightningModule, n_images: int, columns: int, seed: int) -> Tensor | None:
    """The images/samples grid's images for a model that samples, drawn with a generator seeded by
    `seed` (the same draws every epoch, so epochs compare): the model's own `sample_grid` where it
    has one (the vqvae: its code prior; the cvae: one row per class; the hvae: top-down), else the
    decodings of n_images draws from its prior p(z) (N(0, I) for a model that declares none).
    None for a model without `sample`. Call in eval mode, without gradients."""
    generator = torch.Generator().manual_seed(seed)
    if isinstance(model, GridSampler):
        return model.sample_grid(n_images, columns, generator)
    if not isinstance(model, Sampler):
        return None
    prior = prior_of(model) or PRIORS["normal"]
    return model.decode(to_module(prior.sample((n_images, model.hparams.latent_dim), generator), model))


class ImageGrids(L.Callback):
    """`images/reconstructions`: fixed validation images, each row of originals above the row of
    their reconstructions; `images/samples` (models with `sample`): `samples_grid`, with a fixed
    seed. Every `every_n_epochs` validation epochs, at the epoch's last step, and with
    `after_test` once more after testing, at the test step (ae-eval, which runs no validation)."""

    def __init__(self, every_n_epochs: int = 1, n_images: int = 16, seed: int = 0, after_test: bool = False) -> None:
        self.every_n_epochs, self.n_images, self.seed, self.after_test = every_n_epochs, n_images, seed, after_test
        self.per_row = min(n_images, 8)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and is_due(trainer.current_epoch, self.every_n_epochs):
            self.draw(trainer, pl_module, epoch_step(trainer))

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.after_test:
            self.draw(trainer, pl_module, trainer.global_step)

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, step: int) -> None:
        writer = tensorboard(trainer)
        if writer is None or getattr(trainer, "datamodule", None) is None:
            return
        images, labels = trainer.datamodule.pixels("val", slice(0, self.n_images))
        with evaluating(pl_module):
            given = condition(pl_module, labels)
            reconstructions = pl_module.reconstruct(to_module(images, pl_module), *given).float().cpu()
            # Originals and reconstructions in alternating rows, so each pair is one above the other.
            rows = [
                part
                for start in range(0, len(images), self.per_row)
                for part in (images[start : start + self.per_row], reconstructions[start : start + self.per_row])
            ]
            log_image(trainer, writer, "images/reconstructions", grid(torch.cat(rows), self.per_row), step)
            samples = samples_grid(pl_module, self.n_images, self.per_row, self.seed)
            if samples is not None:
                log_image(trainer, writer, "images/samples", grid(samples, self.per_row), step)
