"""ae-compare --plot: a PNG of one metric against one swept key, one line per value of another;
or, when --x names a metric too (a name with a `/`, e.g. test/mse), one point per seed group
with mean ± std error bars on both axes, coloured by --lines (default `model`): a trade-off.

Kept apart from the table so that only --plot pays for importing matplotlib.
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

from autoencoders.compare.collect import (
    SEED_KEY,
    CompareError,
    Run,
    check_key,
    check_metric,
    natural_key,
    number,
    value_order,
    varying_keys,
)


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


def plot_metric(runs: list[Run], metric: str, x_key: str, lines_key: str | None, out: Path, logx: bool = False) -> None:
    """Write `out` (PNG): mean of `metric` per x value, error bars = sample std over repeats."""
    if "/" in x_key:
        return plot_tradeoff(runs, metric, x_key, lines_key, out)
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


def seed_groups(runs: list[Run], y_metric: str, x_metric: str) -> dict[tuple[tuple[str, str], ...], list[Run]]:
    """Runs with both metrics finite, grouped by every override but the seed (and the excluded keys)."""
    varied = [key for key in varying_keys(runs) if key != SEED_KEY]
    groups: dict[tuple[tuple[str, str], ...], list[Run]] = {}
    for run in runs:
        if all(math.isfinite(run.metrics.get(name, math.nan)) for name in (y_metric, x_metric)):
            groups.setdefault(tuple((key, run.overrides.get(key, "(unset)")) for key in varied), []).append(run)
    return groups


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def plot_tradeoff(runs: list[Run], y_metric: str, x_metric: str, lines_key: str | None, out: Path) -> None:
    """Write `out` (PNG): one point per seed group at (mean x_metric, mean y_metric), error bars =
    sample std over its seeds on both axes, labelled by the other swept keys, coloured by `lines_key`."""
    check_metric(x_metric, runs, "--x")
    check_key(lines_key, runs, "--lines")
    colour_key = lines_key or "model"  # the default may be absent from the overrides: then one colour
    groups = seed_groups(runs, y_metric, x_metric)
    if not groups:
        raise CompareError(
            f"ae-compare: no run has both a finite {x_metric} and a finite {y_metric}; nothing to plot", 1
        )

    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.6), layout="constrained")
    axes = figure.subplots()
    colours: dict[str, str] = {}
    repeated = False
    for group, members in sorted(groups.items(), key=lambda item: [natural_key(value) for _, value in item[0]]):
        colour_value = dict(group).get(colour_key) or members[0].overrides.get(colour_key, "")
        new_colour = colour_value not in colours
        colour = colours.setdefault(colour_value, f"C{len(colours) % 10}")
        (x, x_std), (y, y_std) = (_mean_std([run.metrics[name] for run in members]) for name in (x_metric, y_metric))
        repeated = repeated or len(members) > 1
        legend = f"{colour_key}={colour_value}" if colour_value and new_colour else None  # one legend entry per colour
        axes.errorbar([x], [y], xerr=[x_std], yerr=[y_std], marker="o", capsize=3, color=colour, label=legend)
        label = ", ".join(f"{key.split('.')[-1]}={value}" for key, value in group if key != colour_key)
        if label:
            axes.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    suffix = " (mean ± sample std over seeds)" if repeated else ""
    axes.set_xlabel(x_metric + suffix)
    axes.set_ylabel(y_metric + suffix)
    axes.set_title(f"{y_metric} vs {x_metric}")
    axes.grid(alpha=0.3)
    if any(colours):
        axes.legend()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
