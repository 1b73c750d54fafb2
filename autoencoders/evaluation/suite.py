"""Evaluation beyond test/mse: linear probe, anomaly detection, VAE test log-likelihood, the
class consistency of a conditional model's samples, and on data with known factors the
disentanglement metrics (evaluation/disentanglement.py).

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


def evaluate_model(
    settings: Any,
    model: Any,
    datamodule: Any,
    loggers: Sequence[Any] = (),
    step: int | None = None,
    used: dict | None = None,
) -> dict[str, float]:
    """test/probe_acc, test/anomaly_*, (vae and kin) test/nll, (cvae) test/class_consistency and (data
    with factors) test/mig, test/dci_*, test/sap, test/factorvae_score of a trained model, as
    `settings` ask. `used`, when given, receives what the evaluations used (sample sizes, seconds),
    which the record keeps beside the scores.

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
        metrics.update(_probe(model, datamodule, settings))
        normal_classes = getattr(datamodule, "normal_classes", None)
        if settings.anomaly is True and normal_classes is None:
            raise ConfigError(
                "eval.anomaly=true needs data.normal_classes or data.holdout_class (which classes are "
                "normal); set one, or use eval.anomaly=auto."
            )
        if settings.anomaly and normal_classes is not None:
            metrics.update(_anomaly(model, datamodule, normal_classes, settings.anomaly_images, writer, step, loggers))
        if settings.nll_samples > 0 and callable(getattr(model, "posterior", None)):
            metrics["test/nll"] = _nll(model, datamodule, settings)
        if settings.class_consistency and getattr(model, "conditional", False):  # models that sample by class
            from autoencoders.evaluation.consistency import class_consistency

            started = time.perf_counter()
            metrics["test/class_consistency"] = class_consistency(model, datamodule.train_set.tensors, seed=SUBSET_SEED)
            log.info(
                "Class consistency of samples: %.4f (%.1f s)",
                metrics["test/class_consistency"],
                time.perf_counter() - started,
            )
        if settings.disentanglement and getattr(datamodule, "has_factors", False):
            metrics.update(_disentanglement(model, datamodule, settings, used if used is not None else {}))
        if _wants_sample_quality(settings.sample_quality, datamodule):
            metrics.update(_sample_quality(model, datamodule, settings, used if used is not None else {}))
    for logger in loggers if metrics else ():
        logger.log_metrics(metrics, step=step)
        logger.save()
    if writer is not None:
        writer.flush()
    return dict(sorted(metrics.items()))


def _probe(model: Any, datamodule: Any, settings: EvalSettings) -> dict[str, float]:
    if settings.probe and not datamodule.has_labels:
        log.info("The data has no class labels: the linear probe (eval.probe) is skipped.")
    if not (settings.probe and datamodule.has_labels):
        return {}
    from autoencoders.evaluation.probe import linear_probe

    started = time.perf_counter()
    train, test = datamodule.train_set.tensors, datamodule.test_set.tensors
    accuracy = linear_probe(model, train, test, settings.probe_train_size, SUBSET_SEED)
    log.info("Linear probe: accuracy %.4f (%.1f s)", accuracy, time.perf_counter() - started)
    return {"test/probe_acc": accuracy}


def _disentanglement(model: Any, datamodule: Any, settings: EvalSettings, used: dict) -> dict[str, float]:
    from autoencoders.evaluation.disentanglement import factor_scores

    if not datamodule.factorial:
        log.info("The data is not a full factorial grid of its factors: the FactorVAE score is skipped.")
    scores, used["disentanglement"] = factor_scores(model, datamodule, settings, SUBSET_SEED)
    log.info(
        "Disentanglement: %s (%.1f s)",
        ", ".join(f"{name[5:]} {value:.3f}" for name, value in scores.items()),
        used["disentanglement"]["seconds"],
    )
    return scores


def _wants_sample_quality(setting: Any, datamodule: Any) -> bool:
    """eval.sample_quality: true, false, or auto: on labelled data with known factors (shapes, dsprites),
    whose runs this was made for. Elsewhere the reference network costs a few minutes the first
    time (FashionMNIST: docs/disentanglement.md), so it is asked for with true."""
    if setting is True and not datamodule.has_labels:
        raise ConfigError(
            "eval.sample_quality=true needs class labels to train its reference network, and this data "
            "has none; use eval.sample_quality=auto or false."
        )
    return setting is True or (
        setting == "auto" and datamodule.has_labels and getattr(datamodule, "has_factors", False)
    )


def _sample_quality(model: Any, datamodule: Any, settings: EvalSettings, used: dict) -> dict[str, float]:
    from autoencoders.evaluation.sample_quality import sample_quality

    started = time.perf_counter()
    scores, used["sample_quality"] = sample_quality(
        model, datamodule, settings.fd_images, SUBSET_SEED, settings.inception_weights
    )
    used["sample_quality"]["seconds"] = round(time.perf_counter() - started, 2)
    log.info(
        "Sample quality: %s (reference network %s, test accuracy %.4f; %.1f s)",
        ", ".join(f"{name[5:]} {value:.4g}" for name, value in scores.items()),
        used["sample_quality"]["reference_hash"],
        used["sample_quality"]["reference_test_accuracy"],
        used["sample_quality"]["seconds"],
    )
    return scores


def _nll(model: Any, datamodule: Any, settings: EvalSettings) -> float:
    """test/nll: the importance-weighted estimate on a fixed subset of test images (with their labels)."""
    from autoencoders.evaluation.likelihood import importance_weighted_nll
    from autoencoders.evaluation.probe import subset

    started = time.perf_counter()
    images, labels = datamodule.test_set.tensors
    chosen = subset(len(images), settings.nll_images, SUBSET_SEED)
    nll = float(
        importance_weighted_nll(
            model, images[chosen], settings.nll_samples, seed=SUBSET_SEED, labels=labels[chosen]
        ).mean()
    )
    log.info(
        "test/nll %.3f nats (k=%d, %d images, %.1f s)",
        nll,
        settings.nll_samples,
        len(chosen),
        time.perf_counter() - started,
    )
    return nll


def _anomaly(
    model: Any,
    datamodule: Any,
    normal_classes: list[int],
    n_images: int,
    writer: Any,
    step: int,
    loggers: Sequence[Any] = (),
) -> dict[str, float]:
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
            rows = [
                f"| {rank + 1} | {names[int(labels[i])]} | {'anomaly' if is_anomaly[i] else 'normal'} | "
                f"{float(test_errors[i]):.5f} |"
                for rank, i in enumerate(worst.tolist())
            ]
            writer.add_text(
                "anomaly/worst", "\n".join(["| rank | class | truth | error |", "|---|---|---|---|", *rows]), step
            )
    return metrics
