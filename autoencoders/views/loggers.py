"""The run's loggers beside TensorBoard: CSV, MLflow and Weights & Biases (conf/logger/, docs/loggers.md).

TensorBoard is always the first logger (views/tensorboard.SessionLogger): the run directory's
contract, `ae-compare --images`, the HParams tab and the projector read its event files. The
others come from the `logger:` block, one `_target_` entry each (a function of this module or of
views/trackers.py), built with the run's `RunContext`. Every write the run makes goes through
`trainer.loggers`, so each of them gets the same scalars at the same steps; images go to the ones
that hold images (`log_grid`); `finish_run` hands each the run's end (status, final metrics, files).

A logger that cannot be reached fails the run at start-up (its factory probes it); one that fails
later is reported once and then left out (`Reported`): the run directory's own record (events,
metrics.json, checkpoints) does not depend on it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

from autoencoders.errors import ConfigError

log = logging.getLogger("autoencoders")


@dataclass(frozen=True)
class RunContext:
    """What a logger needs to know about the run it logs (training/run_loggers.py fills it in)."""

    run_dir: Path
    output_root: Path
    experiment: str  # one per sweep: the sweep directory's name; "runs" for single runs
    run_name: str
    params: Mapping[str, Any] = field(default_factory=dict)  # the flattened config: the run's parameters
    previous: Mapping[str, Any] = field(default_factory=dict)  # metrics.json's `loggers` of earlier sessions
    purge_step: int = 0  # a resume's checkpoint step: the points from here on are logged again
    resume_overrides: tuple[str, ...] | None = None  # None: a new run
    resume_number: int = 0
    write_dir: Path | None = None  # where a logger's files go until the attempt completes (a resume's)

    @property
    def files_dir(self) -> Path:
        """Where a logger that writes files writes them: the run directory, or a resume's attempt folder."""
        return self.write_dir or self.run_dir


def build_loggers(node: Mapping[str, Any] | None, context: RunContext) -> dict[str, Logger]:
    """The loggers of a `logger:` block (conf/logger/*.yaml), by name, in the block's order."""
    from autoencoders.rundir.loading import instantiate

    loggers = {}
    for name, entry in (node or {}).items():
        if not isinstance(entry, Mapping) or "_target_" not in entry:
            raise ConfigError(
                f"logger.{name} is not a logger: each entry of the logger block is a mapping with a "
                f"_target_ (conf/logger/*.yaml). Choose loggers with logger=csv, logger=mlflow, "
                f"logger=wandb or a list of them, e.g. logger=[csv,mlflow]."
            )
        # Partial, then called: Hydra would turn a dataclass given to instantiate into a config node.
        loggers[name] = instantiate(entry, _partial_=True)(context=context)
        loggers[name].config_name = name
    return loggers


class Reported:
    """A logger mixin: a write that fails is reported once, and the logger takes no more writes.

    The run goes on: its run directory keeps the complete record, and metrics.json's
    `loggers.<name>.error` says which logger stopped and why."""

    label = "logger"
    config_name = ""  # its entry in the logger block (build_loggers)
    broken: str | None = None

    def guarded(self, what: str, call: Callable[[], Any]) -> Any:
        if self.broken is not None:
            return None
        try:
            return call()
        except Exception as error:  # noqa: BLE001  (any failure of a remote logger is reported, not raised)
            self.broken = f"{type(error).__name__}: {error}"
            log.error(
                "%s stopped taking writes (%s): %s. The run goes on; its run directory (TensorBoard events, "
                "metrics.json, checkpoints) keeps the complete record.",
                self.label,
                what,
                self.broken,
            )
            return None

    def record_entry(self) -> dict[str, Any]:
        """What metrics.json keeps of this logger (a resume reattaches through it)."""
        return {} if self.broken is None else {"error": self.broken}

    def log_grid(self, tag: str, image: Tensor, step: int) -> None:
        """An image grid (3, H, W) in [0, 1]; loggers that hold no images ignore it."""

    def finish_run(self, status: str, metrics: Mapping[str, float], files: Mapping[str, Path]) -> None:
        """The run's end: its status (metrics.json's), final metrics and files (config.yaml, metrics.json,
        the tested checkpoint)."""


