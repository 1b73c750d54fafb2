"""Errors whose message is the whole story: ae-train shows them as one paragraph, no traceback.

Only these are "user errors". Anything else (a ValueError from torch or scikit-learn, say) is a
failure: its type is shown, and its traceback is kept in the run's metrics.json. Kept free of
heavy imports so the command-line wrappers can catch them cheaply.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


class DataUnavailable(RuntimeError):
    """No source could provide the dataset, or a data file is corrupt; the message says what to do."""


class ConfigError(ValueError):
    """A config value is out of range or unknown; the message names the key and what is allowed."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or belongs to another model."""


class UntrustedCode(RuntimeError):
    """A run directory names a class or function the user has not allowed (rundir/trust.py);
    nothing of it was imported. The message says how to allow it."""


class Diverged(RuntimeError):
    """The loss became non-finite; the message names the step and the terms."""


class LoggerUnavailable(RuntimeError):
    """A logger the config asks for (logger=mlflow, wandb) cannot be used: not installed, or its
    server cannot be reached at start-up; the message says what to do."""


class RunDirectoryBusy(RuntimeError):
    """Another process holds the run directory; nothing in it was touched."""

    def __init__(self, run_dir: Path, holder: str) -> None:
        super().__init__(
            f"{run_dir} is in use by {holder}. Nothing there was changed. Wait for that run to finish "
            "(a sweep re-run then skips or resumes it), or choose another hydra.run.dir / hydra.sweep.dir."
        )


class DiskFull(OSError):
    """No space was left to write a file; the previous version of the file is intact."""

    # What to do, by default for a training run; a command writing other files says its own (`remedy`).
    RESUME = "free some space, then continue the run with ae-train resume=<run-dir> (or run the command again)."

    def __init__(self, path: Path, free: int | None, remedy: str = RESUME) -> None:
        space = f"{free / 2**20:.1f} MiB free there now" if free is not None else "its free space unknown"
        super().__init__(
            errno.ENOSPC,
            f"No space left on device while writing {path} ({space}). The previous version of that file is intact; "
            + remedy,
        )
        self.path, self.free = path, free

    def __str__(self) -> str:
        return str(self.strerror)


class UnsupportedVersion(RuntimeError):
    """An installed library is at a version the package was not tested with (internals.py)."""


class RunInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the run after it saved a resumable checkpoint.

    A KeyboardInterrupt, so that it ends a sweep too: the user asked everything to stop.
    """

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.signal_number = signal_number


USER_ERRORS = (
    DataUnavailable,
    ConfigError,
    CheckpointError,
    UntrustedCode,
    Diverged,
    RunDirectoryBusy,
    UnsupportedVersion,
    DiskFull,
    LoggerUnavailable,
)


def describe(error: BaseException) -> str:
    """One line for an error: our own messages as they are, anything else with its type."""
    return str(error) if isinstance(error, USER_ERRORS) else f"{type(error).__name__}: {error}"


def full_error_requested() -> bool:
    """HYDRA_FULL_ERROR=1 asks for tracebacks, as it does for Hydra's own errors."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"
