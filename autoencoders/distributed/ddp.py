"""Several processes per run (Lightning's DDP): how the run's other processes are started.

On one machine Lightning starts them by re-running a command; ours runs
`python -m autoencoders.cli.ddp_worker <run-dir>`, never the user's command line, which might
hold `-m` (a sweep of its own) or a resume. Under Slurm (srun) the cluster starts every process
and this launcher is not used (distributed/processes.py tells each one its rank).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher


class WorkerLauncher(_SubprocessScriptLauncher):
    """Lightning's launcher for processes on this machine, starting our worker command instead of
    re-running the command line (it keeps its environment variables: rank, world size, address)."""

    def __init__(self, *args: Any, worker_command: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.worker_command = worker_command

    def _call_children_scripts(self) -> None:
        self._check_can_spawn_children()
        self.procs = []
        os.environ["MASTER_ADDR"] = self.cluster_environment.main_address
        os.environ["MASTER_PORT"] = str(self.cluster_environment.main_port)
        os.environ["NODE_RANK"] = str(self.cluster_environment.node_rank())
        os.environ["LOCAL_RANK"] = str(self.cluster_environment.local_rank())
        os.environ["LOCAL_WORLD_SIZE"] = str(self.num_processes)
        os.environ["WORLD_SIZE"] = f"{self.num_processes * self.num_nodes}"
        for local_rank in range(1, self.num_processes):
            environment = {**os.environ, "LOCAL_RANK": str(local_rank)}
            self.procs.append(subprocess.Popen(self.worker_command, env=environment))


class RunDDPStrategy(DDPStrategy):
    """DDP whose extra processes on this machine are our workers (see the module docstring)."""

    def __init__(self, worker_command: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.worker_command = worker_command

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if isinstance(self._launcher, _SubprocessScriptLauncher):
            self._launcher = WorkerLauncher(self.cluster_environment, self.num_processes, self.num_nodes,
                                            worker_command=self.worker_command)  # fmt: skip


def worker_command(run_dir: Path, checkpoint: Path | None, threads: int) -> list[str]:
    """The command that starts one worker process of the run in `run_dir`."""
    command = [sys.executable, "-m", "autoencoders.cli.ddp_worker", str(Path(run_dir).resolve()), f"--threads={threads}"]
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