class RunCSVLogger(Reported, CSVLogger):
    """Scalars in `<run>/csv/metrics.csv`: one row per write, a column per tag and `step`.

    In `<run>/csv/` and not the run directory itself, where it would overwrite the hparams.yaml of
    the TensorBoard logger. A resume keeps the rows before its checkpoint's step (Lightning's
    writer would delete the file) and logs the later ones again, as TensorBoard's purge_step does;
    it writes them into its attempt folder (`context.write_dir`), promoted when it completes."""

    label = "CSV logger"

    def __init__(self, context: RunContext) -> None:
        earlier = [folder / "csv" / "metrics.csv" for folder in (context.files_dir, context.run_dir)]
        kept = _rows_before(next((path for path in earlier if path.is_file()), earlier[0]), context.purge_step)
        super().__init__(save_dir=context.files_dir, name="csv", version="")
        with warnings.catch_warnings():  # "previous log files will be deleted": the kept rows are written again
            warnings.filterwarnings("ignore", message=".*Previous log files in this directory will be deleted")
            writer = self.experiment
        for row in kept:
            writer.log_metrics(
                {name: float(value) for name, value in row.items() if name != "step"}, step=int(row["step"])
            )
        if kept:
            writer.save()

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.guarded("metrics", lambda: super(RunCSVLogger, self).log_metrics(metrics, step))

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        self.guarded("hyperparameters", lambda: super(RunCSVLogger, self).log_hyperparams(params, *args, **kwargs))

    @rank_zero_only
    def save(self) -> None:
        self.guarded("save", lambda: super(RunCSVLogger, self).save())

    def record_entry(self) -> dict[str, Any]:
        return {"dir": "csv", **super().record_entry()}

    def finish_run(self, status: str, metrics: Mapping[str, float], files: Mapping[str, Path]) -> None:
        self.save()


def csv(context: RunContext) -> RunCSVLogger:
    """logger=csv: `<run>/csv/metrics.csv` and `<run>/csv/hparams.yaml`."""
    return RunCSVLogger(context)


def _rows_before(path: Path, step: int) -> list[dict[str, str]]:
    """The non-empty cells of each row of a CSV logger's file whose step is below `step`."""
    import csv as csv_module

    if step <= 0 or not path.is_file():
        return []
    with path.open(newline="") as file:
        rows = [
            {name: value for name, value in row.items() if value not in ("", None)}
            for row in csv_module.DictReader(file)
        ]
    return [row for row in rows if "step" in row and int(row["step"]) < step]


def extra_loggers(loggers: list[Logger]) -> list[Logger]:
    """The loggers beside TensorBoard (which the views write to through its SummaryWriter)."""
    return [logger for logger in loggers if not isinstance(logger, TensorBoardLogger)]


def log_grid(loggers: list[Logger], tag: str, image: Tensor, step: int) -> None:
    """An image grid to every logger beside TensorBoard that holds images (MLflow, W&B)."""
    for logger in extra_loggers(loggers):
        if isinstance(logger, Reported):
            logger.log_grid(tag, image, step)


def log_hyperparams(loggers: list[Logger], params: Mapping[str, Any]) -> None:
    """Run settings (model name, data, batch size, seed) to every logger beside TensorBoard, which
    has its own HParams session (views/hparams.py)."""
    for logger in extra_loggers(loggers):
        logger.log_hyperparams(dict(params))


def finish_run(
    loggers: list[Logger], status: str, metrics: Mapping[str, float], tested: Mapping[str, Any] | None, run_dir: Path
) -> None:
    """The run's end to every logger beside TensorBoard: the attempt's status and final metrics as
    metrics.json holds them, and the files a tracker keeps beside them (`tested`: the record's entry)."""
    checkpoint = (tested or {}).get("checkpoint")
    files = {"config": run_dir / "config.yaml", "record": run_dir / "metrics.json"}
    if checkpoint and (run_dir / checkpoint).is_file():
        files["checkpoint"] = run_dir / checkpoint
    for logger in extra_loggers(loggers):
        if isinstance(logger, Reported):
            logger.guarded("the run's end", lambda logger=logger: logger.finish_run(status, dict(metrics), files))


def image_array(image: Tensor) -> Any:
    """A (3, H, W) grid in [0, 1] as the (H, W, 3) uint8 array image loggers take."""
    return (image.detach().float().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
