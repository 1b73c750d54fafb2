"""Files written whole or not at all: the one helper behind metrics.json, eval records and
checkpoints. A temporary file beside the target, flushed to disk, then renamed over it: readers
see the old file or the new one, never half of one, and a full disk (ENOSPC) or a kill midway
leaves the previous file intact."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read without changing it: os.umask only reads by setting


@contextmanager
def atomic_write(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """`with atomic_write(path) as handle: ...` writes `path` whole when the block succeeds, and
    leaves it untouched (and no temporary file) when the block raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~_UMASK)  # mkstemp makes 0600; the file is as readable as the run's others
        with os.fdopen(handle, mode) as temp_file:
            yield temp_file
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
