"""train(cfg): build the data, model and trainer from a composed config, train, test, evaluate,
and write the run directory (TensorBoard events, checkpoints, config.yaml, metrics.json).

It reads as its steps: open the run's record, build data and model, build the trainer, fit,
test the tested checkpoint, evaluate it, finish. Heavy libraries (torch, lightning) are imported
inside the steps, so `ae-train --help` and shell completion stay fast. The Hydra job around it
(run-directory lock, log file, sweep re-runs) is training/job.py.
"""

from __future__ import annotations

import logging
import signal
import traceback
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from autoencoders.console import print_metrics, route_lightning_logs_through_root
from autoencoders.distributed.torch_setup import cuda_check_without_nvml, set_up_torch
from autoencoders.errors import Diverged, RunInterrupted
from autoencoders.internals import check_versions
from autoencoders.rundir.attempt import end_attempt, open_attempt, pending_record, promote, promoted_name
from autoencoders.rundir.checkpoints import ConfigStamp, load_checkpoint
from autoencoders.rundir.record import RunRecord, WorkerRecord, floats, read_record
from autoencoders.rundir.resume import ResumePlan, plan_resume
from autoencoders.rundir.trust import own_targets
from autoencoders.training.building import prepare
from autoencoders.training.opening import open_record
from autoencoders.training.run_loggers import close_loggers, flush_files, run_loggers
from autoencoders.training.signals import GracefulStop, StopSignals
from autoencoders.training.trainer import build_trainer, check_trainer_fits_model, gradient_clipping

log = logging.getLogger("autoencoders")


@dataclass
class RunState:
    """What a run has so far: its record, and the trainer and metrics for a record of a stop."""

    record: RunRecord
    signals: StopSignals = field(default_factory=StopSignals)
    trainer: Any = None
    metrics: dict[str, float] = field(default_factory=dict)
    callbacks: list[Any] = field(default_factory=list)  # extra callback objects (train's `callbacks`)
    outcome: str = "failed"  # how this attempt ended, as the record says (a resume's own status)
    attempt: Path | None = None  # a resume writes its files there until it completes (rundir/attempt.py)

    def metrics_so_far(self) -> dict[str, float]:
        if self.metrics or self.trainer is None:
            return self.metrics
        return floats(self.trainer.callback_metrics)


def train(
    cfg: DictConfig,
    run_dir: str | Path | None = None,
    overrides: list[str] | None = None,
    resume: ResumePlan | None = None,
    callbacks: Sequence[Any] = (),
) -> dict[str, float]:
    """Train, test and evaluate the configured model; return the final metrics (also in metrics.json).

    `run_dir` and `overrides` default to Hydra's job output directory and command-line
    overrides, so tests can call this with a composed config and a temporary directory.
    `resume` (rundir.resume.plan_resume) continues the run in `run_dir` from its checkpoint.
    `callbacks`: Lightning callbacks added after the run's own and the config's, e.g. a benchmark's clock.
    """
    check_versions()
    if run_dir is None:
        run_dir = HydraConfig.get().runtime.output_dir
        overrides = list(HydraConfig.get().overrides.task) if overrides is None else overrides
    run_dir = Path(run_dir)
    route_lightning_logs_through_root()
    state = RunState(open_record(cfg, run_dir, overrides or [], resume), callbacks=list(callbacks))
    state.attempt = open_attempt(run_dir, resume.checkpoint) if resume is not None else None
    _run(cfg, run_dir, resume.checkpoint if resume is not None else None, state)
    print_metrics("Final metrics", state.metrics, f"Run directory: {run_dir}")
    return state.metrics


def train_worker(cfg: DictConfig, run_dir: Path, checkpoint: Path | None, threads: int) -> None:
    """One worker process of a run trained by several processes (DDP; distributed/processes.py): it
    trains and tests its shard beside the main process and writes nothing of its own."""
    route_lightning_logs_through_root()
    set_up_torch(threads)
    _run(cfg, Path(run_dir), checkpoint, RunState(WorkerRecord()))


