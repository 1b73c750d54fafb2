"""`ae-compare --paired METRIC --baseline KEY=VALUE`: two runs scored on the same test images,
compared image by image.

Two models' mean test/nll differ by less than each mean's spread over images: most of that
spread is which images are hard, and both models share it. The paired difference d_i = a_i - b_i
of one image's values removes it; its mean d̄ has the standard error s_d / sqrt(n) (s_d the sample
standard deviation of the d_i, n - 1), so |d̄| > 2 SE says the runs differ beyond the estimate's
noise on these images (the usual paired comparison, e.g. as a paired t-test reads it). It says
nothing of seeds: each pair is two runs, the seed's spread is the table's.

The values are the per-image files runs keep (rundir/per_image.py: test_nll.csv); only plain Python
here, like the rest of ae-compare.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from autoencoders.compare.collect import SEED_KEY, CompareError, Run, check_key
from autoencoders.rundir.per_image import PER_IMAGE_FILES, PerImageError, read_per_image


@dataclass(frozen=True)
class PairedDifference:
    """Run a against run b on the n test images both were scored on (values in the metric's units)."""

    images: int
    mean: float  # a's mean over those images
    baseline_mean: float  # b's
    difference: float  # mean of a_i - b_i
    standard_error: float  # of that mean: sample std of a_i - b_i over sqrt(n)

    @property
    def z(self) -> float:
        """The difference in standard errors (inf when every image differs by the same amount)."""
        if self.standard_error > 0:
            return self.difference / self.standard_error
        return 0.0 if self.difference == 0 else math.copysign(math.inf, self.difference)

    def verdict(self) -> str:
        """'lower' or 'higher' beyond two standard errors, else 'within 2 SE'."""
        if abs(self.z) <= 2:
            return "within 2 SE"
        return "lower" if self.difference < 0 else "higher"


def paired_difference(values: Mapping[int, float], baseline: Mapping[int, float]) -> PairedDifference:
    """The paired difference of two runs' per-image values (by test index); they must cover the
    same images, and at least two."""
    if set(values) != set(baseline):
        raise ValueError(
            f"the runs were scored on different test images ({len(values)} and {len(baseline)} images, "
            f"{len(set(values) & set(baseline))} in common)"
        )
    if len(values) < 2:
        raise ValueError(f"a paired standard error needs at least 2 images, not {len(values)}")
    order = sorted(values)
    a, b = [values[i] for i in order], [baseline[i] for i in order]
    if not all(math.isfinite(value) for value in a + b):
        raise ValueError("a per-image value is not finite (a diverged run?)")
    differences = [x - y for x, y in zip(a, b)]
    n = len(order)
    return PairedDifference(
        n,
        statistics.fmean(a),
        statistics.fmean(b),
        statistics.fmean(differences),
        statistics.stdev(differences) / math.sqrt(n),
    )


def parse_baseline(text: str, runs: list[Run]) -> tuple[str, str]:
    """--baseline KEY=VALUE, its key one of the runs' override keys."""
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise CompareError(f"ae-compare: error: --baseline takes KEY=VALUE (e.g. model=vae), not {text!r}", 2)
    key = key.replace("/", ".")
    check_key(key, runs, "--baseline")
    if not any(run.overrides.get(key) == value for run in runs):
        values = sorted({run.overrides[key] for run in runs if key in run.overrides})
        raise CompareError(f"ae-compare: error: no run has {key}={value}; its values here: {', '.join(values)}", 2)
    return key, value


def baseline_of(run: Run, baselines: list[Run], runs: list[Run]) -> Run:
    """The baseline run `run` is paired with: the one of the same seed where seeds were swept."""
    seeds = {r.overrides.get(SEED_KEY) for r in runs}
    same = [b for b in baselines if len(seeds) == 1 or b.overrides.get(SEED_KEY) == run.overrides.get(SEED_KEY)]
    if len(same) != 1:
        names = ", ".join(b.label for b in same) or "none"
        raise CompareError(
            f"ae-compare: error: {run.label} needs exactly one baseline run{' of its seed' if len(seeds) > 1 else ''}, "
            f"found {len(same)} ({names}); narrow --baseline, or compare a folder holding one baseline per seed",
            2,
        )
    return same[0]


def paired_rows(runs: list[Run], root: Path, metric: str, baseline: str) -> tuple[list[str], list[list[str]]]:
    """Header and cells: every completed run beside its baseline, the difference and its standard error."""
    if metric not in PER_IMAGE_FILES:
        raise CompareError(
            f"ae-compare: error: --paired needs per-image values, which runs keep for {', '.join(PER_IMAGE_FILES)} "
            f"only, not {metric!r}",
            2,
        )
    key, value = parse_baseline(baseline, runs)
    done = [run for run in runs if run.status == "completed"]
    baselines = [run for run in done if run.overrides.get(key) == value]
    header = ["run", "baseline", "images", metric, "baseline " + metric, "difference", "std error", "z", "verdict"]
    body = []
    for run in done:
        if run in baselines:
            continue
        against = baseline_of(run, baselines, runs)
        if run.data != against.data:
            raise CompareError(f"ae-compare: error: {run.label} and {against.label} were trained on other data", 2)
        try:
            pair = paired_difference(
                read_per_image(root / run.label, metric), read_per_image(root / against.label, metric)
            )
        except (PerImageError, ValueError) as error:
            raise CompareError(f"ae-compare: error: {run.label} against {against.label}: {error}", 1) from None
        body.append(
            [run.label, against.label, str(pair.images), f"{pair.mean:.6g}", f"{pair.baseline_mean:.6g}"]
            + [f"{pair.difference:+.4g}", f"{pair.standard_error:.3g}", f"{pair.z:+.1f}", pair.verdict()]
        )
    if not body:
        raise CompareError(f"ae-compare: error: every completed run has {key}={value}: nothing to pair", 1)
    return header, body
