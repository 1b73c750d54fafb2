"""What a job does when its directory already holds a run, and the end-of-sweep summary.

Re-running a command into the same directory is safe and idempotent: a completed job is
skipped, an interrupted (or killed) one continues from its checkpoint, a failed one starts
over, and a directory that holds a run with other overrides is never touched.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from autoencoders.distributed.launchers import prepare_launcher
from autoencoders.errors import ConfigError
from autoencoders.rundir.record import METRICS_FILE, read_record

log = logging.getLogger("autoencoders")

# Failures seen by this process, and the jobs of a finished sweep that did not complete (found
# on disk, whichever launcher ran them); ae-train's main() exits 1 when either is non-empty.
FAILURES: list[str] = []
SWEEP_SUMMARY: list[str] = []


def plan_for_existing_dir(run_dir: Path, overrides: list[str]) -> str:
    """'new', 'skip' (completed), 'resume' (interrupted or killed) or 'restart' (failed or diverged)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return "new"
    try:
        previous = read_record(run_dir)
    except ValueError:  # a half-written file from a killed process: nothing to keep
        return "restart"
    if sorted(previous.get("overrides", [])) != sorted(overrides):
        raise ConfigError(
            f"{run_dir} already holds another run (overrides {previous.get('overrides')}, now {overrides}). "
            "Choose another hydra.run.dir / hydra.sweep.dir, or continue that run with ae-train resume=<dir>."
        )
    status = previous.get("status")
    if status == "completed":
        return "skip"
    if status in ("interrupted", "running", "killed") and (Path(run_dir) / "checkpoints").is_dir():
        return "resume"
    return "restart"


def summarize_sweep(sweep_dir: Path) -> list[str]:
    """One line per job of the sweep that did not complete."""
    lines = []
    for path in sorted(Path(sweep_dir).rglob(METRICS_FILE)):
        try:
            record = read_record(path.parent)
        except ValueError:
            lines.append(f"{path.parent}: unreadable {METRICS_FILE}")
            continue
        if record.get("status") != "completed":
            error = record.get("error") or {}
            reason = f"{error.get('type')}: {error.get('message')}" if error else "no error recorded"
            lines.append(f"{path.parent.name}: {record.get('status')} ({reason})")
    return lines


# A folder name may have 255 bytes on the common file systems; `<num>_` and room to spare.
JOB_NAME_BYTES = 200


def job_dirname(overrides: str) -> str:
    """A sweep job's folder name from its overrides (`hydra.job.override_dirname`), one folder
    deep: `/` (a nested group's choice, model/net=conv; a path in a value) becomes `.`, so
    model/net=conv names its folder as the setting it makes, model.net=conv. Shortened with a hash
    of the whole when it would pass the file system's limit; the job's record keeps its full overrides."""
    flat = overrides.replace("/", ".")
    encoded = flat.encode()
    if len(encoded) <= JOB_NAME_BYTES:
        return flat
    digest = hashlib.sha1(encoded).hexdigest()[:12]
    head = encoded[: JOB_NAME_BYTES - len(digest) - 1].decode(errors="ignore")
    return f"{head}_{digest}"


class SweepSummary(Callback):
    """Hydra callback: before a multirun, the launcher's settings (distributed/launchers.py: an
    absolute sweep directory, Ray's cluster settings and connection); after it, the list of the
    jobs that failed (whichever launcher ran them)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            prepare_launcher(config)
        except ConfigError as error:  # e.g. a Ray cluster that refuses this driver: one paragraph, exit 1
            print(f"ae-train: {error}", file=sys.stderr)
            raise SystemExit(1) from None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        SWEEP_SUMMARY[:] = summarize_sweep(Path(config.hydra.sweep.dir))
