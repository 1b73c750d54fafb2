"""Linear probe: how much class information the frozen codes carry, read by a linear classifier.

Logistic regression (scikit-learn, lbfgs, multinomial) on standardized codes from `encode()`
(the posterior mean for the VAE; the cvae encodes each image with its own label, so its codes
hold what the label does not say), fitted on training codes and scored on test codes. With
`data.normal_classes` set, the training codes hold only the normal classes, so the probe is
scored on the test images of those classes (a class the probe never saw cannot be predicted).
"""

from __future__ import annotations

import torch
from torch import Tensor

# Subsets are drawn with this seed, not the run's: runs of a seed sweep are scored on the same images.
SUBSET_SEED = 0
# lbfgs reaches its tolerance in a few hundred iterations on standardized 32-d codes; the cap
# only guards against a degenerate encoder.
MAX_ITER = 1000


def probe_accuracy(
    train_codes: Tensor, train_labels: Tensor, test_codes: Tensor, test_labels: Tensor, seed: int = 0
) -> float:
    """Accuracy on the test codes of a logistic regression fitted on the training codes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=MAX_ITER, random_state=seed))
    # One BLAS thread: the products are tiny (10,000 x 32 codes), and on a busy 2-core machine
    # OpenBLAS's two threads made the fit take 26 s instead of 0.7 s (same 170 lbfgs iterations).
    with threadpool_limits(limits=1):
        classifier.fit(train_codes.double().numpy(), train_labels.numpy())
        return float(classifier.score(test_codes.double().numpy(), test_labels.numpy()))


def subset(n: int, size: int | None, seed: int = 0) -> Tensor:
    """Indices of a seeded random subset of `size` of n items (all n, in order, when size is None or >= n)."""
    if size is None or size >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size]


def probe_splits(passes: object, train_size: int | None = 10_000, seed: int = 0) -> float:
    """Probe accuracy of a model's codes (`passes`: its shared passes over a DataModule's splits,
    machinery/passes.py): fitted on a seeded subset of `train_size` training images (None = all),
    scored on the test images whose class occurs in those training labels."""
    datamodule = passes.datamodule
    train_labels, test_labels = datamodule.labels("train"), datamodule.labels("test")
    chosen = subset(len(train_labels), train_size, seed)
    known = torch.isin(test_labels, train_labels[chosen].unique())
    train_codes = passes.codes("train", chosen)
    test_codes = passes.codes("test", None if bool(known.all()) else known.nonzero().squeeze(1))
    return probe_accuracy(train_codes, train_labels[chosen], test_codes, test_labels[known], seed)


def check_probe_classes(size: int | None, datamodule: object) -> None:
    """Refuse, before training, a seeded training subset of `size` images (None: all) that holds
    one class: a classifier of one class cannot be fitted (scikit-learn says so only after training)."""
    from autoencoders.errors import ConfigError

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
