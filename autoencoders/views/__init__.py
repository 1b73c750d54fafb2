"""The views wing: what goes to TensorBoard (and the other loggers) beyond the loss scalars.

scalars.py      throughput and epoch time
curves.py       the Custom Scalars layout
images.py       image grids: fixed validation images and their reconstructions, prior samples
latents.py      the projector, latent scatter, interpolation and traversal views
hparams.py      the HParams session
tensorboard.py  where the views write and at which step
loggers.py      building the loggers beside TensorBoard; CSV
trackers.py     MLflow and Weights & Biases

`build_callbacks(cfg.logging, hparams=...)` is the one entry point training uses. Every view works
from the datamodule's in-memory tensors rather than the dataloaders, so it sees the same images
every epoch, also when `limit_val_batches` cuts the loaders short.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L

from autoencoders.schema import LoggingSettings
from autoencoders.views.curves import CurveLayout
from autoencoders.views.hparams import HParamsSession
from autoencoders.views.images import ImageGrids
from autoencoders.views.latents import LatentViews
from autoencoders.views.scalars import Throughput


def build_callbacks(
    logging_cfg: Mapping[str, Any], hparams: Mapping[str, Any] | None = None, earlier: Path | None = None
) -> list[L.Callback]:
    """The TensorBoard callbacks for a `logging:` config block (conf/train.yaml).

    `hparams` are run settings outside the model's own hyperparameters (seed, batch size,
    data ...) to show beside them in the HParams tab. `earlier`: the run directory, when this
    session writes elsewhere until it completes (a resume: rundir/attempt.py); the views that
    build on earlier sessions' files (the layout, the projector's list) read them there.
    """
    settings = LoggingSettings.from_config(logging_cfg)
    callbacks: list[L.Callback] = [Throughput(), CurveLayout(earlier), HParamsSession(hparams)]
    if settings.images_every_n_epochs > 0:
        # after_test: once more with the tested checkpoint at the test step, so that the last
        # picture of a run shows the weights its test/* numbers describe (ae-compare --images).
        callbacks.append(ImageGrids(settings.images_every_n_epochs, settings.n_images, after_test=True))
    if settings.projector_points > 0:
        callbacks.append(LatentViews(settings.latents_every_n_epochs, settings.projector_points, earlier=earlier))
    return callbacks
