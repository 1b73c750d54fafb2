"""Errors whose message is the whole story: ae-train shows them as one paragraph, no traceback.

Kept free of heavy imports so the command-line wrapper can catch them cheaply.
"""


class DataUnavailable(RuntimeError):
    """No source could provide the dataset, or a data file is corrupt; the message says what to do."""


class ConfigError(ValueError):
    """A config value is out of range or unknown; the message names the key and what is allowed."""


USER_ERRORS = (DataUnavailable, ConfigError, ValueError)
