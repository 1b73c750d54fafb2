"""The Lightning Trainer of a run: our loggers, checkpoints, views, signal handling, progress bar,
the extra callbacks of `cfg.callbacks` (conf/callbacks/), and our DDP strategy when several
processes train the run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from autoencoders.training.signals import GracefulStop

# trainer.strategy values that train with DistributedDataParallel over several processes.
DDP_STRATEGIES = ("ddp", "ddp_find_unused_parameters_true")


def build_trainer(cfg: DictConfig, run_dir: Path, model_name: str, purge_step: int | None, stop: GracefulStop,
                  worker_command: list[str], loggers: Sequence[Any] = (), callbacks: Sequence[Any] = ()) -> tuple[Any, Any]:  # fmt: skip
    """The Trainer for `cfg.trainer`, and its best-checkpoint callback (whose checkpoint is tested).

    `purge_step`: TensorBoard drops the run's events from this step on (a resumed run repeats them).
    `worker_command`: what starts the run's other processes under DDP (distributed/ddp.py).
    `loggers`: the loggers beside TensorBoard (training/run_loggers.py), which is always the first.
    `callbacks`: callback objects to add after the run's own and `cfg.callbacks`' (benchmarks, tests).
    """
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor

    from autoencoders.console import RunProgressBar
    from autoencoders.rundir.checkpoints import AtomicCheckpointIO, RunCheckpoint
    from autoencoders.views import build_callbacks
    from autoencoders.views.tensorboard import SessionLogger

    trainer_args = OmegaConf.to_container(cfg.trainer, resolve=True)
    checkpoint = RunCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor="val/loss")
    # Lightning's save_last only writes when a new best was saved; resuming needs every epoch.
    last = RunCheckpoint(dirpath=run_dir / "checkpoints", filename="last")
    own = [checkpoint, last, LearningRateMonitor(logging_interval="epoch")]
    own.extend(build_callbacks(cfg.logging, hparams={
        "model": model_name, "data": cfg.data.name, "batch_size": cfg.data.batch_size, "seed": cfg.seed,
    }))  # fmt: skip
    own.append(stop)
    if trainer_args.get("enable_progress_bar", True):
        # Redrawing the bar every step costs more than a small model's step.
        own.append(RunProgressBar(refresh_rate=20))
    strategy = trainer_args.pop("strategy", "auto")
    if strategy in DDP_STRATEGIES:
        from autoencoders.distributed.ddp import RunDDPStrategy

        strategy = RunDDPStrategy(worker_command, checkpoint_io=AtomicCheckpointIO(),
                                  find_unused_parameters=strategy == "ddp_find_unused_parameters_true")  # fmt: skip
        plugins = []
    else:
        plugins = [AtomicCheckpointIO()]
    trainer = L.Trainer(
        **trainer_args,
        strategy=strategy,
        plugins=plugins,
        # Our batch sampler shards the data itself (data/batches.py): Lightning must not wrap it.
        use_distributed_sampler=False,
        default_root_dir=run_dir,
        logger=[SessionLogger(save_dir=run_dir, name="", version="", default_hp_metric=False, purge_step=purge_step),
                *loggers],
        callbacks=[*own, *config_callbacks(cfg.get("callbacks")), *callbacks],
    )
    return trainer, checkpoint


def config_callbacks(node: Mapping[str, Any] | None) -> list[Any]:
    """The extra callbacks of a `callbacks:` block (conf/callbacks/*.yaml), one `_target_` entry each."""
    from autoencoders.errors import ConfigError
    from autoencoders.rundir.loading import instantiate

    found = []
    for name, entry in (node or {}).items():
        if not isinstance(entry, Mapping) or "_target_" not in entry:
            raise ConfigError(f"callbacks.{name} is not a callback: each entry of the callbacks block is a mapping "
                              f"with a _target_ (conf/callbacks/*.yaml), e.g. callbacks=timing.")  # fmt: skip
        found.append(instantiate(entry))
    return found
