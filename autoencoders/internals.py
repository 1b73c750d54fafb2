"""Every private name of Lightning and torch the package uses, behind one door.

Each one is used because the public API has no way to do the thing; each says why. They were
checked against lightning 2.6.6 and torch 2.14.1; pyproject.toml admits only the Lightning minor
versions tested (LIGHTNING_TESTED), and `check_versions()` stops a run at start-up with one clear
message on any other, rather than failing deep inside training. When Lightning changes one of
these, this module is the only place to change.

Public APIs are used where they exist: whether a module has a trainer is `module.trainer`
raising RuntimeError (`trainer_of`), the TensorBoard file writer is `SummaryWriter.file_writer`
while it is open.
"""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING, Any

import lightning
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

from autoencoders.errors import UnsupportedVersion

if TYPE_CHECKING:
    import lightning as L
    from torch.utils.tensorboard import SummaryWriter

LIGHTNING_TESTED = ("2.6",)  # minor versions the suite ran on; pyproject.toml pins the same range


def check_versions(version: str | None = None) -> None:
    """Raise UnsupportedVersion unless Lightning is a tested minor version."""
    version = version or lightning.__version__
    if ".".join(version.split(".")[:2]) not in LIGHTNING_TESTED:
        raise UnsupportedVersion(
            f"lightning {version} is installed, but autoencoders was tested with lightning "
            f"{', '.join(v + '.x' for v in LIGHTNING_TESTED)} only: it relies on a few of Lightning's internals "
            "(autoencoders/internals.py) that change between minor versions. Install a tested version "
            f"(pip install 'lightning>={LIGHTNING_TESTED[0]},<{_next_minor(LIGHTNING_TESTED[-1])}') or update "
            "autoencoders."
        )


def _next_minor(version: str) -> str:
    major, minor = version.split(".")
    return f"{major}.{int(minor) + 1}"


def trainer_of(module: L.LightningModule) -> L.Trainer | None:
    """The module's Trainer, or None when it has none (a model built in a notebook or a test)."""
    try:
        return module.trainer  # public: raises RuntimeError when no Trainer is attached
    except RuntimeError:
        return None


# Private: the LightningModule attribute Lightning sets before and after every hook it calls
# (`trainer/call.py`: `pl_module._current_fx_name = hook_name`), ~40 times a training step with
# our callbacks. nn.Module.__setattr__ checks parameters, modules and buffers first (~2 µs), for a
# name that is always a plain string; machinery/base.py sets it directly instead.
HOOK_NAME_ATTRIBUTE = "_current_fx_name"


def open_writer(logger: Any) -> SummaryWriter | None:
    """A TensorBoardLogger's SummaryWriter if it has one open, without opening one.

    Private: `TensorBoardLogger._experiment`. The public `.experiment` creates a writer (and an
    event file) when there is none, which is what closing and flushing must not do."""
    return logger._experiment


def file_writer(writer: SummaryWriter) -> Any:
    """The FileWriter under a SummaryWriter, to add a summary to the run's own event file.

    `SummaryWriter.add_hparams` would open a second run directory; its public `file_writer`
    attribute is None after close(), when only the private `_get_file_writer()` reopens it."""
    return writer.file_writer if writer.file_writer is not None else writer._get_file_writer()


def stop_lightnings_sigterm_exchange(trainer: L.Trainer) -> None:
    """Turn off Lightning's exchange of its SIGTERM flag at every training step under DDP.

    Private: `fit_loop.epoch_loop._broadcast_sigterm_tensor`. That exchange is a collective (a
    host sync on a GPU) per step; training/signals.py agrees on stopping every
    log_every_n_steps steps instead, and Lightning has no switch for its own."""
    trainer.fit_loop.epoch_loop._broadcast_sigterm_tensor = lambda: None


class WorkerLauncher(_SubprocessScriptLauncher):
    """Lightning's launcher for processes on this machine, starting `worker_command` instead of
    re-running the command line (which may hold `-m` or a resume; Lightning's launcher takes no
    command to run instead). It keeps Lightning's environment variables: rank, world size, address.

    Private: `_SubprocessScriptLauncher` and its `_call_children_scripts`/`_check_can_spawn_children`.
    `_call_children_scripts` is Lightning 2.6.6's, minus its seed handling (each worker seeds
    itself from the run's config)."""

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


def averages_models(strategy: DDPStrategy) -> bool:
    """Whether a DDP strategy averages parameters after each optimizer step (post-local SGD, set
    up by its ddp_comm_state): its optimizer_step then does more than the base strategy's.
    Private: `DDPStrategy._model_averager`, None unless it averages."""
    return getattr(strategy, "_model_averager", None) is not None


def process_group_settings(strategy: DDPStrategy) -> tuple[str, Any]:
    """The backend and timeout Lightning's DDP strategy opens its process group with.

    Private: `DDPStrategy._get_process_group_backend()` and `_timeout`. Lightning opens the group
    itself (`setup_distributed`) with no way to hand it a store; distributed/ddp.py opens it first,
    with a store that listens on loopback only, and Lightning then keeps the open group."""
    return strategy._get_process_group_backend(), strategy._timeout


class WorkerDDPStrategy(DDPStrategy):
    """DDP whose extra processes on this machine are started by WorkerLauncher.

    Private: `DDPStrategy._configure_launcher` and `_launcher`, the only way to give a strategy
    another launcher."""

    def __init__(self, worker_command: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.worker_command = worker_command

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if isinstance(self._launcher, _SubprocessScriptLauncher):
            self._launcher = WorkerLauncher(
                self.cluster_environment, self.num_processes, self.num_nodes, worker_command=self.worker_command
            )
