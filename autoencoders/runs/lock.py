"""One process per run directory: an OS lock held for the run's life.

`flock` on <run>/.lock, taken before anything in the directory is written. The kernel releases it
when the process ends, however it ends, so a killed run leaves no stale lock. A second run aimed
at the same directory fails at once, naming the process that holds it, and writes nothing there.
The lock file keeps the holder's pid, host and command for that message.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import IO

from autoencoders.errors import RunDirectoryBusy

LOCK_FILE = ".lock"


class RunLock:
    """The lock on one run directory, held from `acquire` until `release` or the process's end."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock, or raise RunDirectoryBusy without changing any file of the directory."""
        if self.path.is_file():  # read-only first: a refused process must not touch a live run's files
            with self.path.open() as probe:
                if not _try_lock(probe):
                    raise RunDirectoryBusy(self.path.parent, _holder(probe))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        if not _try_lock(handle):  # another process took it in between
            holder = _holder(handle)
            handle.close()
            raise RunDirectoryBusy(self.path.parent, holder)
        handle.seek(0)
        handle.truncate()
        json.dump({"pid": os.getpid(), "host": platform.node(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                   "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, handle)  # fmt: skip
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _try_lock(handle: IO[str]) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(handle: IO[str]) -> str:
    """'process 1234 on host (ae-train ..., since ...)' from the lock file, as far as it says."""
    try:
        handle.seek(0)
        info = json.loads(handle.read() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process"
    return f"process {info.get('pid')} on {info.get('host')} (`{info.get('command')}`, since {info.get('since')})"
