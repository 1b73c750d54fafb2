"""Errors whose message is the whole story: ae-train shows them as one paragraph, no traceback.

Kept free of heavy imports so the command-line wrapper can catch them cheaply.
"""

import os

# The console log format of ae-train and ae-eval (Hydra's default job logging, which writes train.log, has the same).
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


class DataUnavailable(RuntimeError):
    """No source could provide the dataset, or a data file is corrupt; the message says what to do."""


class ConfigError(ValueError):
    """A config value is out of range or unknown; the message names the key and what is allowed."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or belongs to another model."""


class Diverged(RuntimeError):
    """The loss became non-finite; the message names the step and the terms."""


class RunInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the run after it saved a resumable checkpoint.

    A KeyboardInterrupt, so that it ends a sweep too: the user asked everything to stop.
    """

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.signal_number = signal_number


USER_ERRORS = (DataUnavailable, ConfigError, CheckpointError, Diverged, ValueError)


def describe(error: BaseException) -> str:
    """One line for an error: our own messages as they are, anything else with its type."""
    return str(error) if isinstance(error, USER_ERRORS) else f"{type(error).__name__}: {error}"


def full_error_requested() -> bool:
    """HYDRA_FULL_ERROR=1 asks for tracebacks, as it does for Hydra's own errors."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"