def _run(cfg: DictConfig, run_dir: Path, checkpoint: Path | None, state: RunState) -> None:
    """Fit, test and evaluate under the run's signal handlers; the record's end, whatever happens."""
    from autoencoders.distributed.ddp import own_process_group

    state.signals.install()
    try:
        with own_process_group():
            _fit_test_evaluate(cfg, run_dir, checkpoint, state)
        state.outcome = "completed"
        with state.signals.deferred():  # a stop now would leave half the files moved
            if state.attempt is None:
                state.record.finish("completed", state.metrics)
            else:  # the resume's record, written whole, commits it; then its files become the run's, the record last
                flush_files(state.trainer)
                state.record.finish("completed", state.metrics, into=pending_record(run_dir))
                promote(run_dir)
    except (KeyboardInterrupt, SystemExit):
        state.outcome = "interrupted"
        # SIGTERM or SIGINT (StopSignals; Lightning's SIGTERMException): checkpoints are saved.
        signal_number = state.signals.signal_number or signal.SIGINT
        stopped = RunInterrupted(
            f"Stopped by {signal.Signals(signal_number).name}; the run can continue from its "
            f"checkpoints in {(state.attempt or run_dir) / 'checkpoints'}: ae-train resume={run_dir}",
            signal_number,
        )
        # The record names the signal received (Lightning's SIGTERMException would say SIGTERM, empty).
        state.record.finish("interrupted", state.metrics_so_far(), stopped, traceback.format_exc())
        raise stopped from None
    except BaseException as error:
        status = state.outcome = "diverged" if isinstance(error, Diverged) else "failed"
        state.record.finish(status, state.metrics_so_far(), error, traceback.format_exc())
        raise
    finally:
        state.signals.restore()
        if state.trainer is not None:  # the event file closed; the other loggers get the attempt's end
            close_loggers(state.trainer, state.record, state.outcome, state.metrics_so_far(), run_dir)
        if state.attempt is not None and state.outcome != "completed":
            end_attempt(run_dir)  # the run's own files stay as they were


def resume_training(
    run_dir: str | Path, overrides: list[str] | tuple[str, ...] = (), checkpoint: str | Path | None = None
) -> dict[str, float]:
    """Continue the run in `run_dir` (its newest usable checkpoint, or `checkpoint`) with the
    overrides a resume may have (rundir/resume.py); everything is checked before anything is written."""
    run_dir = Path(run_dir)
    plan = plan_resume(run_dir, list(overrides), Path(checkpoint) if checkpoint is not None else None)
    return train(plan.cfg, run_dir, read_record(run_dir).get("overrides", []), resume=plan)


def _fit_test_evaluate(cfg: DictConfig, run_dir: Path, checkpoint: Path | None, state: RunState) -> None:
    """Build data, model and trainer; fit; test the tested checkpoint; evaluate it; metrics into `state`.
    Under DDP every process fits and tests its shard; the main one alone evaluates, the others wait."""
    import lightning as L

    from autoencoders.evaluation.suite import evaluate_model, shared_passes

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule, model = prepare(cfg, state.record)  # everything that can be refused before training is, here
    if cfg.get("compile"):
        model.compile_networks()
    manual = not model.automatic_optimization
    if manual:  # several optimizers per batch: the model clips each phase (machinery/phases.py)
        check_trainer_fits_model(cfg.trainer, type(model))  # a resume's overrides too
        model.gradient_clipping = gradient_clipping(cfg.trainer)
    trainer, best = _trainer(cfg, run_dir, checkpoint, state, manual)
    files = state.attempt or run_dir
    with cuda_check_without_nvml(), ExitStack() as tested_weights:
        trainer.fit(model, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True)
        last = _epoch_metrics(trainer.callback_metrics)
        state.signals.check()
        tested = Path(best.best_model_path) if best.best_model_path else files / "checkpoints" / "last.ckpt"
        tested_weights.enter_context(shared_passes(cfg.eval, model, datamodule))  # the tested weights from here on
        trainer.test(
            model,
            datamodule=datamodule,
            ckpt_path=tested if tested.is_file() else None,
            verbose=False,
            weights_only=True,
        )
        state.metrics = {**last, **floats(trainer.callback_metrics)}
        if trainer.is_global_zero:
            state.metrics.update(_record_tested_checkpoint(state, run_dir, tested, last))
            used: dict = {}
            state.metrics.update(evaluate_model(cfg.eval, model, datamodule, trainer.loggers, used=used))
            if used:  # sample sizes and seconds beside the scores
                state.record.update(evaluation=used)
        trainer.strategy.barrier("evaluated")  # the other processes wait for the main one


