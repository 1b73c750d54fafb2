"""metrics.json: one schema for every run, written atomically so readers never see half a file.

{
  "schema_version": 2,                                   # absent in records before it: read as 1
  "status": "running" | "completed" | "failed" | "diverged" | "interrupted" | "killed",
  "metrics": {"test/mse": ..., "val/loss": ..., ...},     # final values of the tested checkpoint
  "tested": {"checkpoint", "epoch", "step"},             # which checkpoint `metrics` describe
  "last": {"epoch", "step", "metrics"},                  # train/* and val/* of the last epoch
  "data": {"name", "source", "note", "train", "val", "test"},
  "model": {"name", "target", "parameters", "network", "encoder_parameters", "decoder_parameters", "multiply_adds"},
  "overrides": ["model=vae", "model.beta=4", ...],       # the run's identity: its command-line overrides
  "resumes": [{"at", "overrides", "checkpoint", "command", "status", "error", "finished"}, ...],
  "attempt": {"status": "running", "pid", "host", "started", "resume"},  # only while an attempt runs
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
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from autoencoders.atomic import atomic_write
from autoencoders.errors import UnsupportedVersion

# killed: written by the next holder of the run's lock for an attempt whose process died without a
# word (rundir/leftovers.py); never by the attempt itself.
STATUSES = ("running", "completed", "failed", "diverged", "interrupted", "killed")
METRICS_FILE = "metrics.json"
# The record's layout. 1: records written before the field existed (the layout above, without
# it); 2: with it. Readers accept every version up to this one; a newer record is refused.
SCHEMA_VERSION = 2
_PACKAGES = ("autoencoders", "torch", "torchvision", "lightning", "hydra-core", "omegaconf", "tensorboard", "numpy")


def write_atomic(path: Path, write: Callable[[IO[Any]], None], binary: bool = False) -> None:
    """Call `write` on the file, written whole or not at all (autoencoders/atomic.py)."""
    with atomic_write(path, "wb" if binary else "w") as handle:
        write(handle)


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON whole or not at all (autoencoders/atomic.py): readers never see half a file."""
    with atomic_write(path) as handle:
        json.dump(payload, handle, indent=2, sort_keys=False, default=str)
        handle.write("\n")


def read_record(run_dir: Path) -> dict[str, Any]:
    """A run's metrics.json, checked to be a layout this version reads (see SCHEMA_VERSION).
    A file that is not JSON raises ValueError (a half-written record of a killed process)."""
    path = Path(run_dir) / METRICS_FILE
    return check_schema_version(json.loads(path.read_text()), path)


def check_schema_version(payload: Any, path: Path) -> Any:
    """`payload` when its schema_version is one this version reads (absent: 1), else
    UnsupportedVersion: a newer autoencoders wrote it, and rewriting it would lose what it holds."""
    version = payload.get("schema_version", 1) if isinstance(payload, dict) else 1
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise UnsupportedVersion(
            f"{path} has record schema_version {version!r}, newer than this autoencoders reads "
            f"(up to {SCHEMA_VERSION}). Upgrade autoencoders to read, resume or compare this run; "
            "nothing was changed."
        )
    return payload


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

    ended = False  # finish() has written the attempt's end: a later call changes nothing

    def __init__(self, run_dir: Path, overrides: list[str], torch_threads: int | None) -> None:
        self.path = Path(run_dir) / METRICS_FILE
        self.staged: dict[str, Any] = {}
        self.payload: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "status": "running",
            "metrics": {},
            "data": {},
            "model": {},
            "overrides": list(overrides),
            "resumes": [],
            "error": None,
            "attempt": _attempt(None),
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
    def reopen(
        cls,
        run_dir: Path,
        overrides: list[str],
        checkpoint: str | None,
        torch_threads: int | None,
        config_changes: dict[str, Any] | None = None,
    ) -> RunRecord:
        """The record of a run that continues (resume). The record of its last finished state
        (status, metrics, tested, last, data, model, error) stays as it is until this attempt
        completes: what the attempt learns is staged, and a failed or stopped attempt leaves
        only its entry in `resumes` (with its status and error). `attempt` says one is running."""
        record = cls.__new__(cls)
        record.path = Path(run_dir) / METRICS_FILE
        record.payload = read_record(run_dir)
        record.staged = {}
        resumes = record.payload.setdefault("resumes", [])
        resumes.append(
            {
                "at": timestamp(),
                "overrides": list(overrides),
                "checkpoint": checkpoint,
                "command": command_line(),
                "torch_threads": torch_threads,
                "status": "running",
                **({"config_changes": config_changes} if config_changes else {}),
            }
        )
        record.payload.update(schema_version=SCHEMA_VERSION, attempt=_attempt(len(resumes) - 1))  # 2 adds to 1
        record.save()
        return record

    @property
    def resuming(self) -> bool:
        return (self.payload.get("attempt") or {}).get("resume") is not None

    def current(self, name: str, default: Any = None) -> Any:
        """A field as this attempt sees it: staged by it, else the record's."""
        return getattr(self, "staged", {}).get(name, self.payload.get(name, default))

    def update(self, **fields: Any) -> None:
        if self.resuming:
            self.staged.update(fields)  # the record's own fields change only when the attempt completes
        else:
            self.payload.update(fields)
        self.save()

    def finish(
        self,
        status: str,
        metrics: dict[str, float] | None = None,
        error: BaseException | None = None,
        traceback_text: str | None = None,
        into: Path | None = None,
    ) -> None:
        """The attempt's end: its status, final metrics and, for a failure or stop, the error. A
        resume that does not complete changes nothing but its own entry in `resumes`. `into`: the
        file to write instead of metrics.json (a completed resume's record, moved onto it last:
        rundir/attempt.py). Once ended, a later call (a failure after the end) changes nothing."""
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        if self.ended:
            return
        described = None
        if error is not None:
            described = {"type": type(error).__name__, "message": str(error), "traceback": traceback_text}
        attempt = self.payload.pop("attempt", None) or {}
        if attempt.get("resume") is not None:
            self.payload["resumes"][attempt["resume"]].update(status=status, error=described, finished=timestamp())
            if status != "completed":
                self.save()
                return
            self.payload.update(self.staged)
        self.payload["status"] = status
        if metrics is not None:
            self.payload["metrics"] = metrics
        self.payload["error"] = described
        self.payload["provenance"]["finished"] = timestamp()
        if into is None:
            self.save()
        else:
            write_json_atomic(into, self.payload)
        self.ended = True

    def save(self) -> None:
        write_json_atomic(self.path, self.payload)


def _attempt(resume: int | None) -> dict[str, Any]:
    """The live attempt: this process, and which entry of `resumes` it is (None: the first run)."""
    return {"status": "running", "pid": os.getpid(), "host": platform.node(), "started": timestamp(), "resume": resume}


class WorkerRecord(RunRecord):
    """The record of a worker process of a DDP run: the main process writes the run's record, so
    this one keeps what it is told in memory and writes nothing."""

    def __init__(self) -> None:
        self.path = None
        self.payload = {
            "status": "running",
            "metrics": {},
            "data": {},
            "model": {},
            "error": None,
            "provenance": {"finished": None},
        }

    staged: dict[str, Any] = {}

    def save(self) -> None:
        pass
