"""Files written whole or not at all: the one helper behind metrics.json, eval records and
checkpoints. A temporary file beside the target, flushed to disk, then renamed over it: readers
see the old file or the new one, never half of one, and a full disk (ENOSPC) or a kill midway
leaves the previous file intact.

A process killed outright (SIGKILL, power loss) inside the block leaves its temporary file
behind: `.<name>.<pid>.<random>.tmp`. The writer's pid in the name lets the next holder of the
folder's lock tell such litter from a live writer's file (`remove_dead_temp_files`)."""

from __future__ import annotations

import errno
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from autoencoders.errors import DiskFull

# .<target name>.<writer's pid>.<mkstemp's random part, no dots>.tmp
TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)\.[^.]+\.tmp$")
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read without changing it: os.umask only reads by setting


@contextmanager
def atomic_write(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """`with atomic_write(path) as handle: ...` writes `path` whole when the block succeeds, and
    leaves it untouched (and no temporary file) when the block raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
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


def remove_dead_temp_files(folder: Path) -> list[Path]:
    """Remove the temporary files of `atomic_write` below `folder` whose writer is no longer
    alive on this machine (killed while writing); returns them. A live writer's file stays."""
    removed = []
    for path in Path(folder).rglob(".*.tmp"):
        match = TEMP_NAME.match(path.name)
        if match is None or not path.is_file():
            continue
        try:
            written = path.stat().st_mtime
        except OSError:  # its writer just renamed it
            continue
        if not process_alive(int(match["pid"]), platform.node(), since=written):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def process_alive(pid: int, host: str | None, since: float | None = None) -> bool:
    """Whether process `pid` of machine `host` is alive, as far as this machine can tell: a
    process of another machine counts as alive (it cannot be seen from here). `since`: a time
    (seconds since the epoch) when that process was known to run; a process with its pid that
    started after it is another one (the pid was reused), not alive."""
    if host is not None and host != platform.node():
        return True
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    except OSError:
        return False
    started = process_start_time(pid)
    # A minute of slack: /proc's boot time is in whole seconds, and a clock stepped since shifts it.
    return since is None or started is None or started <= since + 60


def process_start_time(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), from Linux's /proc; None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
        return float(boot.split()[1]) + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    except (OSError, ValueError, IndexError, StopIteration):
        return None


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
