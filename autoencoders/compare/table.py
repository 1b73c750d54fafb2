"""ae-compare's table: rows of runs (or of seed groups: mean and sample std), sorted and rendered
as a rich table, markdown or CSV."""

from __future__ import annotations

import argparse
import csv
import io
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from autoencoders.compare.collect import (
    SEED_KEY,
    SIZE_METRICS,
    Run,
    available_metrics,
    check_metric,
    evaluation_differences,
    load_runs,
    varying_keys,
)


@dataclass
class Row:
    """One table row: a run, or the runs of a group that differ only by seed."""

    runs: list[Run]
    overrides: dict[str, str]
    status: str
    error: str
    values: dict[str, tuple[float, float | None]]  # metric -> (mean, sample std or None)


def default_metrics(runs: list[Run]) -> list[str]:
    """test/mse, test/loss, then the other test/* metrics (val/* when no run got to testing), then
    the model's size (model/parameters, model/multiply_adds) where it differs between the runs."""
    names = available_metrics(runs)
    stage = "test/" if any(name.startswith("test/") for name in names) else "val/"
    first = [name for name in (f"{stage}mse", f"{stage}loss") if name in names]
    size = [name for name in SIZE_METRICS if len({run.metrics.get(name) for run in runs}) > 1]
    return first + [name for name in names if name.startswith(stage) and name not in first] + size


def summarize(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1, statistics.stdev); std is None for one value."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None


def build_rows(runs: list[Run], keys: list[str], metrics: list[str], group: bool) -> list[Row]:
    """One row per run, or, with `group`, one per set of runs whose `keys` agree except seed."""
    groups: dict[tuple, list[Run]] = {}
    for index, run in enumerate(runs):
        identity = tuple(run.overrides.get(key) for key in keys if key != SEED_KEY) if group else (index,)
        groups.setdefault(identity, []).append(run)
    rows = []
    for members in groups.values():
        statuses = [run.status for run in members]
        counts = {status: statuses.count(status) for status in dict.fromkeys(statuses)}
        status = statuses[0] if len(counts) == 1 else ", ".join(f"{n} {s}" for s, n in counts.items())
        values = {}
        for metric in metrics:
            # A diverged seed's nan would turn the whole mean into nan; the status column already
            # says that a member diverged. Only when no member has a finite value is it nan.
            found = [run.metrics[metric] for run in members if metric in run.metrics]
            finite = [value for value in found if math.isfinite(value)]
            if found:
                values[metric] = summarize(finite) if finite else (math.nan, None)
        shown = {key: members[0].overrides.get(key, "") for key in keys if not (group and key == SEED_KEY)}
        error = "; ".join(dict.fromkeys(run.error for run in members if run.error))
        rows.append(Row(members, shown, status, error, values))
    return rows


def sort_rows(rows: list[Row], metric: str, descending: bool) -> list[Row]:
    """Sort by a metric's (mean) value; rows without it (or with nan) go last either way."""
    value = lambda row: row.values.get(metric, (math.nan,))[0]  # noqa: E731
    present = [row for row in rows if math.isfinite(value(row))]
    missing = [row for row in rows if not math.isfinite(value(row))]
    return sorted(present, key=value, reverse=descending) + missing


def table_cells(rows: list[Row], metrics: list[str], group: bool, exact: bool) -> tuple[list[str], list[list[str]]]:
    """Header and cells. `exact` (CSV) writes full-precision floats and std in its own column."""
    keys = list(rows[0].overrides) if rows else []
    header = ([] if group else ["run"]) + keys + ["status"] + (["seeds"] if group else [])
    for metric in metrics:
        header += [metric, f"{metric} std"] if exact and group else [metric]
    show_error = any(row.error for row in rows)
    header += ["error"] if show_error else []
    body = []
    for row in rows:
        cells = ([] if group else [row.runs[0].label]) + [row.overrides[key] for key in keys] + [row.status]
        cells += [str(len(row.runs))] if group else []
        for metric in metrics:
            mean, std = row.values.get(metric, (None, None))
            if exact:
                cells += [repr(mean) if mean is not None else ""]
                cells += [repr(std) if std is not None else ""] if group else []
            else:
                cells += ["" if mean is None else f"{mean:.6g}" + (f" ± {std:.2g}" if std is not None else "")]
        body.append(cells + ([row.error] if show_error else []))
    return header, body


def render(header: list[str], body: list[list[str]], fmt: str, title: str) -> str:
    """The table as csv, markdown, or (for a terminal) rich text."""
    if fmt == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([header, *body])
        return buffer.getvalue()
    if fmt == "markdown":
        escape = lambda cell: cell.replace("|", "\\|")  # noqa: E731 - a pipe would end the cell
        lines = ["| " + " | ".join(map(escape, cells)) + " |" for cells in [header, *body]]
        lines.insert(1, "|" + "|".join("---" for _ in header) + "|")
        return "\n".join(lines) + "\n"
    from rich.console import Console  # only the terminal view needs rich
    from rich.table import Table

    table = Table(title=title)
    for name in header:  # only the long free-text columns wrap, so numbers and keys stay on one line
        table.add_column(name, overflow="fold", no_wrap=name not in ("run", "error"))
    for cells in body:
        table.add_row(*cells)
    console = Console(file=io.StringIO(), force_terminal=sys.stdout.isatty(), width=Console().width)
    console.print(table)
    return console.file.getvalue()


def compare(args: argparse.Namespace) -> None:
    """ae-compare's work for parsed arguments: the table on stdout, the plot if asked."""
    runs = load_runs(args.directory)
    fmt = args.format or ("rich" if sys.stdout.isatty() else "markdown")
    if args.paired:
        from autoencoders.compare.paired import paired_rows

        header, body = paired_rows(runs, args.directory, args.paired, args.baseline)
        title = f"{args.paired} per image, each run against its baseline ({args.baseline})"
        sys.stdout.write(render(header, body, fmt, title))
        return
    if args.metrics:
        metrics = [name.strip() for item in args.metrics for name in item.split(",") if name.strip()]
        for name in metrics:
            check_metric(name, runs, "--metrics")
    else:
        metrics = default_metrics(runs)
    for name, option in ((args.sort, "--sort"), (args.plot, "--plot"), (args.label, "--label")):
        if name:
            check_metric(name, runs, option)
    written = []
    if args.plot:
        from autoencoders.compare.plot import plot_metric  # matplotlib is slow to import

        written = [args.out or Path(f"{args.plot.replace('/', '_')}_vs_{args.x.replace('/', '_')}.png")]
        plot_metric(runs, args.plot, args.x, args.lines, written[0], logx=args.logx)  # checks keys before printing
    if args.images:
        from autoencoders.compare.grid import image_grids  # matplotlib and tensorboard too

        out = args.out or Path(f"{args.images.replace('/', '_')}_grid.png")
        written = image_grids(runs, args.directory, args.images, out, args.rows, args.cols, args.label or "test/mse")
    note = evaluation_differences(runs)
    if note:
        print(note, file=sys.stderr)
    keys = varying_keys(runs)
    group = SEED_KEY in keys and not args.no_group
    rows = build_rows(runs, keys, metrics, group)
    if args.sort:
        rows = sort_rows(rows, args.sort, args.desc)
    title = f"{len(runs)} runs under {args.directory}" + (f", {len(rows)} groups over seeds" if group else "")
    sys.stdout.write(render(*table_cells(rows, metrics, group, exact=fmt == "csv"), fmt, title))
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
