"""metrics.json: one schema for every run, written atomically so readers never see half a file.

{
  "status": "running" | "completed" | "failed" | "diverged" | "interrupted",
  "metrics": {"test/mse": ..., "val/loss": ..., ...},     # final values of the tested checkpoint
  "tested": {"checkpoint", "epoch", "step"},             # which checkpoint `metrics` describe
  "last": {"epoch", "step", "metrics"},                  # train/* and val/* of the last epoch
  "data": {"name", "source", "note", "train", "val", "test"},
  "model": {"name", "target", "parameters"},
  "overrides": ["model=vae", "model.beta=4", ...],       # the run's identity: its command-line overrides
  "resumes": [{"at", "overrides", "checkpoint", "command"}, ...],
  "error": null | {"type", "message", "traceback"},
  "provenance": {"command", "started", "finished", "torch_threads", "git_commit", "versions", ...}
}
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

STATUSES = ("running", "completed", "failed", "diverged", "interrupted")
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read without changing it: os.umask only reads by setting
METRICS_FILE = "metrics.json"
_PACKAGES = ("autoencoders", "torch", "torchvision", "lightning", "hydra-core", "omegaconf", "tensorboard", "numpy")


def write_atomic(path: Path, write: Callable[[IO[Any]], None], binary: bool = False) -> None:
    """Call `write` on a temp file in the same folder, flush it to disk, then rename it over
    `path`: readers see the old file or the new one, never half of one (a full disk included),
    and a failure leaves nothing behind. The one temp-file-and-rename helper of the package."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~_UMASK)  # mkstemp makes 0600; the file is as readable as the run's other files
        with os.fdopen(handle, "wb" if binary else "w") as temp_file:
            write(temp_file)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """`payload` as indented JSON, written atomically (write_atomic)."""

    def dump(handle: IO[str]) -> None:
        json.dump(payload, handle, indent=2, sort_keys=False, default=str)
        handle.write("\n")

    write_atomic(path, dump)


def read_record(run_dir: Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / METRICS_FILE).read_text())


def floats(metrics: dict[str, Any]) -> dict[str, float]:
    """Logged values (tensors or numbers) as plain floats, sorted by name, for the record."""
    return {name: float(value) for name, value in sorted(metrics.items())}


def _git_commit() -> str | None:
    """The commit of the source tree this package runs from, if it is a git checkout."""
    source = Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def command_line() -> str:
    """The command line that started this process, e.g. `ae-train model=vae`."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])


def timestamp() -> str:
    """Now, as the record (and the lock file, and ae-eval's entry) write times."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class RunRecord:
    """The metrics.json of one run directory, rewritten whole on every change."""

    def __init__(self, run_dir: Path, overrides: list[str], torch_threads: int | None) -> None:
        self.path = Path(run_dir) / METRICS_FILE
        self.payload: dict[str, Any] = {
            "status": "running",
            "metrics": {},
            "data": {},
            "model": {},
            "overrides": list(overrides),
            "resumes": [],
            "error": None,
            "provenance": {
                "command": command_line(),
                "run_dir": str(Path(run_dir).resolve()),
                "started": timestamp(),
                "finished": None,
                "hostname": platform.node(),
                "pid": os.getpid(),
                "torch_threads": torch_threads,
                "git_commit": _git_commit(),
                "versions": _versions(),
            },
        }
        self.save()

    @classmethod
    def reopen(cls, run_dir: Path, overrides: list[str], checkpoint: str | None, torch_threads: int | None) -> RunRecord:
        """The record of a run that continues (resume): status back to running, the resume appended
        to `resumes` (when, its overrides, the checkpoint it starts from); the run's identity
        (`overrides`, config.yaml) and everything else kept."""
        record = cls.__new__(cls)
        record.path = Path(run_dir) / METRICS_FILE
        record.payload = read_record(run_dir)
        record.payload.setdefault("resumes", []).append({"at": timestamp(), "overrides": list(overrides), "checkpoint": checkpoint,
                                                         "command": command_line(), "torch_threads": torch_threads})  # fmt: skip
        record.payload.update(status="running", error=None)
        record.save()
        return record

    def update(self, **fields: Any) -> None:
        self.payload.update(fields)
        self.save()

    def finish(self, status: str, metrics: dict[str, float] | None = None, error: BaseException | None = None,
               traceback_text: str | None = None) -> None:  # fmt: skip
        """The run's end: its status, final metrics and, for a failure or stop, the error."""
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        self.payload["status"] = status
        if metrics is not None:
            self.payload["metrics"] = metrics
        self.payload["error"] = None
        if error is not None:
            self.payload["error"] = {"type": type(error).__name__, "message": str(error), "traceback": traceback_text}
        self.payload["provenance"]["finished"] = timestamp()
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, self.payload)


class WorkerRecord(RunRecord):
    """The record of a worker process of a DDP run: the main process writes the run's record, so
    this one keeps what it is told in memory and writes nothing."""

    def __init__(self) -> None:
        self.path = None
        self.payload = {"status": "running", "metrics": {}, "data": {}, "model": {}, "error": None,
                        "provenance": {"finished": None}}  # fmt: skip

    def save(self) -> None:
        pass
