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
import time
from pathlib import Path
from typing import IO, Any

from autoencoders.errors import RunDirectoryBusy
from autoencoders.rundir.record import command_line, timestamp

LOCK_FILE = ".lock"
PROCESS_STARTED = time.time()  # about when this process started: the module is imported early


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
        self._handle = handle
        self._info = {"pid": os.getpid(), "host": platform.node(), "command": command_line(), "since": timestamp()}
        self._write(self._info)

    def announce(self, decision: dict[str, Any]) -> None:
        """Tell the run's worker processes that a cluster started beside this one (srun, torchrun)
        what it decided: they wait for it in `wait_for_decision` before they train."""
        self._write({**self._info, "decision": {**decision, "at": time.time()}})

    def _write(self, info: dict[str, Any]) -> None:
        assert self._handle is not None
        self._handle.seek(0)
        self._handle.truncate()
        json.dump(info, self._handle)
        self._handle.flush()

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


def wait_for_decision(run_dir: Path, job: str, timeout: float = 600, poll: float = 0.5,
                      not_before: float | None = None) -> dict[str, Any]:  # fmt: skip
    """A worker process's wait for the main process of the same cluster job (`job`) to announce,
    in the lock file, what it decided (skip, or the config and the checkpoint to train from).

    A decision older than `not_before` (default: this process's start, less a minute for clocks
    that differ between nodes) is an earlier run's, left in the file: it is not this one's."""
    path = Path(run_dir) / LOCK_FILE
    not_before = PROCESS_STARTED - 60 if not_before is None else not_before
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            decision = json.loads(path.read_text() or "{}").get("decision") or {}
        except (OSError, ValueError):  # not there yet, or being rewritten
            decision = {}
        if decision.get("job") == job and decision.get("at", 0) >= not_before:
            return decision
        time.sleep(poll)
    raise RuntimeError(f"The main process (rank 0) of job {job} did not announce its plan in {path} within {timeout:.0f} s; "
                       "see its log for why (another run may hold the directory).")  # fmt: skip


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
