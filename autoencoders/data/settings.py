"""The data block's settings that go together, or only with some datasets: checked when the
DataModule is built, before anything is loaded (moved here from datamodule.py, unchanged)."""

from __future__ import annotations

from typing import Any

from autoencoders.config_keys import default_of
from autoencoders.errors import ConfigError

FILE_SETS = ("npz", "dsprites")  # the sets read from data.path
GRID_DEFAULTS = {key: default_of(f"data.{key}") for key in ("resolution", "scales", "orientations", "positions")}


def check_choices(
    name: str, path: str | None, normal_classes: Any, holdout_class: Any, grid: dict[str, int], subsample: int | None
) -> None:
    """Settings that go together, or only with some datasets."""
    if normal_classes is not None and holdout_class is not None:
        raise ConfigError(
            "Set data.normal_classes or data.holdout_class, not both (holdout_class=k means "
            "every class but k is normal)."
        )
    if (name in FILE_SETS) != (path is not None):
        raise ConfigError(
            f"data={name} needs data.path=<file.npz>."
            if name in FILE_SETS
            else f"data.path is read only with data=npz or data=dsprites, not with data={name}."
        )
    changed = [key for key, value in grid.items() if value != GRID_DEFAULTS[key]]
    if name != "shapes" and changed:
        raise ConfigError(
            f"data.{changed[0]} is read only with data=shapes (it shapes the generated grid), "
            f"not with data={name}; remove it."
        )
    if name not in ("shapes", "dsprites") and subsample is not None:
        raise ConfigError(f"data.subsample is read only with data=shapes or data=dsprites, not with data={name}.")
