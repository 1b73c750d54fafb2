"""The disentanglement metrics on codes built by hand at dSprites' factor sizes (issue 20): codes
that are the factors plus small noise score near the bounds, a rotation of them does not,
constant codes score 0, and no score moves when dimensions are permuted or rescaled."""

from __future__ import annotations

import numpy as np
import pytest

from autoencoders.evaluation.disentanglement import (
    dci,
    dci_from_importance,
    disentanglement_metrics,
    factorvae_score,
    mig,
    sap,
    standardise,
)

SIZES = (3, 6, 40, 32, 32)  # dSprites: shape, scale, orientation, x, y


def factor_codes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform factor levels and codes = levels + N(0, 0.05²), plus 4 pure-noise dimensions."""
    rng = np.random.default_rng(seed)
    factors = np.stack([rng.integers(size, size=n) for size in SIZES], axis=1)
    codes = np.concatenate([factors + 0.05 * rng.standard_normal(factors.shape), rng.standard_normal((n, 4))], axis=1)
    return codes, factors


@pytest.fixture(scope="module")
def codes():
    return factor_codes(10_000, 0), factor_codes(5000, 1)


@pytest.fixture(scope="module")
def plain_scores(codes):
    (train, factors), (test, test_factors) = codes
    return disentanglement_metrics(train, factors, test, test_factors, factorial=True)


def test_codes_that_are_the_factors_score_near_the_bounds(plain_scores):
    scores = plain_scores
    # 20 bins resolve shape and scale fully, 32 positions to log 20 / log 32 and 40 orientations
    # to log 20 / log 40 of their entropy: the bound is (1 + 1 + 0.81 + 0.86 + 0.86) / 5 = 0.91.
    bound = (2 + np.log(20) / np.log(40) + 2 * np.log(20) / np.log(32)) / 5
    assert 0.85 <= scores["mig"] <= bound + 0.01
    assert scores["factorvae_score"] == 1.0
    assert scores["dci_disentanglement"] >= 0.9 and scores["dci_completeness"] >= 0.9
    assert scores["dci_informativeness"] >= 0.99 and scores["sap"] >= 0.99


def test_a_random_rotation_of_the_same_codes_is_entangled(codes):
    (train, factors), (test, test_factors) = codes
    rotation, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((9, 9)))
    scores = disentanglement_metrics(
        standardise(train) @ rotation, factors, standardise(test) @ rotation, test_factors, factorial=True
    )
    assert scores["mig"] < 0.2 and scores["sap"] < 0.5 and scores["dci_disentanglement"] < 0.5
    assert scores["factorvae_score"] < 0.9
    assert scores["dci_informativeness"] >= 0.99  # a rotation loses no information, only its alignment


def test_constant_codes_score_zero(codes):
    (_, factors), (_, test_factors) = codes
    scores = disentanglement_metrics(
        np.full((len(factors), 9), 3.0), factors, np.full((len(test_factors), 9), 3.0), test_factors, factorial=True
    )
    assert scores == {name: 0.0 for name in scores} and len(scores) == 6


def test_every_metric_ignores_permutations_and_rescaling(codes, plain_scores):
    (train, factors), (test, test_factors) = codes
    order = np.random.default_rng(3).permutation(9)
    scale = np.random.default_rng(4).uniform(0.01, 100, 9)
    plain = plain_scores
    moved = disentanglement_metrics(
        train[:, order] * scale, factors, test[:, order] * scale, test_factors, factorial=True
    )
    assert moved == pytest.approx(plain, abs=1e-6)


def test_mig_by_hand_on_two_binary_factors():
    # z0 = factor 0 exactly, z1 = factor 0 too, z2 = factor 1: factor 0 has two equally informative
    # dimensions (gap 0), factor 1 one (gap H/H = 1): MIG = (0 + 1) / 2.
    factor = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 25)
    codes = np.stack([factor[:, 0], factor[:, 0] * 2.0, factor[:, 1]], axis=1)
    assert mig(codes, factor) == pytest.approx(0.5)


def test_dci_from_an_importance_matrix_by_hand():
    # A diagonal importance matrix is perfectly disentangled and complete; one dimension that
    # carries two factors equally has D_j = 1 - H_2(1/2, 1/2) = 0.
    assert dci_from_importance(np.eye(3)) == pytest.approx({"disentanglement": 1.0, "completeness": 1.0})
    shared = dci_from_importance(np.array([[1.0, 1.0], [0.0, 0.0]]))
    assert shared["disentanglement"] == pytest.approx(0.0) and shared["completeness"] == pytest.approx(1.0)
    # Rows (0.5, 0.5) and (1, 0): rho = 0.5 each, D = 0.5 * 0 + 0.5 * 1; factor 0 spread over both dims
    # (p = 1/3, 2/3 -> 1 - H_2 = 0.0817), factor 1 on one (1), weights 3/4 and 1/4.
    mixed = dci_from_importance(np.array([[0.5, 0.5], [1.0, 0.0]]))
    entropy = -(1 / 3 * np.log2(1 / 3) + 2 / 3 * np.log2(2 / 3))
    assert mixed["disentanglement"] == pytest.approx(0.5)
    assert mixed["completeness"] == pytest.approx(0.75 * (1 - entropy) + 0.25)


def test_sap_is_the_gap_of_squared_correlations():
    rng = np.random.default_rng(5)
    factor = rng.integers(0, 10, (2000, 1))
    noisy = factor[:, 0] + rng.standard_normal(2000) * 3
    codes = np.stack([factor[:, 0] * 1.0, noisy], axis=1)
    expected = 1.0 - np.corrcoef(noisy, factor[:, 0])[0, 1] ** 2
    assert sap(codes, factor) == pytest.approx(expected)


def test_factorvae_votes_follow_the_fixed_factor():
    # Dimension 0 follows factor 1 and dimension 1 follows factor 0: the classifier maps each
    # dimension to its factor, so every held-out vote is right even though the order is swapped.
    _, factors = factor_codes(5000, 6)
    codes = factors[:, [1, 0]] + 0.01 * np.random.default_rng(7).standard_normal((5000, 2))
    assert factorvae_score(codes, factors[:, :2], votes=400) == 1.0
    assert factorvae_score(np.zeros((5000, 2)), factors[:, :2], votes=400) == 0.0


def test_dci_informativeness_is_scored_on_the_held_out_codes(codes):
    (train, factors), (test, test_factors) = codes
    shuffled = test[np.random.default_rng(8).permutation(len(test))]  # codes no longer match their factors
    assert dci(train, factors, shuffled, test_factors)["informativeness"] < 0.05


def test_a_shapes_run_records_every_metric_and_ae_eval_repeats_them(tiny_cfg, tmp_path):
    from autoencoders.evaluation.finished_run import evaluate_run
    from autoencoders.rundir.record import read_record
    from autoencoders.training.pipeline import train
    from tests.helpers import read_events

    run = tmp_path / "run"
    small = [
        "data=shapes",
        f"data.root={tmp_path / 'data'}",
        "data.resolution=16",
        "data.positions=8",
        "data.orientations=8",
        "data.subsample=400",
        "data.test_size=100",
        "data.val_size=50",
        "model=vae",
        "model.latent_dim=4",
        "eval.factor_codes=300",
        "eval.factorvae_votes=100",
        "eval.nll_samples=0",
        "eval.sample_quality=false",
        "logging.projector_points=0",
        "logging.images_every_n_epochs=0",
    ]
    metrics = train(tiny_cfg(*small), run_dir=run)
    names = {
        f"test/{name}"
        for name in ("mig", "sap", "dci_disentanglement", "dci_completeness", "dci_informativeness", "factorvae_score")
    }
    assert names <= set(metrics) and all(0 <= metrics[name] <= 1 for name in names)
    record = read_record(run)
    used = record["evaluation"]["disentanglement"]
    assert used["train_codes"] == 300 and used["test_codes"] == 100 and used["factorvae_votes"] == 100
    assert used["factors"] == ["shape", "scale", "orientation", "position_x", "position_y"]
    assert names <= set(read_events(run).Tags()["scalars"])
    entry = evaluate_run(run)
    for name in names:
        assert entry["metrics"][name] == pytest.approx(record["metrics"][name], abs=1e-9), name
    assert entry["evaluation"]["disentanglement"]["train_codes"] == 300


def test_data_that_is_no_factorial_grid_skips_the_factorvae_score(codes):
    (train, factors), (test, test_factors) = codes
    scores = disentanglement_metrics(train[:500], factors[:500], test[:500], test_factors[:500], factorial=False)
    assert set(scores) == {"mig", "sap", "dci_disentanglement", "dci_completeness", "dci_informativeness"}
