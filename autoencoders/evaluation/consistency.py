"""Class consistency of a conditional model's samples: do samples asked for class k look like k?

A logistic regression on raw pixels (scikit-learn, through the linear probe's `probe_accuracy`:
standardized inputs, lbfgs), fitted on a fixed subset of training images, classifies
`per_class` samples of every class; the score is the fraction it assigns to the class the
samples were asked for. With `data.normal_classes` set, only the classes the classifier saw are
asked for. About 15 s on FashionMNIST (one thread), almost all of it the fit on 784 pixels.
"""

from __future__ import annotations

import torch
from torch import Tensor

from autoencoders.evaluation.probe import probe_accuracy, subset

TRAIN_IMAGES = 10_000
SAMPLES_PER_CLASS = 100


def class_consistency(
    model: torch.nn.Module,
    train: tuple[Tensor, Tensor],
    train_size: int | None = TRAIN_IMAGES,
    per_class: int = SAMPLES_PER_CLASS,
    seed: int = 0,
) -> float:
    """Fraction of `model.sample(n, y=...)` samples that a pixel classifier fitted on
    `train_size` training images (a seeded subset; None = all) assigns to their asked-for class.
    Call in eval mode; the samples are drawn with a generator seeded by `seed`."""
    images, labels = train
    chosen = subset(len(images), train_size, seed)
    asked = labels[chosen].unique().repeat_interleave(per_class)
    samples = model.sample(len(asked), y=asked, generator=torch.Generator().manual_seed(seed)).float().cpu()
    return probe_accuracy(images[chosen].flatten(1), labels[chosen], samples.flatten(1), asked, seed)
