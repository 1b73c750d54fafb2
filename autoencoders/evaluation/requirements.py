"""What the evaluations need of the data and the model, checked before training starts (and
before ae-eval's test pass): a setting that cannot work with this data or on this machine is
refused in one paragraph then, instead of failing once the model has trained.

- eval.anomaly=true needs the normal classes; eval.sample_quality=true needs class labels.
- The linear probe is fitted on a seeded subset of eval.probe_train_size training images, which
  must hold two classes (a classifier of one class cannot be fitted).
- test/nll's importance sampling holds eval.nll_samples codes per image at once: more than the
  machine's memory can never run.
- A FactorVAE-score vote gathers eval.factorvae_batch codes at once: they must fit in memory.
"""

from __future__ import annotations

from typing import Any

from autoencoders.errors import ConfigError
from autoencoders.evaluation.probe import SUBSET_SEED, subset
from autoencoders.machine import memory as machine_memory
from autoencoders.models.iwae import importance_sampling_bytes
from autoencoders.schema import EvalSettings

NLL_BATCH = 500  # images per importance_weighted_nll call (evaluation/likelihood.py's batch_size)


def check_evaluation(settings: Any, model: Any, datamodule: Any) -> None:
    """Raise ConfigError for an evaluation setting (`settings`: the eval block) that cannot work
    with this set-up DataModule and model."""
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
    if settings.nll_samples > 0 and callable(getattr(model, "posterior", None)):
        check_nll_memory(settings, model, datamodule)
    if settings.disentanglement and getattr(datamodule, "has_factors", False) and datamodule.factorial:
        check_vote_memory(settings.factorvae_batch, model.hparams.latent_dim)


def check_probe_classes(size: int | None, datamodule: Any) -> None:
    """The probe's seeded training subset (evaluation/probe.py) must hold two classes."""
    labels = datamodule.labels("train")
    chosen = labels[subset(len(labels), size, SUBSET_SEED)]
    if len(chosen.unique()) >= 2:
        return
    if len(labels.unique()) < 2:
        raise ConfigError(
            f"eval.probe needs training images of two classes or more, and the training split holds only class "
            f"{int(labels[0])} (data.normal_classes or data.holdout_class keep one class). Set eval.probe=false."
        )
    # Every subset size takes a prefix of one seeded permutation: the first image of another class is where it starts.
    order = subset(len(labels), len(labels) - 1, SUBSET_SEED)
    others = (labels[order] != labels[order[0]]).nonzero()
    needed = int(others[0]) + 1 if len(others) else len(labels)
    raise ConfigError(
        f"eval.probe_train_size={size} is too small for this data: the linear probe is fitted on a seeded subset "
        f"of {size} training image(s), which hold only class {int(chosen[0])}, and a classifier needs two classes. "
        f"Use eval.probe_train_size={needed} or more (null = all), or eval.probe=false."
    )


def check_nll_memory(settings: EvalSettings, model: Any, datamodule: Any) -> None:
    """test/nll's importance sampling must fit in the machine's memory at least once."""
    memory = machine_memory()
    test = len(datamodule.labels("test"))
    images = min(NLL_BATCH, test if settings.nll_images is None else min(settings.nll_images, test))
    channels, height, width = model.input_shape
    needed = importance_sampling_bytes(
        settings.nll_samples, images, model.hparams.latent_dim, channels * height * width
    )
    if memory is not None and needed > memory:
        raise ConfigError(
            f"eval.nll_samples={settings.nll_samples} needs at least {needed / 2**30:.1f} GiB at once for test/nll "
            f"({images} images of {channels}×{height}×{width} at a time), more than this machine's "
            f"{memory / 2**30:.1f} GiB of memory. Use fewer samples (Burda et al. 2016 report k = 5000; 100 is "
            "the default), or eval.nll_samples=0 to skip test/nll."
        )


def check_vote_memory(batch: int, latent_dim: int) -> None:
    """A FactorVAE-score vote gathers `batch` codes (float64) and their indices (int64) at once
    (evaluation/disentanglement.py; drawn with replacement when fewer share the level)."""
    memory, needed = machine_memory(), batch * (latent_dim + 1) * 8
    if memory is not None and needed > memory:
        raise ConfigError(
            f"eval.factorvae_batch={batch} needs {needed / 2**30:,.1f} GiB at once for each FactorVAE-score vote "
            f"({latent_dim} numbers per code), more than this machine's {memory / 2**30:.1f} GiB of memory. Use a "
            "batch of tens to hundreds of codes (disentanglement_lib's default is 64)."
        )
