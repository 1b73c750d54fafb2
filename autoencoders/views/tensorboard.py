"""Where the views write: the run's logger and SummaryWriter, the step an epoch's views go to, image grids."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter

from autoencoders.internals import open_writer


class SessionLogger(TensorBoardLogger):
    """A TensorBoardLogger that writes one event file per session: fit, test and evaluation share
    it, and `close()` ends it when the session does.

    Lightning finalizes its loggers after fit and again after test, and the stock logger closes
    its SummaryWriter there, so the next write opens another event file. TensorBoard reads a run's
    files in name order, and files one process opens within a second are told apart by an
    unpadded counter that sorts `.10` before `.9`: the later file would be read first, and the
    restart marker at the head of the session's first file would then drop everything it held
    (the test scores, the last images)."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        writer = open_writer(self)
        if writer is not None:
            writer.flush()
        if status == "success":
            self.save()  # hparams.yaml

    @rank_zero_only
    def close(self) -> None:
        writer = open_writer(self)
        if writer is not None:
            writer.close()


def tensorboard(trainer: L.Trainer) -> SummaryWriter | None:
    """The run's SummaryWriter, or None when there is no TensorBoard logger (or not rank 0)."""
    if not trainer.is_global_zero:
        return None
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


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
