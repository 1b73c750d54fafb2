"""Measure candidate importance models for DCI (autoencoders/evaluation/disentanglement.py)
against the three criteria of issue 34, on one thread, and print one table row per model:

- pure noise: codes N(0, I) of `latent` dimensions, independent of the factors; disentanglement
  should be near 0 (≤ 0.05). Over `--seeds` draws, the largest score is printed.
- aligned: one code dimension per factor, the factor's level z-scored plus N(0, 0.1²) (no extra
  dimensions); should be near 1 (≥ 0.9). The smallest score over the draws is printed.
- rotated: the aligned codes times a random rotation (seed 7); should be low. The largest score
  is printed, beside what variance shares would give (R_jk = Q_jk²: 0.44 for this rotation).

Factors are uniform at dSprites' sizes (3, 6, 40, 32, 32); the test codes are another draw of
half as many. Seconds are CPU seconds of the five fits (one per factor) of the first draw.

    python scripts/dci_importance.py --codes 2000 --seeds 8            # the criteria at the tests' size
    python scripts/dci_importance.py --codes 10000 --seeds 1           # the cost at a run's size
    python scripts/dci_importance.py --codes 10000 --seeds 1 --models gb10

With `--runs`, the codes are those of finished runs on data with factors (their tested
checkpoint, the evaluation's fixed subsets): DCI as a run scores it (`eval.dci_codes` training
codes) beside DCI with disentanglement_lib's importance model, one default
GradientBoostingClassifier (100 trees) per factor, on the same codes:

    python scripts/dci_importance.py --runs outputs/sweeps/<sweep>/0_* --codes 5000
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier, RandomForestClassifier  # noqa: E402

from autoencoders.evaluation.disentanglement import dci_from_importance  # noqa: E402

SIZES = np.array((3, 6, 40, 32, 32))
ROTATION = np.linalg.qr(np.random.default_rng(7).standard_normal((5, 5)))[0]


def forest(trees: int, **kwargs):
    return lambda: RandomForestClassifier(trees, max_features=None, random_state=0, n_jobs=1, **kwargs)


MODELS = {
    "gb10": lambda: GradientBoostingClassifier(n_estimators=10, random_state=0),  # disentanglement_lib's, 10 trees
    "rf20-depth8": forest(20, max_depth=8),
    "rf20-depth5": forest(20, max_depth=5),
    "rf20-leaf1%": forest(20, min_samples_leaf=0.01),
    "rf10-leaf2%": forest(10, min_samples_leaf=0.02),
    "rf20-leaf2%": forest(20, min_samples_leaf=0.02),
    "rf50-leaf2%": forest(50, min_samples_leaf=0.02),
    "rf20-leaf3%": forest(20, min_samples_leaf=0.03),
    "rf20-leaf2%-sqrt": lambda: RandomForestClassifier(20, min_samples_leaf=0.02, random_state=0, n_jobs=1),
    "et50-leaf2%": lambda: ExtraTreesClassifier(50, min_samples_leaf=0.02, max_features=None, random_state=0),
}


def draw(n: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    factors = np.stack([rng.integers(size, size=n) for size in SIZES], axis=1)
    aligned = (factors - (SIZES - 1) / 2) / np.sqrt((SIZES**2 - 1) / 12) + 0.1 * rng.standard_normal(factors.shape)
    codes = {
        "noise 10": rng.standard_normal((n, 10)),
        "noise 32": rng.standard_normal((n, 32)),
        "aligned": aligned,
        "rotated": aligned @ ROTATION,
    }
    return factors, codes


def scores(make, codes: np.ndarray, factors: np.ndarray, test: np.ndarray, test_factors: np.ndarray):
    importance, accuracy = np.zeros((codes.shape[1], factors.shape[1])), []
    started = time.process_time()
    for k in range(factors.shape[1]):
        model = make().fit(codes, factors[:, k])
        importance[:, k] = model.feature_importances_
        accuracy.append(np.mean(model.predict(test) == test_factors[:, k]))
    seconds = time.process_time() - started
    return dci_from_importance(importance)["disentanglement"], float(np.mean(accuracy)), seconds


def run_codes(run_dir: str, train_size: int) -> tuple[np.ndarray, ...]:
    """A finished run's training codes (the first `train_size` of the evaluation's subset) and
    test codes, with their factors."""
    from pathlib import Path

    from autoencoders.evaluation.probe import subset
    from autoencoders.evaluation.suite import SUBSET_SEED
    from autoencoders.models.inference import evaluating
    from autoencoders.models.passes import passes_of
    from autoencoders.rundir.loading import instantiate, load_config, load_model, resolve

    run, checkpoint = resolve(Path(run_dir))
    cfg = load_config(run)
    model, _ = load_model(cfg, checkpoint)
    datamodule = instantiate(cfg.data, seed=cfg.seed)
    datamodule.setup("test")
    passes, found = passes_of(model, datamodule), []
    with evaluating(model):
        for split, size in (("train", cfg.eval.factor_codes), ("test", cfg.eval.factor_test_codes)):
            chosen = subset(len(datamodule.labels(split)), size, SUBSET_SEED)[
                : train_size if split == "train" else None
            ]
            found += [passes.codes(split, chosen).double().numpy(), datamodule.factors[split][chosen].numpy()]
    return tuple(found)


def compare_runs(runs: list[str], train_size: int) -> None:
    import torch

    from autoencoders.evaluation.disentanglement import dci

    torch.set_num_threads(1)
    print("| run | forest D / C / I | CPU s | disentanglement_lib's GBT D / C / I | CPU s |")
    print("|---|---|---|---|---|")
    for run in runs:
        codes, factors, test, test_factors = run_codes(run, train_size)
        started = time.process_time()
        ours = dci(codes, factors, test, test_factors)
        ours_seconds = time.process_time() - started
        importance, accuracy = np.zeros((codes.shape[1], factors.shape[1])), []
        started = time.process_time()
        for k in range(factors.shape[1]):
            model = GradientBoostingClassifier().fit(codes, factors[:, k])
            importance[:, k] = model.feature_importances_
            accuracy.append(np.mean(model.predict(test) == test_factors[:, k]))
        theirs = {**dci_from_importance(importance), "informativeness": float(np.mean(accuracy))}
        cells = [
            " / ".join(f"{scores[name]:.3f}" for name in ("disentanglement", "completeness", "informativeness"))
            for scores in (ours, theirs)
        ]
        seconds = time.process_time() - started
        print(f"| {run} | {cells[0]} | {ours_seconds:.1f} | {cells[1]} | {seconds:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codes", type=int, default=2000, help="training codes per draw")
    parser.add_argument("--seeds", type=int, default=8, help="draws of codes and factors")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--runs", nargs="+", help="finished runs: compare with disentanglement_lib's model")
    args = parser.parse_args()
    if args.runs:
        return compare_runs(args.runs, args.codes)
    draws = [(draw(args.codes, seed), draw(args.codes // 2, 1000 + seed)) for seed in range(args.seeds)]
    print(f"{args.codes} training codes, {args.seeds} draws; disentanglement (informativeness), CPU s of the first")
    print("| model | noise 10 (max) | noise 32 (max) | aligned (min) | rotated (max) |")
    print("|---|---|---|---|---|")
    for name in args.models:
        cells = []
        for case, pick in (("noise 10", max), ("noise 32", max), ("aligned", min), ("rotated", max)):
            found = [
                scores(MODELS[name], codes[case], factors, test[case], test_factors)
                for (factors, codes), (test_factors, test) in draws
            ]
            value, accuracy, _ = pick(found, key=lambda item: item[0])
            cells.append(f"{value:.3f} ({accuracy:.2f}) {found[0][2]:.1f} s")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
