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


# Trainer arguments a model trained by several optimizers (machinery/phases.py) applies itself.
CLIPPING = ("gradient_clip_val", "gradient_clip_algorithm")


def check_trainer_fits_model(trainer: DictConfig, model_class: type) -> None:
    """Refuse settings a model with several optimizers per batch cannot train with: Lightning's
    gradient accumulation (it would change what one step is, and the phases' order)."""
    from autoencoders.errors import ConfigError
    from autoencoders.machinery.phases import PhasedAutoencoder

    accumulate = trainer.get("accumulate_grad_batches", 1)
    if issubclass(model_class, PhasedAutoencoder) and accumulate != 1:
        raise ConfigError(
            f"trainer.accumulate_grad_batches={accumulate!r} is not allowed for {model_class.__name__}: it updates "
            "several optimizers in turn on every batch (an autoencoder and a discriminator), and accumulating "
            "gradients over batches would mix their phases. Use a larger data.batch_size instead, or remove "
            "the override (1, the default)."
        )


def gradient_clipping(trainer: DictConfig) -> dict[str, Any]:
    """The clipping settings among the Trainer arguments, for a model that clips itself."""
    return {name: trainer[name] for name in CLIPPING if trainer.get(name) is not None}


def build_trainer(
    cfg: DictConfig,
    run_dir: Path,
    model_name: str,
    purge_step: int | None,
    stop: GracefulStop,
    worker_command: list[str],
    loggers: Sequence[Any] = (),
    callbacks: Sequence[Any] = (),
    manual_optimization: bool = False,
    write_dir: Path | None = None,
) -> tuple[Any, Any]:
    """The Trainer for `cfg.trainer`, and its best-checkpoint callback (whose checkpoint is tested).

    `purge_step`: TensorBoard drops the run's events from this step on (a resumed run repeats them).
    `worker_command`: what starts the run's other processes under DDP (distributed/ddp.py).
    `loggers`: the loggers beside TensorBoard (training/run_loggers.py), which is always the first.
    `callbacks`: callback objects to add after the run's own and `cfg.callbacks`' (benchmarks, tests).
    `manual_optimization`: the model steps several optimizers itself (machinery/phases.py); it
    clips gradients itself too (`gradient_clipping`), which Lightning then must not be given,
    and under DDP each phase's backward reaches only part of the parameters, so DDP looks
    for the unused ones.
    `write_dir`: where the checkpoints, events and the views' files go, when not the run directory
    (a resume writes into <run>/attempt/ until it completes: rundir/attempt.py).
    """
    import lightning as L

    from autoencoders.training.profiling import NoProfiler
    from autoencoders.views.tensorboard import SessionLogger

    trainer_args = OmegaConf.to_container(cfg.trainer, resolve=True)
    if manual_optimization:
        for name in CLIPPING:
            trainer_args.pop(name, None)
    files = write_dir or run_dir
    profiler = trainer_args.pop("profiler", None) or NoProfiler()  # ++trainer.profiler=simple measures
    progress_bar = trainer_args.get("enable_progress_bar", True)
    own, checkpoint = _own_callbacks(cfg, run_dir, files, model_name, stop, progress_bar)
    strategy, plugins = _strategy(trainer_args.pop("strategy", "auto"), worker_command, manual_optimization)
    trainer = L.Trainer(
        **trainer_args,
        strategy=strategy,
        plugins=plugins,
        profiler=profiler,
        # Our batch sampler shards the data itself (data/batches.py): Lightning must not wrap it.
        use_distributed_sampler=False,
        default_root_dir=files,
        logger=[
            SessionLogger(save_dir=files, name="", version="", default_hp_metric=False, purge_step=purge_step),
            *loggers,
        ],
        callbacks=[*own, *config_callbacks(cfg.get("callbacks")), *callbacks],
    )
    return trainer, checkpoint


def _own_callbacks(
    cfg: DictConfig, run_dir: Path, files: Path, model_name: str, stop: GracefulStop, progress_bar: bool
) -> tuple[list[Any], Any]:
    """The run's own callbacks (checkpoints best and last, lr, views, the signal stop, the bar),
    and the best-checkpoint one among them. `files`: where they write (the run directory, or a
    resume's attempt folder, whose views then also read the run's earlier files there)."""
    from lightning.pytorch.callbacks import LearningRateMonitor

    from autoencoders.console import RunProgressBar
    from autoencoders.rundir.checkpoints import RunCheckpoint
    from autoencoders.training.callback_group import CallbackGroup
    from autoencoders.views import build_callbacks

    checkpoint = RunCheckpoint(run_dir, dirpath=files / "checkpoints", filename="best", monitor="val/loss")
    # Lightning's save_last only writes when a new best was saved; resuming needs every epoch.
    last = RunCheckpoint(run_dir, dirpath=files / "checkpoints", filename="last")
    hparams = {"model": model_name, "data": cfg.data.name, "batch_size": cfg.data.batch_size, "seed": cfg.seed}
    views = build_callbacks(cfg.logging, hparams=hparams, earlier=run_dir if files != run_dir else None)
    # One callback to Lightning, which calls each of its callbacks six times a step (callback_group.py).
    own = [checkpoint, last, CallbackGroup([LearningRateMonitor(logging_interval="epoch"), *views, stop])]
    if progress_bar:
        # Redrawing the bar every step costs more than a small model's step.
        own.append(RunProgressBar(refresh_rate=20))
    return own, checkpoint


def _strategy(strategy: Any, worker_command: list[str], manual_optimization: bool) -> tuple[Any, list[Any]]:
    """Our DDP strategy for the DDP names (its processes start `worker_command`), and the plugins:
    checkpoints written atomically either way."""
    from autoencoders.rundir.checkpoints import AtomicCheckpointIO

    if strategy not in DDP_STRATEGIES:
        return strategy, [AtomicCheckpointIO()]
    from autoencoders.distributed.ddp import RunDDPStrategy

    find_unused = strategy == "ddp_find_unused_parameters_true" or manual_optimization
    return RunDDPStrategy(worker_command, checkpoint_io=AtomicCheckpointIO(), find_unused_parameters=find_unused), []


def config_callbacks(node: Mapping[str, Any] | None) -> list[Any]:
    """The extra callbacks of a `callbacks:` block (conf/callbacks/*.yaml), one `_target_` entry each."""
    from autoencoders.errors import ConfigError
    from autoencoders.rundir.loading import instantiate

    found = []
    for name, entry in (node or {}).items():
        if not isinstance(entry, Mapping) or "_target_" not in entry:
            raise ConfigError(
                f"callbacks.{name} is not a callback: each entry of the callbacks block is a mapping "
                f"with a _target_ (conf/callbacks/*.yaml), e.g. callbacks=timing."
            )
        found.append(instantiate(entry))
    return found
