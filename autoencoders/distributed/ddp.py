"""Several processes per run (Lightning's DDP): how the run's other processes are started.

On one machine Lightning starts them by re-running a command; ours runs
`python -m autoencoders.cli.ddp_worker <run-dir>`, never the user's command line, which might
hold `-m` (a sweep of its own) or a resume. Under Slurm (srun) the cluster starts every process
and this launcher is not used (distributed/processes.py tells each one its rank).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from autoencoders.internals import WorkerDDPStrategy

# Our DDP strategy: Lightning's, with the worker command above as its way to start processes
# (its private parts are in autoencoders/internals.py).
RunDDPStrategy = WorkerDDPStrategy


def worker_command(run_dir: Path, checkpoint: Path | None, threads: int, trust: Sequence[str] = ()) -> list[str]:
    """The command that starts one worker process of the run in `run_dir`. `trust`: the classes of
    the config the main process trains with (the user's command, or checked: rundir/trust.py), which
    the worker reading the run's config.yaml back may import."""
    command = [
        sys.executable,
        "-m",
        "autoencoders.cli.ddp_worker",
        str(Path(run_dir).resolve()),
        f"--threads={threads}",
        *(f"--trust={target}" for target in trust),
    ]
    return command + ([f"--checkpoint={Path(checkpoint).resolve()}"] if checkpoint is not None else [])


# What the launcher puts in this process's environment for the processes to find each other.
RENDEZVOUS = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "WORLD_SIZE")


@contextmanager
def own_process_group() -> Iterator[None]:
    """Leave no process group and no rendezvous variables behind: the next job of a sweep run in
    this process (Hydra's basic launcher) starts a process group of its own, with its own workers."""
    saved = {key: os.environ.get(key) for key in RENDEZVOUS}
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
