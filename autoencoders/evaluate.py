"""Evaluation beyond test/mse: linear probe, anomaly detection, VAE test log-likelihood; `ae-eval`.

`evaluate_model(cfg.eval, model, datamodule, logger)` runs at the end of `train()` (after the
best checkpoint was tested) and inside `ae-eval`, which re-tests a finished run:

    ae-eval <run-dir> [--checkpoint best|last|<path>] [eval.<key>=<value> ...]
    ae-eval <run-dir>/checkpoints/last.ckpt

ae-eval writes its own TensorBoard run in <run>/eval/<checkpoint name>/ and adds an "eval" entry
to the run's metrics.json; the run's event files and checkpoints are left as they are.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from autoencoders.errors import LOG_FORMAT, CheckpointError, ConfigError, describe, full_error_requested

log = logging.getLogger("autoencoders")
# Subsets are drawn with this seed, not the run's: runs of a seed sweep are scored on the same images.
SUBSET_SEED = 0


@dataclass(frozen=True)
class EvalSettings:
    """The `eval:` block of conf/train.yaml (README, "Evaluation")."""

    probe: bool = True  # logistic regression on frozen codes -> test/probe_acc
    probe_train_size: int | None = 10_000  # training codes the probe is fitted on; None = all
    anomaly: bool | str = "auto"  # auto: when data.normal_classes or data.holdout_class is set
    anomaly_images: int = 16  # worst-reconstructed test images in the anomaly/worst grid; 0 = none
    nll_samples: int = 100  # VAE: importance samples per image for test/nll; 0 = off
    nll_images: int | None = 1000  # test images (a fixed seeded subset) for test/nll; None = all

    @classmethod
    def from_config(cls, node: Any) -> EvalSettings:
        values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"eval.{unknown[0]} is not an eval setting; the settings are {', '.join(sorted(known))}.")
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        def bad(key: str, allowed: str) -> ConfigError:
            return ConfigError(f"eval.{key}={getattr(self, key)!r} is not allowed: eval.{key} must be {allowed}.")

        if not isinstance(self.probe, bool):
            raise bad("probe", "true or false")
        if self.anomaly not in (True, False, "auto"):
            raise bad("anomaly", "auto, true or false")
        for key, low, nullable in (("probe_train_size", 1, True), ("anomaly_images", 0, False),
                                   ("nll_samples", 0, False), ("nll_images", 1, True)):  # fmt: skip
            value = getattr(self, key)
            if (value is None and not nullable) or (value is not None and (type(value) is not int or value < low)):
                raise bad(key, f"an integer >= {low}" + (" or null (all)" if nullable else ""))


def evaluate_model(settings: Any, model: Any, datamodule: Any, logger: Any = None, step: int | None = None) -> dict[str, float]:
    """test/probe_acc, test/anomaly_* and (vae) test/nll of a trained model, as `settings` ask.

    Scalars and the anomaly/* images go to `logger` (a TensorBoardLogger) at `step`, by default
    the model's global step, where Lightning logged test/*.
    """
    from autoencoders.callbacks import evaluating

    settings = EvalSettings.from_config(settings)
    step = model.global_step if step is None else step
    writer = getattr(logger, "experiment", None) if logger is not None else None
    metrics: dict[str, float] = {}
    with evaluating(model):
        if settings.probe:
            started = time.perf_counter()
            from autoencoders.probe import linear_probe

            metrics["test/probe_acc"] = linear_probe(model, datamodule.train_set.tensors, datamodule.test_set.tensors,
                                                     settings.probe_train_size, SUBSET_SEED)  # fmt: skip
            log.info("Linear probe: accuracy %.4f (%.1f s)", metrics["test/probe_acc"], time.perf_counter() - started)
        normal_classes = getattr(datamodule, "normal_classes", None)
        if settings.anomaly is True and normal_classes is None:
            raise ConfigError("eval.anomaly=true needs data.normal_classes or data.holdout_class (which classes are "
                              "normal); set one, or use eval.anomaly=auto.")  # fmt: skip
        if settings.anomaly and normal_classes is not None:
            metrics.update(_anomaly(model, datamodule, normal_classes, settings.anomaly_images, writer, step))
        if settings.nll_samples > 0 and callable(getattr(model, "posterior", None)):
            from autoencoders.likelihood import importance_weighted_nll
            from autoencoders.probe import subset

            started = time.perf_counter()
            images = datamodule.test_set.tensors[0]
            images = images[subset(len(images), settings.nll_images, SUBSET_SEED)]
            metrics["test/nll"] = float(importance_weighted_nll(model, images, settings.nll_samples, seed=SUBSET_SEED).mean())
            log.info("test/nll %.3f nats (k=%d, %d images, %.1f s)", metrics["test/nll"], settings.nll_samples,
                     len(images), time.perf_counter() - started)  # fmt: skip
    if logger is not None and metrics:
        logger.log_metrics(metrics, step=step)
        logger.save()
    if writer is not None:
        writer.flush()
    return dict(sorted(metrics.items()))


def _anomaly(model: Any, datamodule: Any, normal_classes: list[int], n_images: int, writer: Any, step: int) -> dict[str, float]:
    """Tutorial 001's pipeline on the test set; the worst reconstructions to TensorBoard."""
    import torch

    from autoencoders.anomaly import anomaly_metrics, reconstruction_errors, worst_grid

    images, labels = datamodule.test_set.tensors
    is_anomaly = ~torch.isin(labels, torch.tensor(normal_classes))
    test_errors = reconstruction_errors(model, images)
    val_errors = reconstruction_errors(model, datamodule.val_set.tensors[0])  # val holds normal classes only
    metrics = anomaly_metrics(test_errors, is_anomaly, val_errors)
    if writer is not None:
        writer.add_histogram("anomaly/errors_normal", test_errors[~is_anomaly], step)
        writer.add_histogram("anomaly/errors_anomalous", test_errors[is_anomaly], step)
        if n_images > 0:
            grid, worst = worst_grid(model, images, test_errors, n_images)
            writer.add_image("anomaly/worst", grid, step)
            names = datamodule.class_names
            rows = [f"| {rank + 1} | {names[int(labels[i])]} | {'anomaly' if is_anomaly[i] else 'normal'} | "
                    f"{float(test_errors[i]):.5f} |" for rank, i in enumerate(worst.tolist())]  # fmt: skip
            writer.add_text("anomaly/worst", "\n".join(["| rank | class | truth | error |", "|---|---|---|---|", *rows]), step)
    return metrics


def evaluate_run(target: str | Path, checkpoint: str | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """ae-eval without the command line: re-test a run's checkpoint and evaluate it; returns
    the "eval" entry it adds to the run's metrics.json."""
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    from autoencoders.callbacks import ImageGrids
    from autoencoders.latents import LatentViews
    from autoencoders.loading import load_config, load_model, resolve
    from autoencoders.run_record import METRICS_FILE, read_record, write_json_atomic
    from autoencoders.train import _floats, _instantiate, resolve_threads, set_up_torch

    class ImageGridsAfterTest(ImageGrids):
        """The per-epoch reconstruction/sample grids, drawn once after testing (no validation here)."""

        def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            self.on_validation_epoch_end(trainer, pl_module)

    run_dir, path = resolve(target, checkpoint)
    cfg = load_config(run_dir)
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item.lstrip("+") for item in overrides or []]))
    settings = EvalSettings.from_config(cfg.get("eval"))  # before anything slow: a typo fails at once
    set_up_torch(resolve_threads(cfg.get("torch_threads")))
    model, saved = load_model(cfg, path)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = _instantiate(cfg.data, seed=cfg.seed)
    datamodule.setup("test")
    if tuple(datamodule.input_shape) != tuple(model.input_shape):
        raise CheckpointError(f"Checkpoint {path} takes images of shape {list(model.input_shape)}, but the run's "
                              f"data gives {list(datamodule.input_shape)}.")  # fmt: skip

    eval_dir = run_dir / "eval" / path.stem
    _clear_previous_eval(eval_dir)  # one evaluation per checkpoint name: no duplicate points
    logger = TensorBoardLogger(save_dir=run_dir / "eval", name=path.stem, version="", default_hp_metric=False)
    logging_cfg = {"n_images": 16, "projector_points": 2000, **OmegaConf.to_container(cfg.get("logging") or {})}
    callbacks: list[L.Callback] = [ImageGridsAfterTest(1, logging_cfg["n_images"])]
    if logging_cfg["projector_points"] > 0:
        callbacks.append(LatentViews(0, logging_cfg["projector_points"]))
    trainer_args = {**OmegaConf.to_container(cfg.trainer, resolve=True), "enable_progress_bar": False,
                    "enable_model_summary": False, "enable_checkpointing": False}  # fmt: skip
    trainer = L.Trainer(**trainer_args, default_root_dir=eval_dir, logger=logger, callbacks=callbacks)
    trainer.test(model, datamodule=datamodule, verbose=False)
    metrics = _floats(trainer.callback_metrics)
    metrics.update(evaluate_model(asdict(settings), model, datamodule, logger))

    checkpoint_path = path.resolve()
    entry = {
        # Relative to the run when inside it, so the record survives moving the run directory.
        "checkpoint": str(checkpoint_path.relative_to(run_dir.resolve()) if checkpoint_path.is_relative_to(run_dir.resolve())
                          else checkpoint_path),  # fmt: skip
        "epoch": saved.get("epoch"),
        "global_step": saved.get("global_step"),
        "settings": asdict(settings),
        "tensorboard": str(eval_dir),
        "metrics": metrics,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    record = read_record(run_dir) if (run_dir / METRICS_FILE).is_file() else {}
    record["eval"] = entry  # the rest of the record (status, training metrics, provenance) is kept
    write_json_atomic(run_dir / METRICS_FILE, record)
    return entry


def _clear_previous_eval(eval_dir: Path) -> None:
    """Remove an earlier ae-eval of the same checkpoint (only files ae-eval writes there)."""
    import shutil

    if eval_dir.is_dir():
        shutil.rmtree(eval_dir)


def _print_metrics(entry: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ae-eval: {entry['checkpoint']} (epoch {entry['epoch']})")
    table.add_column("metric", style="cyan")
    table.add_column("value", justify="right", style="green")
    for name, value in entry["metrics"].items():
        table.add_row(name, f"{value:.6g}")
    console = Console(stderr=True)
    console.print(table)
    console.print(f"TensorBoard: {entry['tensorboard']}")


def main(argv: list[str] | None = None) -> None:
    """Console entry point of `ae-eval`."""
    parser = argparse.ArgumentParser(
        prog="ae-eval",
        description="Re-test a trained run's checkpoint and evaluate it (linear probe, anomaly detection, VAE "
        "test/nll); results go to <run>/metrics.json under \"eval\" and to TensorBoard in <run>/eval/.",
    )
    parser.add_argument("target", help="a run directory, or a checkpoint file in <run>/checkpoints/")
    parser.add_argument("--checkpoint", help="best (default), last, or a checkpoint path (with a run directory)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="settings for this evaluation only, e.g. eval.nll_samples=1000 eval.nll_images=null")  # fmt: skip
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    try:
        entry = evaluate_run(args.target, args.checkpoint, args.overrides)
    except Exception as error:  # noqa: BLE001 - every failure ends as one paragraph and exit code 1
        full = full_error_requested()
        if full:
            traceback.print_exc()
        print(f"ae-eval: {describe(error)}" + ("" if full else " (HYDRA_FULL_ERROR=1 shows the traceback)"), file=sys.stderr)
        sys.exit(1)
    _print_metrics(entry)


if __name__ == "__main__":
    main()
