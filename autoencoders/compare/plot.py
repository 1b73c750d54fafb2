"""ae-compare --plot: a PNG of one metric against one swept key, one line per value of another.

Kept apart from the table so that only --plot pays for importing matplotlib.
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

from autoencoders.compare.collect import SEED_KEY, CompareError, Run, check_key, number, value_order, varying_keys


def collect(runs: list[Run], metric: str, x_key: str, lines_key: str | None) -> dict[str, dict[str, list[float]]]:
    """{line value: {x value: [metric of each run]}}; runs without x or a finite metric are left out."""
    points: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        value = run.metrics.get(metric, math.nan)
        if x_key not in run.overrides or not math.isfinite(value):
            continue
        line = run.overrides.get(lines_key, "(unset)") if lines_key else ""
        points.setdefault(line, {}).setdefault(run.overrides[x_key], []).append(value)
    return points


def plot_metric(runs: list[Run], metric: str, x_key: str, lines_key: str | None, out: Path,
                logx: bool = False) -> None:  # fmt: skip
    """Write `out` (PNG): mean of `metric` per x value, error bars = sample std over repeats."""
    check_key(x_key, runs, "--x")
    check_key(lines_key, runs, "--lines")
    points = collect(runs, metric, x_key, lines_key)
    if not points:
        raise CompareError(f"ae-compare: no run has both {x_key} and a finite {metric}; nothing to plot", 1)
    averaged = [key for key in varying_keys(runs) if key not in (x_key, lines_key, SEED_KEY)]
    if averaged:  # a plot silently mixing e.g. two learning rates would mislead
        print(f"note: the plot averages over other swept keys: {', '.join(averaged)}", file=sys.stderr)
    x_values = value_order(list({x for line in points.values() for x in line}))
    numeric = all(number(x) is not None for x in x_values)
    if logx and not numeric:
        raise CompareError(f"ae-compare: error: --logx needs numeric values of {x_key}, got {', '.join(x_values)}", 2)
    position = {x: (number(x) if numeric else index) for index, x in enumerate(x_values)}

    from matplotlib.figure import Figure  # Figure + savefig use Agg without touching pyplot's state
    from matplotlib.ticker import NullFormatter

    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axes = figure.subplots()
    repeated = False
    for line in value_order(list(points)):
        xs = value_order(list(points[line]))
        groups = [points[line][x] for x in xs]
        means = [statistics.mean(values) for values in groups]
        stds = [statistics.stdev(values) if len(values) > 1 else 0.0 for values in groups]
        repeated = repeated or any(len(values) > 1 for values in groups)
        label = f"{lines_key}={line}" if lines_key else None
        axes.errorbar([position[x] for x in xs], means, yerr=stds, marker="o", capsize=3, label=label)
    if logx:
        axes.set_xscale("log")
        axes.xaxis.set_minor_formatter(NullFormatter())
    if not numeric or len(x_values) <= 12:  # a sweep has few values: label exactly those
        axes.set_xticks([position[x] for x in x_values], x_values)
    axes.set_xlabel(x_key)
    axes.set_ylabel(metric + (" (mean ± sample std)" if repeated else ""))
    axes.set_title(f"{metric} vs {x_key}")
    axes.grid(alpha=0.3)
    if lines_key:
        axes.legend(title=None)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
