"""The trackers beside TensorBoard: MLflow (logger=mlflow) and Weights & Biases (logger=wandb).

MLflow: one MLflow run per run directory, one experiment per sweep. The tracking URI is
`logger.mlflow.tracking_uri`, or by default the absolute `sqlite:///<output_root>/mlflow.db`
(Lightning's MLFlowLogger would use `./mlruns`, relative to wherever ae-train was started), with
the artifacts in `<output_root>/mlartifacts/`. A resume reattaches to its MLflow run through the
`run_id` metrics.json keeps; MLflow params cannot change, so a resume's overrides become tags.

W&B: offline unless `logger.wandb.mode=online`; the files are in `<run>/wandb/`.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import MLFlowLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

from autoencoders.errors import LoggerUnavailable
from autoencoders.views.loggers import Reported, RunContext, image_array

# Seconds a start-up probe waits for a tracking server: a run that cannot log fails within seconds.
PROBE_SECONDS = 5
# MLflow's own HTTP client retries 7 times with a growing backoff (minutes); a failing server mid-run
# should cost a run seconds, not minutes (Reported then leaves it out).
MLFLOW_HTTP_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
# metrics.json's status -> MLflow's run status.
MLFLOW_STATUS = {"completed": "FINISHED", "interrupted": "KILLED"}


def probe(url: str, what: str, fix: str) -> None:
    """Raise LoggerUnavailable unless `url` answers within PROBE_SECONDS."""
    try:
        with urllib.request.urlopen(url, timeout=PROBE_SECONDS):  # noqa: S310  (the user's own tracking URI)
            pass
    except OSError as error:  # URLError, timeouts, refused connections
        raise LoggerUnavailable(
            f"{what} at {url} cannot be reached ({getattr(error, 'reason', error)}), so the run was not started. {fix}"
        ) from None


@contextmanager
def sqlite_lock(uri: str) -> Iterator[None]:
    """Parallel sweep jobs (hydra/launcher=joblib) take turns creating the SQLite store, the
    experiment and their runs: two processes migrating one new database, or both creating the
    sweep's experiment, would otherwise fail."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    database = Path(uri.removeprefix("sqlite:///"))
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
        handle = open(f"{database}.lock", "a")  # noqa: SIM115  (held for the block)
    except OSError as error:
        raise LoggerUnavailable(
            f"The MLflow store {database} cannot be written ({error}). Choose a writable "
            f"output_root or set logger.mlflow.tracking_uri."
        ) from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class RunMLflowLogger(Reported, MLFlowLogger):
    """Lightning's MLFlowLogger with the run's store, probe, resume and end (module docstring)."""

    label = "MLflow"

    def __init__(self, context: RunContext, tracking_uri: str | None, experiment_name: str | None) -> None:
        previous = context.previous.get("mlflow") or {}
        uri = (
            tracking_uri or previous.get("tracking_uri") or f"sqlite:///{(context.output_root / 'mlflow.db').resolve()}"
        )
        for name, value in MLFLOW_HTTP_ENV.items():
            os.environ.setdefault(name, value)
        local = uri.startswith("sqlite:///")
        self.uri, self.experiment_label = uri, experiment_name or previous.get("experiment") or context.experiment
        if uri.startswith(("http://", "https://")):
            probe(
                f"{uri.rstrip('/')}/health",
                "The MLflow tracking server",
                "Start it (mlflow server --host 127.0.0.1 --port 5000), fix logger.mlflow.tracking_uri, or leave "
                "it null for the local store sqlite:///<output_root>/mlflow.db.",
            )
        with sqlite_lock(uri):  # the client's store migrates a new database as it is built
            try:
                super().__init__(
                    experiment_name=self.experiment_label,
                    run_name=context.run_name,
                    tracking_uri=uri,
                    run_id=previous.get("run_id"),
                    tags={"run_dir": str(context.run_dir.resolve())},
                    artifact_location=(context.output_root / "mlartifacts").resolve().as_uri() if local else None,
                )
                client = self.experiment  # creates the experiment and the run
            except Exception as error:  # noqa: BLE001  (mlflow raises its own types and sqlalchemy's)
                raise LoggerUnavailable(
                    f"MLflow at {uri} refused the run ({type(error).__name__}: {error}). Fix "
                    f"logger.mlflow.tracking_uri or the store's permissions."
                ) from None
        if previous.get("run_id") is None:
            MLFlowLogger.log_hyperparams(self, dict(context.params))
        else:  # params are fixed once logged: what a resume changed goes in as tags
            client.update_run(self.run_id, status="RUNNING")
            client.set_tag(
                self.run_id,
                f"resume.{context.resume_number}.overrides",
                " ".join(context.resume_overrides or ()) or "(none)",
            )

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.guarded("metrics", lambda: MLFlowLogger.log_metrics(self, metrics, step))

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        self.guarded("hyperparameters", lambda: MLFlowLogger.log_hyperparams(self, params))

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        self.guarded("finalize", lambda: MLFlowLogger.finalize(self, status))

    def record_entry(self) -> dict[str, Any]:
        return {
            "tracking_uri": self.uri,
            "experiment": self.experiment_label,
            "experiment_id": self.experiment_id,
            "run_id": self.run_id,
            **super().record_entry(),
        }

    def log_grid(self, tag: str, image: Tensor, step: int) -> None:
        self.guarded(
            "images",
            lambda: self.experiment.log_image(
                self.run_id, image_array(image), artifact_file=f"{tag}/step_{step:06d}.png"
            ),
        )

    def finish_run(self, status: str, metrics: Mapping[str, float], files: Mapping[str, Path]) -> None:
        client = self.experiment
        for name, path in files.items():
            client.log_artifact(self.run_id, str(path), artifact_path="checkpoints" if name == "checkpoint" else None)
        client.set_terminated(self.run_id, MLFLOW_STATUS.get(status, "FAILED"))


