"""Disentanglement metrics: how one-to-one the code dimensions map onto the known factors.

Every metric takes codes (N, D) and integer factor levels (N, K) as NumPy arrays. The codes are
z-scored per dimension first (a dimension constant over the sample becomes 0 and counts as
inactive), so every score is unchanged by rescaling or permuting the dimensions.

- MIG, the mutual information gap (Chen et al. 2018, "Isolating Sources of Disentanglement in
  VAEs", sec. 4.1): each dimension discretised into 20 equal-width bins, I(z_j; v_k) per pair,
  and per factor the gap between its two most informative dimensions over H(v_k), averaged over
  factors. Bins as disentanglement_lib's `mig.py`.
- DCI (Eastwood & Williams 2018, "A Framework for the Quantitative Evaluation of Disentangled
  Representations", sec. 2 and 4): per factor a classifier f_k predicts the factor's level from
  the codes; R_jk, the importance of dimension j to f_k, makes the matrix R (D × K). Then
  disentanglement = Σ_j ρ_j (1 − H_K(P_j·)) with P_jk = R_jk / Σ_k R_jk and ρ_j = Σ_k R_jk / Σ R,
  completeness = Σ_k w_k (1 − H_D(P̃_·k)) with P̃_jk = R_jk / Σ_j R_jk and w_k = Σ_j R_jk / Σ R
  (the weights as disentanglement_lib's `dci.py`), and informativeness = f_k's accuracy on held-out
  codes, averaged over factors (disentanglement_lib's `informativeness_test`; the paper reports
  the error). f_k is a random forest (the paper's second model; disentanglement_lib boosts trees),
  R_jk its impurity importances. Its size was chosen by measurement (scripts/dci_importance.py,
  docs/disentanglement.md): DCI_TREES trees, each leaf holding at least DCI_MIN_LEAF of the
  training codes, so a forest cannot fit the noise inside one factor's level with other
  dimensions (deeper trees scored 0.54 on one noisy dimension per factor) and pure noise scores
  ≤ 0.03. The lasso built before scored pure noise up to 0.98: one tiny surviving coefficient is
  one-hot after any normalisation.
- SAP (Kumar et al. 2018, "Variational Inference of Disentangled Latent Concepts from Unlabeled
  Observations", sec. 5), continuous protocol: S_jk = R² of a linear fit of v_k on z_j alone
  (the squared correlation), and per factor the gap of its two largest S_jk, averaged.
- FactorVAE score (Kim & Mnih 2018, "Disentangling by Factorising", sec. 4), disentanglement_lib's
  protocol (`factor_vae.py`): a vote is one batch of codes whose images share the level of one
  factor k; it names the active dimension with the least variance in the batch over its variance
  in the whole sample. A majority-vote classifier (dimension -> factor) is fitted on `votes`
  votes; the score is its accuracy on votes/2 fresh ones; 0 when no dimension is active. Batches
  are drawn from the given images with factor k at a level drawn like disentanglement_lib's
  (the level of a random image): for a uniform sample of a full factorial grid (shapes,
  dsprites) that is the protocol's distribution, which is why other data skips it.
"""

from __future__ import annotations

import numpy as np

MIG_BINS = 20
# DCI's forests (measured in docs/disentanglement.md): more trees only lower pure noise's score a
# little (50: 0.016 against 0.030 at latent 32) at 2.5 times the cost; smaller leaves (1 %) let
# noise in (one noisy dimension per factor: 0.81); larger ones (3 %) take pure noise to 0.05.
DCI_TREES = 20
DCI_MIN_LEAF = 0.02  # of the training codes


def standardise(codes: np.ndarray) -> np.ndarray:
    """Each dimension to mean 0 and standard deviation 1; a constant one to 0."""
    codes = np.asarray(codes, dtype=np.float64)
    centred = codes - codes.mean(axis=0)
    scale = centred.std(axis=0)
    active = scale > 1e-12 * np.maximum(1.0, np.abs(codes).max(axis=0, initial=0.0))
    return np.where(active, centred / np.where(active, scale, 1.0), 0.0)


