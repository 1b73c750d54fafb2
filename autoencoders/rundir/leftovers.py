"""What a process killed outright (SIGKILL, the out-of-memory killer, power loss) leaves in a run
directory, and how the next one makes it say so.

Such a process ends without its `finally` blocks: its record still says the attempt runs
(`status: running` for a first run, a `resumes` entry with `status: running` for a resume, and
`attempt` naming its pid and host), and a file it was writing stays as atomic_write's temporary
`.<name>.<pid>.<random>.tmp`. The next process that takes the run's lock (rundir/lock.py) calls
`clear_leftovers`: the lock proves the attempt's process let go of the directory, so its attempt
becomes `killed` and the temporary files of dead writers go. A reader without the lock (ae-compare)
asks `seen_status`: `killed` when the recorded process is gone from this machine.
"""

from __future__ import annotations

import logging
import platform
from datetime import datetime
from pathlib import Path
from typing import Any

from autoencoders.atomic import process_alive, remove_dead_temp_files
from autoencoders.rundir.record import METRICS_FILE, command_line, read_record, timestamp, write_json_atomic

log = logging.getLogger("autoencoders")
KILLED = "killed"


def clear_leftovers(run_dir: Path) -> None:
    """Under the run's lock: remove the temporary files of dead writers, and mark the attempts
    its record says are running, whose process is gone, `killed`."""
    run_dir = Path(run_dir)
    for path in remove_dead_temp_files(run_dir):
        log.warning("Removed %s, left by a process killed while it wrote %s.", path, path.name.split(".")[1])
    try:
        record = read_record(run_dir) if (run_dir / METRICS_FILE).is_file() else None
    except (OSError, ValueError):  # half written by an older version, or not a record: the job decides
        return
    if isinstance(record, dict) and mark_killed(record):
        write_json_atomic(run_dir / METRICS_FILE, record)


def mark_killed(record: dict[str, Any]) -> bool:
    """Mark the attempts `record` (a metrics.json's content) says are running killed, in place:
    the run's status for a first run, its `resumes` entries for resumes. Whether anything changed.
    Called by the lock's holder, so no other machine's process can be running it; a process still
    alive on this machine (train() called in a notebook, which takes no lock) keeps its attempt."""
    process = _process(record)
    if process.get("host") == platform.node() and _alive(process):
        return False  # the lock holder's own machine runs it: not dead, only unlocked
    error = {
        "type": "Killed",
        "message": (
            f"The process ({_who(process)}) ended without recording how: killed outright (SIGKILL, out of "
            f"memory, power loss). Found by `{command_line()}` at {timestamp()}."
        ),
        "traceback": None,
    }
    changed = False
    for entry in record.get("resumes") or []:
        if isinstance(entry, dict) and entry.get("status") == "running":
            entry.update(status=KILLED, error=error, finished=None)
            changed = True
    if record.get("status") == "running":  # a first run's (a resume leaves the run's status as it was)
        record.update(status=KILLED, error=error)
        changed = True
    changed = record.pop("attempt", None) is not None or changed
    if changed:
        log.warning("%s", error["message"])
    return changed


def seen_status(record: dict[str, Any]) -> str:
    """The run's status as a reader without the lock should show it: `killed` for a run whose
    record says running while the process it names is gone from this machine (a process of
    another machine cannot be seen from here: it stays `running`)."""
    status = record.get("status")
    if status != "running":
        return str(status)
    process = _process(record)
    return "running" if process.get("pid") is None or _alive(process) else KILLED


def _process(record: dict[str, Any]) -> dict[str, Any]:
    """The live attempt's process as the record names it: `attempt` (pid, host, started, resume),
    or for records written before it, the run's provenance (pid, hostname, started)."""
    attempt = record.get("attempt")
    if isinstance(attempt, dict):
        return attempt
    provenance = record.get("provenance") or {}
    return {"pid": provenance.get("pid"), "host": provenance.get("hostname"), "started": provenance.get("started")}


def _alive(process: dict[str, Any]) -> bool:
    return process_alive(process.get("pid"), process.get("host"), since=_seconds(process.get("started")))


def _seconds(stamp: Any) -> float | None:
    try:
        return datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return None


def _who(process: dict[str, Any]) -> str:
    return f"pid {process.get('pid')} on {process.get('host')}, started {process.get('started')}"
