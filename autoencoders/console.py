"""What a run shows on the console and saves in its log: where log lines go (the console from
the start, the run's train.log once the run holds its directory, so a second process that is
refused never writes into a live run's log), the progress bar during training, and the table of
final metrics a finished run or evaluation prints.

One log format for ae-train and ae-eval. Hydra's own job logging is off (conf/train.yaml); these
functions take its place.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
RUN_LOG = "train.log"

# Lightning's advertisements, dropped by their exact text (other messages of its logger stay).
ADVERTISEMENTS = (
    "💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]",
    "💡 Tip: For seamless cloud uploads and versioning, try installing [litmodels]",
)

# Warnings about other libraries' internals that a user of ae-train cannot act on, by exact text.
UNACTIONABLE_WARNINGS = (
    # lightning/pytorch/utilities/_pytree.py on torch >= 2.9
    r"`isinstance\(treespec, LeafSpec\)` is deprecated, use `isinstance\(treespec, TreeSpec\) and treespec.is_leaf\(\)` instead\.",
    # under DDP our epoch values are exact already: sums and counts are added over the processes
    r"It is recommended to use `self\.log\('[^']+', \.\.\., sync_dist=True\)` when logging on epoch level in "
    r"distributed setting to accumulate the metric across devices\.",
    # a resumed run writes into its own checkpoints/ folder on purpose
    r"Checkpoint directory .* exists and is not empty\.",
    # batches are slices of in-memory tensors (data/datamodule.py): worker processes would only copy them
    r"The '(train|val|test)_dataloader' does not have many workers which may be a bottleneck\. Consider increasing "
    r"the value of the `num_workers` argument` to `num_workers=\d+` in the `DataLoader` to improve performance\.",
)


def log_to_console() -> None:
    """INFO and above on stderr, each message once, once per process (later calls change nothing)."""
    root = logging.getLogger()
    if not any(isinstance(handler, _Stderr) for handler in root.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    route_lightning_logs_through_root()
    for message in UNACTIONABLE_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


class _Stderr(logging.StreamHandler):
    """A handler on whatever sys.stderr is when a line is written (test runners replace it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def route_lightning_logs_through_root() -> None:
    """Lightning gives its loggers console handlers of their own; ours on the root logger already
    print and save every record, so without this each Lightning message shows twice."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                logger.removeHandler(handler)
        logger.propagate = True
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(existing, _DropAdvertisements) for existing in rank_zero.filters):
        rank_zero.addFilter(_DropAdvertisements())


class _DropAdvertisements(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(ADVERTISEMENTS)


@contextmanager
def log_to_file(run_dir: Path) -> Iterator[None]:
    """Also append every log line to <run_dir>/train.log while the block runs."""
    handler = logging.FileHandler(Path(run_dir) / RUN_LOG)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger().addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def print_metrics(title: str, metrics: Mapping[str, float], footer: str) -> None:
    """A rich table of the val/ and test/ metrics on stderr, then `footer` on a line of its own.

    Per-dimension KL (`val/kl_dim/<j>`) stays in TensorBoard: 32 rows would bury the rest.
    """
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric", style="cyan")
    table.add_column("value", justify="right", style="green")
    for name, value in metrics.items():
        if name.startswith(("val/", "test/")) and "/kl_dim/" not in name:
            table.add_row(name, f"{value:.6g}")
    console = Console(stderr=True)
    console.print(table)
    console.print(footer, soft_wrap=True)  # a path must stay on one line, even when piped


class RunProgressBar(TQDMProgressBar):
    """Lightning's bar, showing the running training loss (the model reads it back from the
    device every `trainer.log_every_n_steps` steps, so showing it costs no extra sync) and
    without the logger's version number, which is always empty here."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        running = pl_module.running_loss  # declared by the model contract (machinery/contract.py)
        if running is not None:
            metrics["loss"] = f"{running:.4g}"
        return metrics
