"""The run's session in TensorBoard's HParams tab."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
from torch import Tensor

from autoencoders.internals import file_writer
from autoencoders.nets.families import family_name
from autoencoders.views.loggers import log_hyperparams
from autoencoders.views.tensorboard import tensorboard


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


def named_network(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameters with the network as a column people read: `net` is the family's name
    (mlp, conv ...) or the user's class path, and its sizes `net.<key>` (not `net._target_`)."""
    net = hparams.get("net")
    if not isinstance(net, Mapping):
        return dict(hparams)
    sizes = {f"net.{key}": value for key, value in net.items() if key != "_target_"}
    return {**{key: value for key, value in hparams.items() if key != "net"}, "net": family_name(net), **sizes}


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
        params = flatten_hparams({**named_network(pl_module.hparams), **self.extra})
        _, session_start, session_end = hparams(params, metric_dict={})  # metrics only enter the Experiment
        events = file_writer(writer)  # add_hparams would open a second run directory
        events.add_summary(session_start)
        events.add_summary(session_end)
        writer.flush()
        log_hyperparams(trainer.loggers, self.extra)  # the loggers beside TensorBoard
        self.written = True
