"""Per-image values of a test metric, kept in the run directory so that two runs scored on the same
images can be compared image by image (`ae-compare --paired`, docs/compare.md).

One CSV file per metric beside the evaluation's TensorBoard events (the run directory; a resume's
attempt folder until it is promoted; `eval/<checkpoint>/` for `ae-eval`): a header, then one row per
image, its index in the test split and its value at full float precision. Written whole or not at
all. Only plain Python here: `ae-compare` reads these files without importing torch.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from autoencoders.atomic import atomic_write

# The metrics whose per-image values a run keeps, and their files.
PER_IMAGE_FILES = {"test/nll": "test_nll.csv"}
HEADER = ("test_index", "value")


class PerImageError(ValueError):
    """A per-image file that is missing, or not one this module wrote."""


def write_per_image(folder: Path, metric: str, indices: Iterable[int], values: Iterable[float]) -> Path:
    """`metric`'s value for each test image (`indices` into the test split) into its file in `folder`."""
    path = Path(folder) / PER_IMAGE_FILES[metric]
    with atomic_write(path) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows((int(index), repr(float(value))) for index, value in zip(indices, values, strict=True))
    return path


def read_per_image(folder: Path, metric: str) -> dict[int, float]:
    """The values `write_per_image` wrote for `metric` in `folder`, by test index."""
    path = Path(folder) / PER_IMAGE_FILES[metric]
    if not path.is_file():
        raise PerImageError(f"{path} does not exist")
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or tuple(rows[0]) != HEADER:
        raise PerImageError(f"{path} does not start with the header {','.join(HEADER)}")
    values: dict[int, float] = {}
    for number, row in enumerate(rows[1:], start=2):
        try:
            index, value = int(row[0]), float(row[1])
        except (IndexError, ValueError):
            raise PerImageError(f"{path}, line {number}: {','.join(row)!r} is not an index and a number") from None
        if index in values:
            raise PerImageError(f"{path}, line {number}: test index {index} again")
        values[index] = value
    return values
