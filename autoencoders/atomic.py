"""Files written whole or not at all: the one helper behind metrics.json, eval records and
checkpoints. A temporary file beside the target, flushed to disk, then renamed over it: readers
see the old file or the new one, never half of one, and a full disk (ENOSPC) or a kill midway
leaves the previous file intact."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from autoencoders.errors import DiskFull

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
    except BaseException as error:
        Path(temp_name).unlink(missing_ok=True)
        if is_disk_full(error, path.parent):
            raise DiskFull(path, free_space(path.parent)) from error
        raise


def free_space(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def is_disk_full(error: BaseException, folder: Path) -> bool:
    """ENOSPC, or torch.save's own words for a write that came up short ("unexpected pos", from
    its zip writer, which reports no errno) on a file system with almost no space left."""
    if isinstance(error, DiskFull):
        return False  # already said
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(error, RuntimeError) and ("unexpected pos" in str(error) or "failed writing" in str(error)):
        free = free_space(folder)
        return free is not None and free < 64 * 2**20
    return False
