"""Anomaly detection by reconstruction error (Sakurada & Yairi 2014, "Anomaly Detection Using Autoencoders with Nonlinear Dimensionality Reduction").

Train on normal classes only (`data.normal_classes` / `data.holdout_class`); score every test
image by its per-pixel mean squared reconstruction error E(x) (`machinery.passes.per_image_mse`,
computed in the evaluations' shared pass over the test set); flag E(x) > tau, with tau the
95th or 99th percentile of the validation errors of (normal) images. Anomalies are the positive
class. The metric functions are pure (scores and labels in, numbers out) so tests can pin them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from autoencoders.machinery.inference import condition

PERCENTILES = (95, 99)
HEATMAP_COLORMAP = "inferno"


def thresholds(normal_errors: Tensor, percentiles: tuple[int, ...] = PERCENTILES) -> dict[int, float]:
    """{p: the p-th percentile of the errors of normal images} (numpy's linear interpolation)."""
    values = normal_errors.double().numpy()
    return {p: float(np.percentile(values, p)) for p in percentiles}


def threshold_metrics(scores: Tensor, is_anomaly: Tensor, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of the rule `score > threshold` (anomaly = positive class).

    A precision with no positive prediction is 0, as torchmetrics defines it.
    """
    from torchmetrics.functional.classification import binary_f1_score, binary_precision, binary_recall

    # Integer predictions: torchmetrics would squash float scores outside [0, 1] with a sigmoid.
    predicted, target = (scores > threshold).long(), is_anomaly.long()
    return {
        "precision": float(binary_precision(predicted, target)),
        "recall": float(binary_recall(predicted, target)),
        "f1": float(binary_f1_score(predicted, target)),
    }


def auroc(scores: Tensor, is_anomaly: Tensor) -> float:
    """Area under the ROC curve of the scores for anomaly vs normal (ties count one half)."""
    from sklearn.metrics import roc_auc_score

    # Not torchmetrics' binary_auroc: it squashes scores outside [0, 1] with a sigmoid, which in
    # float32 turns large errors (or negated ones) into ties.
    return float(roc_auc_score(is_anomaly.long().numpy(), scores.double().numpy()))


def anomaly_metrics(test_errors: Tensor, is_anomaly: Tensor, val_errors: Tensor) -> dict[str, float]:
    """test/anomaly_auroc and, for each percentile p, the threshold and its precision/recall/F1."""
    metrics = {"test/anomaly_auroc": auroc(test_errors, is_anomaly)}
    for percentile, tau in thresholds(val_errors).items():
        metrics[f"test/anomaly_threshold_p{percentile}"] = tau
        for name, value in threshold_metrics(test_errors, is_anomaly, tau).items():
            metrics[f"test/anomaly_{name}_p{percentile}"] = value
    return metrics


def error_heatmaps(images: Tensor, reconstructions: Tensor, scale: float | None = None) -> Tensor:
    """|x - x_hat| (averaged over channels) through a colormap: (N, 3, H, W) in [0, 1].

    One `scale` for the whole batch (default: its largest error), so colours compare between images.
    """
    from matplotlib import colormaps

    difference = (images - reconstructions).abs().mean(1)  # (N, H, W)
    scale = float(difference.max()) if scale is None else scale
    normalised = (difference / max(scale, 1e-12)).clamp(0, 1).numpy()
    coloured = colormaps[HEATMAP_COLORMAP](normalised)[..., :3]  # (N, H, W, 3), RGBA -> RGB
    return torch.from_numpy(coloured).permute(0, 3, 1, 2).float()


def worst_grid(
    module: torch.nn.Module,
    images: Tensor,
    errors: Tensor,
    n_images: int = 16,
    per_row: int = 8,
    labels: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The `n_images` highest-error images: per group of `per_row`, a row of originals, a row of
    reconstructions and a row of error heatmaps (`labels`: the images' classes, which conditional
    models need). Returns the (3, H, W) grid and the indices shown."""
    from autoencoders.machinery.inference import to_module
    from autoencoders.views.tensorboard import grid

    worst = errors.argsort(descending=True)[:n_images]
    originals = images[worst].float()
    given = condition(module, labels[worst] if labels is not None else None)
    reconstructions = module.reconstruct(to_module(originals, module), *given).float().cpu().clamp(0, 1)
    heatmaps = error_heatmaps(originals, reconstructions)
    rgb = [tensor.expand(-1, 3, -1, -1) if tensor.shape[1] == 1 else tensor for tensor in (originals, reconstructions)]
    rows = [part[start : start + per_row] for start in range(0, len(worst), per_row) for part in (*rgb, heatmaps)]
    return grid(torch.cat(rows), per_row), worst
