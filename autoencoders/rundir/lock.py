"""One process per run directory: an OS lock held for the run's life.

A `filelock.FileLock` (flock) on <run>/.lock, taken before anything in the directory is written.
The kernel releases it when the process ends, however it ends, so a killed run leaves no stale
lock. A second run aimed at the same directory fails at once, naming the process that holds it,
and writes nothing there (a refused FileLock leaves the file as it was). The lock file keeps the
holder's pid, host and command for that message, and the plan workers of a cluster job wait for.

Whoever takes the lock first settles what a process killed outright left (it ran no cleanup):
a completed resume's half-done move is finished (rundir/attempt.py), then the attempt its record
says is running becomes `killed` and its temporary files go (rundir/leftovers.py).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import IO, Any

from filelock import FileLock, Timeout

from autoencoders.errors import RunDirectoryBusy
from autoencoders.rundir.attempt import finish_promotion
from autoencoders.rundir.leftovers import clear_leftovers
from autoencoders.rundir.record import command_line, timestamp

LOCK_FILE = ".lock"
PROCESS_STARTED = time.time()  # about when this process started: the module is imported early


class RunLock:
    """The lock on one run directory, held from `acquire` until `release` or the process's end."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._handle: IO[str] | None = None
        self._lock: FileLock | None = None

    def acquire(self) -> None:
        """Take the lock, or raise RunDirectoryBusy without changing any file of the directory."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.path, timeout=0, thread_local=False)
        try:
            lock.acquire()
        except Timeout:
            raise RunDirectoryBusy(self.path.parent, _holder(self.path)) from None
        self._lock = lock
        self._handle = self.path.open("r+")  # the holder's details, beside FileLock's own descriptor
        self._info = {"pid": os.getpid(), "host": platform.node(), "command": command_line(), "since": timestamp()}
        self._write(self._info)
        finish_promotion(self.path.parent)  # a completed resume killed while moving its files (rundir/attempt.py)
        clear_leftovers(self.path.parent)  # what a process killed outright left (rundir/leftovers.py)

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
            self._handle.close()
            self._handle = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def wait_for_decision(
    run_dir: Path, job: str, timeout: float = 600, poll: float = 0.5, not_before: float | None = None
) -> dict[str, Any]:
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
    raise RuntimeError(
        f"The main process (rank 0) of job {job} did not announce its plan in {path} within {timeout:.0f} s; "
        "see its log for why (another run may hold the directory)."
    )


def _holder(path: Path) -> str:
    """'process 1234 on host (ae-train ..., since ...)' from the lock file, as far as it says."""
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process"
    return f"process {info.get('pid')} on {info.get('host')} (`{info.get('command')}`, since {info.get('since')})"