def _entropy(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    """Entropy of distributions along `axis` in log base `base` (0 log 0 = 0)."""
    logs = np.log(np.where(p > 0, p, 1.0)) / np.log(base)
    return -(p * logs).sum(axis=axis)


def _mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    from sklearn.metrics import mutual_info_score

    return float(mutual_info_score(a, b))


def mig(codes: np.ndarray, factors: np.ndarray, bins: int = MIG_BINS) -> float:
    """The mutual information gap, in [0, 1]."""
    codes = standardise(codes)
    discrete = [
        np.digitize(column, np.histogram(column, bins)[1][:-1]) if column.any() else np.zeros(len(column))
        for column in codes.T
    ]
    gaps = []
    for factor in np.asarray(factors).T:
        entropy = _mutual_information(factor, factor)
        if entropy == 0:  # a factor with one level carries nothing to capture
            continue
        informations = sorted((_mutual_information(column, factor) for column in discrete), reverse=True)
        gaps.append((informations[0] - (informations[1] if len(informations) > 1 else 0.0)) / entropy)
    return float(np.mean(gaps)) if gaps else 0.0


def dci(
    train_codes: np.ndarray,
    train_factors: np.ndarray,
    test_codes: np.ndarray,
    test_factors: np.ndarray,
    seed: int = 0,
) -> dict[str, float]:
    """DCI disentanglement, completeness and informativeness from one random forest per factor."""
    from sklearn.ensemble import RandomForestClassifier

    mean, std = train_codes.mean(0), train_codes.std(0)
    train = standardise(train_codes)
    active = std > 1e-12 * np.maximum(1.0, np.abs(train_codes).max(axis=0, initial=0.0))
    test = np.where(active, (test_codes - mean) / np.where(active, std, 1.0), 0.0)  # the training scaling
    importance = np.zeros((train.shape[1], train_factors.shape[1]))
    accuracies = []
    for k in range(train_factors.shape[1]):
        if len(np.unique(train_factors[:, k])) < 2:  # a factor with one level: nothing to predict
            continue
        forest = RandomForestClassifier(
            DCI_TREES, min_samples_leaf=DCI_MIN_LEAF, max_features=None, n_jobs=1, random_state=seed
        )
        forest.fit(train, train_factors[:, k])
        importance[:, k] = forest.feature_importances_  # zeros when no tree could split
        accuracies.append(float(np.mean(forest.predict(test) == test_factors[:, k])))
    scores = dci_from_importance(importance)
    scores["informativeness"] = float(np.mean(accuracies)) if accuracies else 0.0
    return scores


def dci_from_importance(importance: np.ndarray) -> dict[str, float]:
    """Disentanglement and completeness of an importance matrix R (D dimensions × K factors)."""
    total = importance.sum()
    n_dims, n_factors = importance.shape
    if total == 0:
        return {"disentanglement": 0.0, "completeness": 0.0}
    per_dim = importance.sum(axis=1)
    used = per_dim > 0
    disentangled = np.zeros(n_dims)
    if n_factors > 1:
        disentangled[used] = 1 - _entropy(importance[used] / per_dim[used, None], n_factors, axis=1)
    else:
        disentangled[used] = 1.0
    per_factor = importance.sum(axis=0)
    present = per_factor > 0
    complete = np.zeros(n_factors)
    if n_dims > 1:
        complete[present] = 1 - _entropy(importance[:, present] / per_factor[present], n_dims, axis=0)
    else:
        complete[present] = 1.0
    return {
        "disentanglement": float((disentangled * per_dim / total).sum()),
        "completeness": float((complete * per_factor / total).sum()),
    }


def sap(codes: np.ndarray, factors: np.ndarray) -> float:
    """The separated attribute predictability score, continuous protocol, in [0, 1]."""
    codes = standardise(codes)
    levels = standardise(factors)
    # With both sides z-scored, the R² of a one-dimension linear fit is the squared correlation.
    scores = (codes.T @ levels / len(codes)) ** 2  # (D, K)
    kept = levels.any(axis=0)
    if not kept.any() or scores.shape[0] < 2:
        return 0.0
    top = np.sort(scores[:, kept], axis=0)[::-1]
    return float((top[0] - top[1]).mean())


def factorvae_score(
    codes: np.ndarray, factors: np.ndarray, votes: int = 10_000, batch_size: int = 64, seed: int = 0
) -> float:
    """The FactorVAE score: the held-out accuracy of the majority-vote classifier, in [0, 1]."""
    codes = standardise(codes)
    active = codes.any(axis=0)  # z-scored: every non-constant dimension has variance 1
    if not active.any():
        return 0.0
    rng = np.random.default_rng(seed)
    varying = [k for k in range(factors.shape[1]) if len(np.unique(factors[:, k])) > 1]
    members = {
        k: {level: np.flatnonzero(factors[:, k] == level) for level in np.unique(factors[:, k])} for k in varying
    }
    active_index = np.flatnonzero(active)

    def vote_matrix(n_votes: int) -> np.ndarray:
        counts = np.zeros((codes.shape[1], factors.shape[1]), dtype=np.int64)
        for _ in range(n_votes):
            k = varying[rng.integers(len(varying))]
            pool = members[k][factors[rng.integers(len(factors)), k]]
            batch = codes[rng.choice(pool, batch_size, replace=len(pool) < batch_size)][:, active_index]
            counts[active_index[np.argmin(batch.var(axis=0, ddof=1))], k] += 1  # global variance is 1
        return counts

    train, held_out = vote_matrix(votes), vote_matrix(max(votes // 2, 1))
    classifier = train.argmax(axis=1)  # each dimension's majority factor
    return float(held_out[np.arange(len(classifier)), classifier].sum() / held_out.sum())


def disentanglement_metrics(
    train_codes: np.ndarray,
    train_factors: np.ndarray,
    test_codes: np.ndarray,
    test_factors: np.ndarray,
    factorial: bool,
    votes: int = 10_000,
    batch_size: int = 64,
    seed: int = 0,
    dci_codes: int | None = None,
) -> dict[str, float]:
    """Every metric, named as the record holds them (without the test/ prefix). DCI's forests are
    fitted on the first `dci_codes` training codes (None: all)."""
    scores = {"mig": mig(train_codes, train_factors), "sap": sap(train_codes, train_factors)}
    fit = slice(None, dci_codes)
    found = dci(train_codes[fit], train_factors[fit], test_codes, test_factors, seed)
    scores.update({f"dci_{name}": value for name, value in found.items()})
    if factorial:
        scores["factorvae_score"] = factorvae_score(train_codes, train_factors, votes, batch_size, seed)
    return scores


def factor_scores(
    model: object, datamodule: object, settings: object, seed: int = 0, passes: object | None = None
) -> tuple[dict[str, float], dict]:
    """test/* disentanglement metrics of a model's deterministic codes (`encode`: the posterior
    mean for the VAEs) on fixed subsets of the training and test splits, and what they used.
    `passes`: the evaluations' shared passes (machinery/passes.py), which hold codes the probe made."""
    import time

    from autoencoders.evaluation.probe import subset
    from autoencoders.machinery.passes import passes_of

    passes = passes if passes is not None else passes_of(model, datamodule)
    started = time.perf_counter()
    splits = {}
    for split, size in (("train", settings.factor_codes), ("test", settings.factor_test_codes)):
        chosen = subset(len(datamodule.labels(split)), size, seed)
        splits[split] = (passes.codes(split, chosen).double().numpy(), datamodule.factors[split][chosen].numpy())
    scores = disentanglement_metrics(
        *splits["train"],
        *splits["test"],
        datamodule.factorial,
        settings.factorvae_votes,
        settings.factorvae_batch,
        seed,
        settings.dci_codes,
    )
    used = {
        "factors": datamodule.factor_names,
        "train_codes": len(splits["train"][0]),
        "test_codes": len(splits["test"][0]),
        "mig_bins": MIG_BINS,
        "dci": f"random forest, {DCI_TREES} trees, leaves >= {DCI_MIN_LEAF:.0%} of its codes",
        "dci_train_codes": len(splits["train"][0][: settings.dci_codes]),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if datamodule.factorial:
        used.update(
            factorvae_votes=settings.factorvae_votes,
            factorvae_held_out_votes=max(settings.factorvae_votes // 2, 1),
            factorvae_batch=settings.factorvae_batch,
        )
    return {f"test/{name}": value for name, value in scores.items()}, used


def check_vote_memory(batch: int, latent_dim: int) -> None:
    """Refuse, before training, a FactorVAE-score vote of `batch` codes (float64, with their int64
    indices, drawn with replacement when fewer share the level) that cannot fit in memory at once."""
    from autoencoders import machine
    from autoencoders.errors import ConfigError

    memory, needed = machine.memory(), batch * (latent_dim + 1) * 8
    if memory is not None and needed > memory:
        raise ConfigError(
            f"eval.factorvae_batch={batch} needs {needed / 2**30:,.1f} GiB at once for each FactorVAE-score vote "
            f"({latent_dim} numbers per code), more than this machine's {memory / 2**30:.1f} GiB of memory. Use a "
            "batch of tens to hundreds of codes (disentanglement_lib's default is 64)."
        )
