"""Evaluation beyond test/mse: linear probe, anomaly detection, VAE test log-likelihood, and the
class consistency of a conditional model's samples.

`evaluate_model(settings, model, datamodule, loggers)` runs at the end of training (after the
tested checkpoint was tested) and inside `ae-eval`, which re-tests a finished run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from autoencoders.errors import ConfigError
from autoencoders.models.inference import evaluating
from autoencoders.schema import EvalSettings
from autoencoders.views.loggers import log_grid

log = logging.getLogger("autoencoders")

# Subsets are drawn with this seed, not the run's: runs of a seed sweep are scored on the same images.
SUBSET_SEED = 0


def evaluate_model(settings: Any, model: Any, datamodule: Any, loggers: Sequence[Any] = (), step: int | None = None) -> dict[str, float]:
    """test/probe_acc, test/anomaly_*, (vae and kin) test/nll and (cvae) test/class_consistency of a
    trained model, as `settings` ask.

    Scalars go to every one of `loggers` (the trainer's: TensorBoard first) at `step`, by default
    the model's global step, where Lightning logged test/*; the anomaly/* views go to TensorBoard,
    and the worst-reconstructed grid to the other loggers that hold images too.
    """
    from lightning.pytorch.loggers import TensorBoardLogger

    settings = EvalSettings.from_config(settings)
    step = model.global_step if step is None else step
    loggers = list(loggers)
    writer = next((logger.experiment for logger in loggers if isinstance(logger, TensorBoardLogger)), None)
    metrics: dict[str, float] = {}
    with evaluating(model):
        if settings.probe and not datamodule.has_labels:
            log.info("The data has no class labels: the linear probe (eval.probe) is skipped.")
        if settings.probe and datamodule.has_labels:
            started = time.perf_counter()
            from autoencoders.evaluation.probe import linear_probe

            metrics["test/probe_acc"] = linear_probe(model, datamodule.train_set.tensors, datamodule.test_set.tensors,
                                                     settings.probe_train_size, SUBSET_SEED)  # fmt: skip
            log.info("Linear probe: accuracy %.4f (%.1f s)", metrics["test/probe_acc"], time.perf_counter() - started)
        normal_classes = getattr(datamodule, "normal_classes", None)
        if settings.anomaly is True and normal_classes is None:
            raise ConfigError("eval.anomaly=true needs data.normal_classes or data.holdout_class (which classes are "
                              "normal); set one, or use eval.anomaly=auto.")  # fmt: skip
        if settings.anomaly and normal_classes is not None:
            metrics.update(_anomaly(model, datamodule, normal_classes, settings.anomaly_images, writer, step, loggers))
        if settings.nll_samples > 0 and callable(getattr(model, "posterior", None)):
            metrics["test/nll"] = _nll(model, datamodule, settings)
        if settings.class_consistency and getattr(model, "conditional", False):  # models that sample by class
            from autoencoders.evaluation.consistency import class_consistency

            started = time.perf_counter()
            metrics["test/class_consistency"] = class_consistency(model, datamodule.train_set.tensors, seed=SUBSET_SEED)
            log.info("Class consistency of samples: %.4f (%.1f s)", metrics["test/class_consistency"],
                     time.perf_counter() - started)  # fmt: skip
    for logger in loggers if metrics else ():
        logger.log_metrics(metrics, step=step)
        logger.save()
    if writer is not None:
        writer.flush()
    return dict(sorted(metrics.items()))


def _nll(model: Any, datamodule: Any, settings: EvalSettings) -> float:
    """test/nll: the importance-weighted estimate on a fixed subset of test images (with their labels)."""
    from autoencoders.evaluation.likelihood import importance_weighted_nll
    from autoencoders.evaluation.probe import subset

    started = time.perf_counter()
    images, labels = datamodule.test_set.tensors
    chosen = subset(len(images), settings.nll_images, SUBSET_SEED)
    nll = float(importance_weighted_nll(model, images[chosen], settings.nll_samples, seed=SUBSET_SEED,
                                        labels=labels[chosen]).mean())  # fmt: skip
    log.info("test/nll %.3f nats (k=%d, %d images, %.1f s)", nll, settings.nll_samples, len(chosen),
             time.perf_counter() - started)  # fmt: skip
    return nll


def _anomaly(model: Any, datamodule: Any, normal_classes: list[int], n_images: int, writer: Any, step: int,
             loggers: Sequence[Any] = ()) -> dict[str, float]:  # fmt: skip
    """Tutorial 001's pipeline on the test set; the worst reconstructions to TensorBoard."""
    import torch

    from autoencoders.evaluation.anomaly import anomaly_metrics, reconstruction_errors, worst_grid

    images, labels = datamodule.test_set.tensors
    is_anomaly = ~torch.isin(labels, torch.tensor(normal_classes))
    test_errors = reconstruction_errors(model, images, labels)
    val_errors = reconstruction_errors(model, *datamodule.val_set.tensors)  # val holds normal classes only
    metrics = anomaly_metrics(test_errors, is_anomaly, val_errors)
    if writer is not None:
        writer.add_histogram("anomaly/errors_normal", test_errors[~is_anomaly], step)
        writer.add_histogram("anomaly/errors_anomalous", test_errors[is_anomaly], step)
        if n_images > 0:
            grid, worst = worst_grid(model, images, test_errors, n_images, labels=labels)
            writer.add_image("anomaly/worst", grid, step)
            log_grid(loggers, "anomaly/worst", grid, step)
            names = datamodule.class_names
            rows = [f"| {rank + 1} | {names[int(labels[i])]} | {'anomaly' if is_anomaly[i] else 'normal'} | "
                    f"{float(test_errors[i]):.5f} |" for rank, i in enumerate(worst.tolist())]  # fmt: skip
            writer.add_text("anomaly/worst", "\n".join(["| rank | class | truth | error |", "|---|---|---|---|", *rows]), step)
    return metrics
