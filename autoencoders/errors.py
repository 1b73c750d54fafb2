"""Errors whose message is the whole story: ae-train shows them as one paragraph, no traceback.

Kept free of heavy imports so the command-line wrapper can catch them cheaply.
"""


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
