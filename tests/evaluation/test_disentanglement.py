"""The disentanglement metrics on codes built by hand at dSprites' factor sizes (issue 20): codes
that are the factors plus small noise score near the bounds, a rotation of them does not,
constant codes score 0, and no score moves when dimensions are permuted or rescaled. DCI's
random forests (issue 34) against its three criteria: pure noise, one noisy dimension per
factor, and a rotation of those; its formulas against a hand computation and against
disentanglement_lib's `dci.py` written with scipy's entropy."""

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
    return factor_codes(2000, 0), factor_codes(1000, 1)


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
    assert scores["sap"] >= 0.99
    # Test accuracy; a leaf holds >= 2 % of the 2,000 codes (40), about the 50 codes of each of the
    # 40 orientations, so not every level gets a leaf of its own (measured: 0.969).
    assert scores["dci_informativeness"] >= 0.95


def test_a_random_rotation_of_the_same_codes_is_entangled(codes):
    (train, factors), (test, test_factors) = codes
    rotation, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((9, 9)))
    scores = disentanglement_metrics(
        standardise(train) @ rotation, factors, standardise(test) @ rotation, test_factors, factorial=True
    )
    assert scores["mig"] < 0.2 and scores["sap"] < 0.5 and scores["dci_disentanglement"] < 0.5
    assert scores["factorvae_score"] < 0.9


def test_constant_codes_score_zero(codes):
    (_, factors), (_, test_factors) = codes
    scores = disentanglement_metrics(
        np.full((len(factors), 9), 3.0), factors, np.full((len(test_factors), 9), 3.0), test_factors, factorial=True
    )
    informativeness = scores.pop("dci_informativeness")
    assert scores == {name: 0.0 for name in scores} and len(scores) == 5
    # No tree can split: each forest predicts one level for every code, which is right for at
    # most the test share of the commonest level.
    commonest = [np.bincount(column).max() / len(column) for column in test_factors.T]
    assert 0 < informativeness <= np.mean(commonest)


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
    # Three dimensions, two factors, R = [[3, 1], [0, 2], [1, 1]] (sum 8): rows (3/4, 1/4), (0, 1),
    # (1/2, 1/2) weigh 4/8, 2/8, 2/8; columns (3/4, 0, 1/4), (1/4, 1/2, 1/4) weigh 1/2 each.
    h = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))  # nats
    found = dci_from_importance(np.array([[3.0, 1.0], [0.0, 2.0], [1.0, 1.0]]))
    assert found["disentanglement"] == pytest.approx(0.5 * (1 - h / np.log(2)) + 0.25 * 1 + 0.25 * 0)
    complete_1 = 1 - (-(2 * 0.25 * np.log(0.25) + 0.5 * np.log(0.5))) / np.log(3)
    assert found["completeness"] == pytest.approx(0.5 * (1 - h / np.log(3)) + 0.5 * complete_1)


def test_dci_from_importance_agrees_with_disentanglement_libs_formulas():
    # disentanglement_lib (evaluation/metrics/dci.py): per code 1 - entropy(R_j. + 1e-11, base K)
    # weighted by R_j. / sum R; per factor 1 - entropy(R_.k + 1e-11, base D) weighted by R_.k / sum R.
    from scipy.stats import entropy

    importance = np.random.default_rng(14).uniform(size=(7, 4)) ** 3
    importance[2] = 0  # an unused dimension
    per_code = 1 - entropy(importance.T + 1e-11, base=4)
    per_factor = 1 - entropy(importance + 1e-11, base=7)
    found = dci_from_importance(importance)
    assert found["disentanglement"] == pytest.approx((per_code * importance.sum(1)).sum() / importance.sum())
    assert found["completeness"] == pytest.approx((per_factor * importance.sum(0)).sum() / importance.sum())


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
    # Guessing is right with probability 1 / levels: (1/3 + 1/6 + 1/40 + 2/32) / 5 = 0.12 on average.
    assert dci(train, factors, shuffled, test_factors)["informativeness"] < 0.15
    assert dci(train, factors, test, test_factors)["informativeness"] >= 0.95


def unit_factors(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform factor levels at dSprites' sizes and each factor z-scored (mean 0, variance 1)."""
    rng = np.random.default_rng(seed)
    sizes = np.array(SIZES)
    factors = np.stack([rng.integers(size, size=n) for size in sizes], axis=1)
    return factors, (factors - (sizes - 1) / 2) / np.sqrt((sizes**2 - 1) / 12)


@pytest.mark.parametrize("latent", [10, 32])
def test_dci_scores_pure_noise_codes_near_zero(latent):
    # The lasso built before scored noise like this up to 0.98 (one tiny surviving coefficient is
    # one-hot after normalisation). Over 8 draws of 2,000 codes the forests scored <= 0.011 at
    # latent 10 and <= 0.030 at 32 (scripts/dci_importance.py).
    factors, _ = unit_factors(2000, 9)
    test_factors, _ = unit_factors(1000, 10)
    rng = np.random.default_rng(latent)
    scores = dci(rng.standard_normal((2000, latent)), factors, rng.standard_normal((1000, latent)), test_factors)
    assert scores["disentanglement"] <= 0.05 and scores["completeness"] <= 0.05
    assert scores["informativeness"] < 0.15  # chance (above)


@pytest.fixture(scope="module")
def one_dimension_per_factor():
    """Each factor z-scored plus N(0, 0.1²), one dimension each and no other dimensions; the noise
    is about one level's width for the 32 positions, which an unregularised forest fits with the
    other dimensions (trees of depth 8 scored 0.54)."""
    rng = np.random.default_rng(11)
    (factors, unit), (test_factors, test_unit) = unit_factors(2000, 12), unit_factors(1000, 13)
    return (
        factors,
        unit + 0.1 * rng.standard_normal(unit.shape),
        test_factors,
        test_unit + 0.1 * rng.standard_normal(test_unit.shape),
    )


def test_dci_scores_one_noisy_dimension_per_factor_near_one(one_dimension_per_factor):
    factors, codes, test_factors, test_codes = one_dimension_per_factor
    scores = dci(codes, factors, test_codes, test_factors)
    assert scores["disentanglement"] >= 0.9 and scores["completeness"] >= 0.9


def test_dci_scores_a_rotation_of_those_codes_low(one_dimension_per_factor):
    factors, codes, test_factors, test_codes = one_dimension_per_factor
    rotation = np.linalg.qr(np.random.default_rng(7).standard_normal((5, 5)))[0]
    scores = dci(codes @ rotation, factors, test_codes @ rotation, test_factors)
    # Each rotated dimension mixes the factors. Importances that were the shares of variance
    # (R = rotation²) would give 0.44; the forests gave <= 0.36 over 8 draws.
    assert scores["disentanglement"] <= 0.45 and scores["completeness"] <= 0.45
    variance_shares = dci_from_importance(rotation**2)
    assert variance_shares["disentanglement"] == pytest.approx(0.444, abs=1e-3)


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
        "eval.dci_codes=200",
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
    assert used["dci_train_codes"] == 200 and used["dci"].startswith("random forest")
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
