"""`ae-eval` without the command line: re-test a finished run's checkpoint and evaluate it.

    ae-eval <run-dir> [--checkpoint best|last|interrupted|<path>] [eval.<key>=<value> ...]

It writes its own TensorBoard run in <run>/eval/<checkpoint name>/ and adds an "eval" entry to
the run's metrics.json; the run's event files and checkpoints are left as they are. It holds the
run's lock while it works: a run that is still training (or being evaluated) is refused with
a message naming the process that holds it, so no later write of the trainer drops the entry.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from autoencoders.distributed.torch_setup import resolve_threads, set_up_torch
from autoencoders.errors import CheckpointError
from autoencoders.internals import check_versions
from autoencoders.rundir.attempt import where_now
from autoencoders.rundir.loading import data_arguments, instantiate, load_config, load_model, resolve
from autoencoders.rundir.lock import RunLock
from autoencoders.rundir.record import METRICS_FILE, floats, read_record, timestamp, write_json_atomic
from autoencoders.schema import EvalSettings, LoggingSettings


def evaluate_run(
    target: str | Path,
    checkpoint: str | None = None,
    overrides: list[str] | None = None,
    trust: Iterable[str] = (),
) -> dict[str, Any]:
    """ae-eval without the command line: re-test a run's checkpoint and evaluate it; returns
    the "eval" entry it adds to the run's metrics.json. `trust`: modules whose classes the run may
    name beyond the shipped configs' (ae-eval --trust; rundir/trust.py)."""
    check_versions()
    run_dir, path = resolve(target, checkpoint)
    with RunLock(run_dir):  # refused, naming the holder, while the run trains or another ae-eval works
        return _evaluate(run_dir, where_now(path, run_dir), overrides, trust)  # the lock may finish a resume's move


def _evaluate(run_dir: Path, path: Path, overrides: list[str] | None, trust: Iterable[str]) -> dict[str, Any]:
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    from autoencoders.evaluation.suite import check_evaluation, evaluate_model, shared_passes
    from autoencoders.views.images import ImageGrids
    from autoencoders.views.latents import LatentViews

    cfg = load_config(run_dir, trust)  # its classes checked before any is imported
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item.lstrip("+") for item in overrides or []]))
    settings = EvalSettings.from_config(cfg.get("eval"))  # before anything slow: a typo fails at once
    set_up_torch(resolve_threads(cfg.get("torch_threads")))
    model, saved = load_model(cfg, path, trust)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data, seed=cfg.seed)
    datamodule.setup("test")
    _check_data_fits(model, datamodule, path)
    check_evaluation(settings, model, datamodule)  # before the test pass: a setting the data cannot meet

    eval_dir = run_dir / "eval" / evaluation_name(run_dir, path)
    _clear_previous_eval(eval_dir)  # one evaluation per checkpoint: no duplicate points
    logger = TensorBoardLogger(save_dir=eval_dir.parent, name=eval_dir.name, version="", default_hp_metric=False)
    views = LoggingSettings.from_config(cfg.get("logging"))
    # The grids of every epoch, drawn once after testing (there is no validation here).
    callbacks: list[L.Callback] = [ImageGrids(0, views.n_images, after_test=True)]
    if views.projector_points > 0:
        callbacks.append(LatentViews(0, views.projector_points))
    trainer = L.Trainer(**_trainer_args(cfg), default_root_dir=eval_dir, logger=logger, callbacks=callbacks)
    used: dict = {}
    with shared_passes(asdict(settings), model, datamodule):  # the latent views and the evaluations encode once
        trainer.test(model, datamodule=datamodule, verbose=False)
        metrics = floats(trainer.callback_metrics)
        metrics.update(evaluate_model(asdict(settings), model, datamodule, trainer.loggers, used=used))

    checkpoint_path = path.resolve()
    entry = {
        # Relative to the run when inside it, so the record survives moving the run directory.
        "checkpoint": str(
            checkpoint_path.relative_to(run_dir.resolve())
            if checkpoint_path.is_relative_to(run_dir.resolve())
            else checkpoint_path
        ),
        "epoch": saved.get("epoch"),
        "global_step": saved.get("global_step"),
        "settings": asdict(settings),
        "tensorboard": str(eval_dir),
        "metrics": metrics,
        **({"evaluation": used} if used else {}),  # sample sizes and seconds of the evaluations
        "at": timestamp(),
    }
    record = read_record(run_dir) if (run_dir / METRICS_FILE).is_file() else {}
    record["eval"] = entry  # the rest of the record (status, training metrics, provenance) is kept
    write_json_atomic(run_dir / METRICS_FILE, record)
    return entry


def _check_data_fits(model: Any, datamodule: Any, path: Path) -> None:
    for name, value in data_arguments(type(model), datamodule).items():
        if model.hparams[name] != value:
            raise CheckpointError(
                f"Checkpoint {path} was built for {name}={model.hparams[name]}, but the run's data gives {name}={value}."
            )


def _trainer_args(cfg: Any) -> dict[str, Any]:
    """One process, whatever the run trained with (a DDP run's checkpoint is evaluated the same way),
    and the run's own test batches (its limit_test_batches), so test/mse equals the run's."""
    single = {"strategy": "auto", "devices": 1, "num_nodes": 1, "use_distributed_sampler": False}
    quiet = {"enable_progress_bar": False, "enable_model_summary": False, "enable_checkpointing": False}
    return {**OmegaConf.to_container(cfg.trainer, resolve=True), **single, **quiet}


def evaluation_name(run_dir: Path, checkpoint: Path) -> str:
    """The folder under <run>/eval/ for a checkpoint: its name for the run's own checkpoints
    (eval/best/), and one that cannot collide with them for a checkpoint from elsewhere."""
    resolved = checkpoint.resolve()
    if resolved.parent == (run_dir / "checkpoints").resolve():
        return checkpoint.stem
    return f"external-{checkpoint.stem}-{hashlib.sha1(str(resolved).encode()).hexdigest()[:8]}"


def _clear_previous_eval(eval_dir: Path) -> None:
    """Remove an earlier ae-eval of the same checkpoint (only files ae-eval writes there)."""
    if eval_dir.is_dir():
        shutil.rmtree(eval_dir)