def _trainer(cfg: DictConfig, run_dir: Path, checkpoint: Path | None, state: RunState, manual: bool) -> tuple[Any, Any]:
    """The run's trainer (in `state`) and its best-checkpoint callback; the processes in the record.
    A resume's checkpoints and events go to its attempt folder (rundir/attempt.py)."""
    import torch

    from autoencoders.distributed.ddp import worker_command

    purge_step = _purge_step(run_dir, checkpoint)
    stamp = ConfigStamp((state.record.current("config") or {}).get("sha256"))  # in every checkpoint
    state.trainer, best = build_trainer(
        cfg,
        run_dir,
        state.record.current("model", {}).get("name", ""),
        purge_step,
        GracefulStop(state.signals, (state.attempt or run_dir) / "checkpoints"),
        worker_command(run_dir, checkpoint, torch.get_num_threads(), own_targets(cfg)),
        run_loggers(cfg, run_dir, state.record, purge_step, state.attempt),
        [stamp, *state.callbacks],
        manual,
        state.attempt,
    )
    size, count = cfg.data.batch_size, state.trainer.world_size
    state.record.update(processes={"count": count, "batch_per_process": size, "global_batch": size * count})
    return state.trainer, best


def _epoch_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The per-epoch values training logged (train/*, val/*, the learning rate); not test/*."""
    return {name: value for name, value in floats(metrics).items() if not name.startswith("test/")}


def _record_tested_checkpoint(state: RunState, run_dir: Path, tested: Path, last: dict[str, float]) -> dict[str, float]:
    """Which checkpoint was tested and the epoch values it was saved with, and the last epoch's
    values apart (`last`); returns the tested checkpoint's epoch values for `metrics`.

    The tested checkpoint's val/* also go to every logger at the test step, beside test/*, so the
    HParams session (each tag's last value) shows the same numbers as metrics.json."""
    trainer = state.trainer
    if last:  # a resume whose training had finished trained no epoch: the record keeps its last one
        state.record.update(last={"epoch": trainer.current_epoch - 1, "step": trainer.global_step, "metrics": last})
    if not tested.is_file():  # no checkpoint was written (checkpointing off): the last weights were tested
        state.record.update(
            tested={"checkpoint": None, "epoch": trainer.current_epoch - 1, "step": trainer.global_step}
        )
        return last
    # The tested checkpoint as trainer.test loaded it (machinery.base.on_load_checkpoint): read once.
    saved = trainer.lightning_module.loaded_checkpoint or load_checkpoint(tested)
    values = saved.get("epoch_metrics")
    state.record.update(
        tested={
            "checkpoint": promoted_name(tested, run_dir),  # its name once a resume's files are promoted
            "epoch": saved.get("epoch"),
            "step": saved.get("global_step"),
            # Checkpoints written before the values were saved with them: the last epoch's stand in.
            **(
                {}
                if values is not None
                else {"note": "the checkpoint predates saved epoch values; these are the last epoch's"}
            ),
        }
    )
    if values is None:
        return last
    for logger in trainer.loggers:
        logger.log_metrics(
            {name: value for name, value in values.items() if name.startswith("val/")}, step=trainer.global_step
        )
    return dict(values)


def _purge_step(run_dir: Path, checkpoint: Path | None) -> int:
    """The step from which TensorBoard drops this run directory's earlier events.

    Every session of a run writes a restart marker (SessionLog.START) at this step at the head of
    its first event file: a new run at 0 (nothing is dropped), a resume at its checkpoint's step,
    so the points it logs again replace the old ones instead of doubling them. The new run's
    marker matters too: TensorBoard's server takes the first marker it meets as the run's start,
    not as a restart, so without it a resume's marker would be ignored there.
    """
    if checkpoint is None:
        return 0
    step = load_checkpoint(checkpoint)["global_step"]
    log.info("Resuming %s from %s (step %d)", run_dir, checkpoint.name, step)
    return step
