"""Anomaly detection: AUROC, thresholds and precision/recall/F1 against hand counts; heatmaps."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from autoencoders.evaluation.anomaly import (
    anomaly_metrics,
    auroc,
    error_heatmaps,
    threshold_metrics,
    thresholds,
    worst_grid,
)
from autoencoders.models.vae import VAE


# --- anomaly metrics against hand counts -------------------------------------------------------
def test_auroc_of_separated_reversed_and_mixed_scores():
    normal, anomalous = torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.5, 0.9])
    scores, labels = torch.cat([normal, anomalous]), torch.tensor([0, 0, 0, 1, 1])
    assert auroc(scores, labels) == 1.0  # every anomaly above every normal image
    assert auroc(-scores, labels) == 0.0
    # Normal 1, 2, 3; anomalies 2, 4. Pairs (anomaly, normal): 2 beats 1, ties 2 (one half),
    # loses to 3; 4 beats all three: (1 + 0.5 + 3) / 6 = 0.75.
    assert auroc(torch.tensor([1.0, 2.0, 3.0, 2.0, 4.0]), labels) == pytest.approx(0.75)
    generator = torch.Generator().manual_seed(0)
    scores, labels = torch.rand(500, generator=generator), torch.randint(0, 2, (500,), generator=generator)
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels.numpy(), scores.numpy()), abs=1e-6)


def test_thresholds_are_numpy_percentiles():
    errors = torch.arange(1, 101, dtype=torch.float64)
    assert thresholds(errors) == {95: pytest.approx(95.05), 99: pytest.approx(99.01)}  # linear interpolation
    errors = torch.rand(1234, generator=torch.Generator().manual_seed(1))
    got = thresholds(errors, (50, 95, 99))
    for p in (50, 95, 99):
        assert got[p] == pytest.approx(np.percentile(errors.double().numpy(), p), rel=1e-12)


def test_precision_recall_f1_at_a_threshold_against_a_hand_count():
    scores = torch.tensor([0.1, 0.5, 0.9, 0.3, 0.7, 0.2, 0.25])
    labels = torch.tensor([0, 1, 1, 0, 0, 1, 0])
    # > 0.25 flags 0.5, 0.9, 0.3, 0.7 (0.25 itself is not above): TP 2, FP 2, FN 1 (the 0.2 anomaly).
    got = threshold_metrics(scores, labels, 0.25)
    assert got == pytest.approx({"precision": 2 / 4, "recall": 2 / 3, "f1": 2 * 2 / (2 * 2 + 2 + 1)})
    assert threshold_metrics(scores, labels, 1.0) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}  # nothing flagged


def test_anomaly_metrics_use_the_validation_percentiles():
    val = torch.arange(1, 101, dtype=torch.float32)
    test = torch.tensor([50.0, 96.0, 99.5, 200.0])
    labels = torch.tensor([0, 0, 1, 1])
    metrics = anomaly_metrics(test, labels, val)
    assert metrics["test/anomaly_auroc"] == 1.0
    assert metrics["test/anomaly_threshold_p95"] == pytest.approx(95.05)
    # p95 = 95.05 flags 96, 99.5, 200: precision 2/3, recall 1; p99 = 99.01 flags 99.5, 200: both 1.
    assert metrics["test/anomaly_precision_p95"] == pytest.approx(2 / 3)
    assert metrics["test/anomaly_recall_p95"] == 1.0 and metrics["test/anomaly_f1_p95"] == pytest.approx(0.8)
    assert (
        metrics["test/anomaly_precision_p99"]
        == metrics["test/anomaly_recall_p99"]
        == metrics["test/anomaly_f1_p99"]
        == 1.0
    )


def test_heatmaps_and_worst_grid():
    images = torch.zeros(3, 1, 4, 4)
    reconstructions = images.clone()
    reconstructions[1, 0, 0, 0] = 0.5
    heatmaps = error_heatmaps(images, reconstructions)
    assert heatmaps.shape == (3, 3, 4, 4) and heatmaps.min() >= 0 and heatmaps.max() <= 1
    assert not torch.equal(heatmaps[1, :, 0, 0], heatmaps[1, :, 1, 1])  # the error pixel has its own colour
    assert torch.equal(heatmaps[0], heatmaps[2])  # no error: the colormap's low end everywhere
    model = VAE(input_shape=[1, 28, 28], latent_dim=2).eval()
    x = torch.rand(20, 1, 28, 28)
    errors = torch.rand(20)
    with torch.no_grad():
        grid, worst = worst_grid(model, x, errors, n_images=16, per_row=8)
    assert worst.tolist() == errors.argsort(descending=True)[:16].tolist()
    assert grid.shape == (3, 2 + 30 * 6, 2 + 30 * 8)  # 2 groups x (originals, reconstructions, heatmaps)
