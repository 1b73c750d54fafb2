"""Evaluation beyond test/mse: linear probe, anomaly detection, VAE test log-likelihood, the
class consistency of a conditional model's samples, and on data with known factors the
disentanglement metrics (evaluation/disentanglement.py).

`evaluate_model(settings, model, datamodule, loggers)` runs at the end of training (after the
tested checkpoint was tested) and inside `ae-eval`, which re-tests a finished run.

The evaluations share their passes over the data (machinery/passes.py): the test images are
encoded once for the probe, anomaly detection, the disentanglement metrics, sample quality and
the latent views drawn after testing (within `shared_passes`), and decoded once more where
reconstructions are needed; the probe and the factor metrics share their training codes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from autoencoders.errors import ConfigError
from autoencoders.evaluation.probe import SUBSET_SEED
from autoencoders.machinery.contract import estimates_likelihood, is_conditional
from autoencoders.machinery.inference import evaluating
from autoencoders.machinery.passes import SplitPasses, passes_of, sharing
from autoencoders.rundir.per_image import PER_IMAGE_FILES, write_per_image
from autoencoders.schema import EvalSettings
from autoencoders.views.loggers import log_grid

log = logging.getLogger("autoencoders")


@contextmanager
def shared_passes(settings: Any, model: Any, datamodule: Any) -> Iterator[SplitPasses]:
    """Within the block (from testing on: the weights must stay as they are), the latent views
    after testing and `evaluate_model` share one SplitPasses. The test split is encoded whole
    when an evaluation reads all of it; otherwise each asks for its own subset."""
    settings = EvalSettings.from_config(settings)
    with sharing(model, datamodule, whole=("test",) if _reads_all_test(settings, datamodule) else ()) as passes:
        yield passes


def _reads_all_test(settings: EvalSettings, datamodule: Any) -> bool:
    """Whether some evaluation encodes every test image (then the test split is encoded whole)."""
    n = len(datamodule.labels("test"))
    factors = getattr(datamodule, "has_factors", False)
    return bool(
        (settings.probe and datamodule.has_labels)
        or _anomaly_on(settings, datamodule)
        or (
            _sample_quality_on(settings.sample_quality, datamodule)
            and (settings.fd_images is None or settings.fd_images >= n)
        )
        or (
            settings.disentanglement
            and factors
            and (settings.factor_test_codes is None or settings.factor_test_codes >= n)
        )
    )


def _anomaly_on(settings: EvalSettings, datamodule: Any) -> bool:
    return bool(settings.anomaly) and getattr(datamodule, "normal_classes", None) is not None


def check_evaluation(settings: Any, model: Any, datamodule: Any) -> None:
    """Refuse, before training (and before ae-eval's test pass), an evaluation setting this
    set-up DataModule and model cannot meet, in one paragraph instead of a failure after the
    training it wasted: eval.anomaly=true without normal classes, eval.sample_quality=true
    without labels, a probe subset of one class (probe.py), importance samples (likelihood.py) or
    a FactorVAE-score vote (disentanglement.py) larger than the machine's memory."""
    from autoencoders.evaluation.disentanglement import check_vote_memory
    from autoencoders.evaluation.likelihood import check_nll_memory
    from autoencoders.evaluation.probe import check_probe_classes

    settings = settings if isinstance(settings, EvalSettings) else EvalSettings.from_config(settings)
    if settings.anomaly is True and getattr(datamodule, "normal_classes", None) is None:
        raise ConfigError(
            "eval.anomaly=true needs data.normal_classes or data.holdout_class (which classes are "
            "normal); set one, or use eval.anomaly=auto."
        )
    if settings.sample_quality is True and not datamodule.has_labels:
        raise ConfigError(
            "eval.sample_quality=true needs class labels to train its reference network, and this data "
            "has none; use eval.sample_quality=auto or false."
        )
    if settings.probe and datamodule.has_labels:
        check_probe_classes(settings.probe_train_size, datamodule)
    if settings.nll_samples > 0 and estimates_likelihood(model):
        test = len(datamodule.labels("test"))
        check_nll_memory(settings.nll_samples, min(settings.nll_images or test, test), model)
    if settings.disentanglement and getattr(datamodule, "has_factors", False) and datamodule.factorial:
        check_vote_memory(settings.factorvae_batch, model.hparams.latent_dim)


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
    and the worst-reconstructed grid to the other loggers that hold images too. Per-image values
    (test/nll's) go to a file beside the TensorBoard events (rundir/per_image.py).
    """
    from lightning.pytorch.loggers import TensorBoardLogger

    settings = EvalSettings.from_config(settings)
    check_evaluation(settings, model, datamodule)  # done before training too: a direct call gets the same refusal
    step = model.global_step if step is None else step
    loggers = list(loggers)
    tensorboard = next((logger for logger in loggers if isinstance(logger, TensorBoardLogger)), None)
    writer = tensorboard.experiment if tensorboard is not None else None
    files = Path(tensorboard.log_dir) if tensorboard is not None else None
    used = used if used is not None else {}
    metrics: dict[str, float] = {}
    passes = passes_of(model, datamodule)
    with evaluating(model):
        metrics.update(_probe(passes, settings))
        normal_classes = getattr(datamodule, "normal_classes", None)
        if _anomaly_on(settings, datamodule):
            metrics.update(_anomaly(passes, normal_classes, settings.anomaly_images, writer, step, loggers))
        if settings.nll_samples > 0 and estimates_likelihood(model):
            metrics["test/nll"] = _nll(model, datamodule, settings, files, used)
        if settings.class_consistency and is_conditional(model):  # models that sample by class
            metrics["test/class_consistency"] = _class_consistency(model, datamodule)
        if settings.disentanglement and getattr(datamodule, "has_factors", False):
            metrics.update(_disentanglement(passes, settings, used))
        if _sample_quality_on(settings.sample_quality, datamodule):
            metrics.update(_sample_quality(passes, settings, used))
    for logger in loggers if metrics else ():
        logger.log_metrics(metrics, step=step)
        logger.save()
    if writer is not None:
        writer.flush()
    return dict(sorted(metrics.items()))


def _probe(passes: SplitPasses, settings: EvalSettings) -> dict[str, float]:
    if settings.probe and not passes.datamodule.has_labels:
        log.info("The data has no class labels: the linear probe (eval.probe) is skipped.")
    if not (settings.probe and passes.datamodule.has_labels):
        return {}
    from autoencoders.evaluation.probe import probe_splits

    started = time.perf_counter()
    accuracy = probe_splits(passes, settings.probe_train_size, SUBSET_SEED)
    log.info("Linear probe: accuracy %.4f (%.1f s)", accuracy, time.perf_counter() - started)
    return {"test/probe_acc": accuracy}


def _class_consistency(model: Any, datamodule: Any) -> float:
    from autoencoders.evaluation.consistency import TRAIN_IMAGES, class_consistency
    from autoencoders.evaluation.probe import subset

    started = time.perf_counter()
    chosen = subset(len(datamodule.labels("train")), TRAIN_IMAGES, SUBSET_SEED)
    # The subset class_consistency would draw, chosen here so only it becomes floats.
    consistency = class_consistency(model, datamodule.pixels("train", chosen), train_size=None, seed=SUBSET_SEED)
    log.info("Class consistency of samples: %.4f (%.1f s)", consistency, time.perf_counter() - started)
    return consistency


def _disentanglement(passes: SplitPasses, settings: EvalSettings, used: dict) -> dict[str, float]:
    from autoencoders.evaluation.disentanglement import factor_scores

    if not passes.datamodule.factorial:
        log.info("The data is not a full factorial grid of its factors: the FactorVAE score is skipped.")
    scores, used["disentanglement"] = factor_scores(passes.model, passes.datamodule, settings, SUBSET_SEED, passes)
    log.info(
        "Disentanglement: %s (%.1f s)",
        ", ".join(f"{name[5:]} {value:.3f}" for name, value in scores.items()),
        used["disentanglement"]["seconds"],
    )
    return scores


def _sample_quality_on(setting: Any, datamodule: Any) -> bool:
    """eval.sample_quality: true, false, or auto: on labelled data with known factors (shapes, dsprites),
    whose runs this was made for. Elsewhere the reference network costs a few minutes the first
    time (FashionMNIST: docs/disentanglement.md), so it is asked for with true (which needs labels:
    evaluation/requirements.py)."""
    return setting is True or (
        setting == "auto" and datamodule.has_labels and getattr(datamodule, "has_factors", False)
    )


def _sample_quality(passes: SplitPasses, settings: EvalSettings, used: dict) -> dict[str, float]:
    from autoencoders.evaluation.sample_quality import sample_quality

    started = time.perf_counter()
    scores, used["sample_quality"] = sample_quality(
        passes.model, passes.datamodule, settings.fd_images, SUBSET_SEED, settings.inception_weights, passes
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


def _nll(model: Any, datamodule: Any, settings: EvalSettings, files: Path | None, used: dict) -> float:
    """test/nll: the importance-weighted estimate on a fixed subset of test images (with their
    labels); each image's value into `files` (when there is a TensorBoard folder), so that runs
    scored on the same images can be compared in pairs (ae-compare --paired test/nll)."""
    from autoencoders.evaluation.likelihood import importance_weighted_nll
    from autoencoders.evaluation.probe import subset

    started = time.perf_counter()
    chosen = subset(len(datamodule.labels("test")), settings.nll_images, SUBSET_SEED)
    images, labels = datamodule.pixels("test", chosen)
    per_image = importance_weighted_nll(model, images, settings.nll_samples, seed=SUBSET_SEED, labels=labels)
    nll, seconds = float(per_image.mean()), time.perf_counter() - started
    used["nll"] = {"samples": settings.nll_samples, "images": len(chosen), "seconds": round(seconds, 2)}
    if files is not None:
        write_per_image(files, "test/nll", chosen.tolist(), per_image.tolist())
        used["nll"]["per_image"] = PER_IMAGE_FILES["test/nll"]
    log.info("test/nll %.3f nats (k=%d, %d images, %.1f s)", nll, settings.nll_samples, len(chosen), seconds)
    return nll


def _anomaly(
    passes: SplitPasses,
    normal_classes: list[int],
    n_images: int,
    writer: Any,
    step: int,
    loggers: Sequence[Any] = (),
) -> dict[str, float]:
    """Anomaly detection by reconstruction error (Sakurada & Yairi 2014) on the test set; the worst reconstructions to TensorBoard."""
    import torch

    from autoencoders.evaluation.anomaly import anomaly_metrics, worst_grid

    model, datamodule = passes.model, passes.datamodule
    labels = datamodule.labels("test")
    is_anomaly = ~torch.isin(labels, torch.tensor(normal_classes))
    test_errors = passes.errors("test")
    val_errors = passes.errors("val")  # val holds normal classes only
    metrics = anomaly_metrics(test_errors, is_anomaly, val_errors)
    if writer is not None:
        writer.add_histogram("anomaly/errors_normal", test_errors[~is_anomaly], step)
        writer.add_histogram("anomaly/errors_anomalous", test_errors[is_anomaly], step)
        if n_images > 0:
            grid, worst = worst_grid(model, datamodule.pixels("test")[0], test_errors, n_images, labels=labels)
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
