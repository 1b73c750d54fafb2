"""Several processes per run (Lightning's DDP): how the run's other processes are started.

On one machine Lightning starts them by re-running a command; ours runs
`python -m autoencoders.cli.ddp_worker <run-dir>`, never the user's command line, which might
hold `-m` (a sweep of its own) or a resume. Under Slurm (srun) the cluster starts every process
and this launcher is not used (distributed/processes.py tells each one its rank).

Where they meet: when this launcher starts them at a loopback address (MASTER_ADDR unset, as on
one machine), rank 0's rendezvous store listens on loopback only (torch's own TCPStore server
listens on every interface whatever address it is given) and gloo's and NCCL's sockets stay on
the loopback interface. An address the user names (MASTER_ADDR, several nodes) is used as torch
uses it.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from autoencoders.distributed.processes import cluster_job
from autoencoders.internals import WorkerDDPStrategy, process_group_settings

# The variables that keep gloo's and NCCL's own sockets on one interface (torch's and NCCL's docs).
INTERFACE_VARIABLES = {"gloo": "GLOO_SOCKET_IFNAME", "nccl": "NCCL_SOCKET_IFNAME"}


class RunDDPStrategy(WorkerDDPStrategy):
    """Our DDP strategy: Lightning's, with the worker command above as its way to start processes
    (its private parts are in autoencoders/internals.py), meeting on loopback only on one machine."""

    def setup_distributed(self) -> None:
        environment = self.cluster_environment
        opened = torch.distributed.is_available() and torch.distributed.is_initialized()  # fit, then test
        if not opened and environment is not None and cluster_job() is None and on_loopback(environment.main_address):
            self.set_world_ranks()
            backend, timeout = process_group_settings(self)
            keep_on_loopback(backend)
            store = loopback_store(environment.main_address, environment.main_port, self.global_rank, timeout)
            cuda = {"device_id": self.root_device} if self.root_device.type == "cuda" else {}
            torch.distributed.init_process_group(
                backend, store=store, rank=self.global_rank, world_size=self.world_size, timeout=timeout, **cuda
            )
        super().setup_distributed()  # Lightning's: it finds the process group open and keeps it


def on_loopback(address: str) -> bool:
    """Whether the processes meet at a loopback address: one machine, no address named."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # a host name: another node's, as far as we know
        return False


def loopback_store(address: str, port: int, rank: int, timeout: timedelta) -> Any:
    """The run's rendezvous store at `address` (loopback): rank 0 serves it on a socket bound there
    alone, the others connect to it."""
    from torch.distributed import TCPStore

    address = "127.0.0.1" if address == "localhost" else address
    if rank != 0:
        return TCPStore(address, port, is_master=False, timeout=timeout)
    listener = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, port))
        listener.listen(socket.SOMAXCONN)
    except OSError:
        listener.close()
        raise
    # The store owns the socket from here on, and closes it with the process group.
    fd = listener.detach()
    return TCPStore(address, port, is_master=True, timeout=timeout, wait_for_workers=False, master_listen_fd=fd)


def keep_on_loopback(backend: str) -> None:
    """Point gloo's (or NCCL's) own sockets at the loopback interface, unless the user chose one."""
    variable = INTERFACE_VARIABLES.get(backend)
    loopback = next((name for _, name in socket.if_nameindex() if name in ("lo", "lo0")), None)
    if variable is not None and loopback is not None:
        os.environ.setdefault(variable, loopback)


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
RENDEZVOUS = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "NODE_RANK",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "WORLD_SIZE",
    *INTERFACE_VARIABLES.values(),
)


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