def mlflow(context: RunContext, tracking_uri: str | None = None, experiment_name: str | None = None) -> RunMLflowLogger:
    """logger=mlflow: the run as an MLflow run (module docstring)."""
    try:
        import mlflow as _  # noqa: F401
    except ImportError:
        raise LoggerUnavailable(
            "logger=mlflow needs the mlflow package: pip install -e '.[mlflow]' (make install takes it)."
        ) from None
    return RunMLflowLogger(context, tracking_uri, experiment_name)


class RunWandbLogger(Reported, WandbLogger):
    """Lightning's WandbLogger, offline unless asked, with the run's id kept for a resume."""

    label = "W&B"

    def __init__(self, context: RunContext, mode: str, project: str, entity: str | None) -> None:
        import wandb

        previous = context.previous.get("wandb") or {}
        self.mode = mode
        if mode == "online":
            probe(
                "https://api.wandb.ai",
                "Weights & Biases",
                "Check the network, or log offline (logger.wandb.mode=offline) and upload later with wandb sync.",
            )
        super().__init__(
            name=context.run_name,
            project=project,
            entity=entity,
            group=context.experiment,
            id=previous.get("id") or secrets.token_hex(4),
            save_dir=str(context.run_dir),
            offline=mode == "offline",
            mode=mode,
            config=dict(context.params),
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
        )
        try:
            _ = self.experiment  # starts the run now: a failure stops the run at start-up
        except Exception as error:  # noqa: BLE001
            raise LoggerUnavailable(
                f"W&B could not start the run ({type(error).__name__}: {error}). Check "
                f"logger.wandb.project/entity, or log offline (logger.wandb.mode=offline)."
            ) from None

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.guarded("metrics", lambda: WandbLogger.log_metrics(self, metrics, step))

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        self.guarded("hyperparameters", lambda: WandbLogger.log_hyperparams(self, params))

    def record_entry(self) -> dict[str, Any]:
        return {"id": self.version, "mode": self.mode, "dir": "wandb", **super().record_entry()}

    def log_grid(self, tag: str, image: Tensor, step: int) -> None:
        self.guarded("images", lambda: self.log_image(key=tag, images=[image_array(image)], step=step))

    def finish_run(self, status: str, metrics: Mapping[str, float], files: Mapping[str, Path]) -> None:
        self.experiment.summary.update(dict(metrics))
        self.experiment.finish(exit_code=0 if status == "completed" else 1)


def wandb(
    context: RunContext, mode: str = "offline", project: str = "autoencoders", entity: str | None = None
) -> RunWandbLogger:
    """logger=wandb: the run as a W&B run, offline by default (module docstring)."""
    try:
        import wandb as _  # noqa: F401
    except ImportError:
        raise LoggerUnavailable(
            "logger=wandb needs the wandb package: pip install -e '.[wandb]' (make install takes it)."
        ) from None
    return RunWandbLogger(context, mode, project, entity)
