"""ae-compare: one table of every run below a directory (its overrides, status, final metrics).

    ae-compare outputs/sweeps/<sweep> [--sort test/mse] [--format csv] [--plot test/mse --x model.latent_dim]

Reads only metrics.json files (see run_record.py), so it works on running, failed and finished
sweeps alike, and never imports torch.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoencoders.run_record import METRICS_FILE

# The keys conf/train.yaml keeps out of run names: paths and thread counts, which do not change
# the experiment, so two sweeps written to different output roots still line up.
IGNORED_KEYS = frozenset({"output_root", "data.root", "torch_threads", "hydra.run.dir", "hydra.sweep.dir"})
SEED_KEY = "seed"
ERROR_WIDTH = 70


class CompareError(Exception):
    """A problem with the user's request; `code` is the exit status (1: no runs, 2: bad option)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Run:
    """What ae-compare needs from one metrics.json."""

    label: str  # run directory relative to the directory being compared
    status: str
    metrics: dict[str, float]
    overrides: dict[str, str]
    error: str


@dataclass
class Row:
    """One table row: a run, or the runs of a group that differ only by seed."""

    runs: list[Run]
    overrides: dict[str, str]
    status: str
    error: str
    values: dict[str, tuple[float, float | None]]  # metric -> (mean, sample std or None)


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """["model.beta=4", "+trainer.x=1"] -> {"model.beta": "4", "trainer.x": "1"}."""
    parsed: dict[str, str] = {}
    for item in overrides:
        key, _, value = item.partition("=")
        parsed[key.lstrip("+")] = value  # `+key` / `++key` set the same key as `key`
    return parsed


def _natural_key(text: str) -> list[Any]:
    # Sweep jobs are named 0_..., 1_..., 10_...; sort them as numbers, not as strings.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _short_error(error: Any) -> str:
    if not isinstance(error, dict):
        return ""
    message = str(error.get("message") or "").strip().splitlines()
    text = f"{error.get('type') or 'Error'}: {message[0] if message else ''}".rstrip(": ")
    return text if len(text) <= ERROR_WIDTH else text[: ERROR_WIDTH - 1] + "…"


def _read_run(path: Path, root: Path) -> Run:
    """Parse one metrics.json; raise ValueError saying what is wrong with it."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read it ({error})") from error
    if not isinstance(record, dict) or not isinstance(record.get("status"), str):
        raise ValueError("not a run record (no 'status')")
    metrics, overrides = record.get("metrics") or {}, record.get("overrides") or []
    if not isinstance(metrics, dict) or not isinstance(overrides, list):
        raise ValueError("'metrics' must be an object and 'overrides' a list")
    try:
        floats = {str(name): float(value) for name, value in metrics.items()}
    except (TypeError, ValueError) as error:
        raise ValueError(f"a metric is not a number ({error})") from error
    label = path.parent.relative_to(root).as_posix()
    return Run(label, record["status"], floats, parse_overrides([str(item) for item in overrides]),
               _short_error(record.get("error")))  # fmt: skip


def load_runs(root: Path) -> list[Run]:
    """Every readable metrics.json below `root`, in natural path order; warns about the others."""
    if not root.is_dir():
        raise CompareError(f"ae-compare: {root} is not a directory", 1)
    paths = sorted(root.rglob(METRICS_FILE), key=lambda path: _natural_key(path.as_posix()))
    if not paths:
        raise CompareError(f"ae-compare: no {METRICS_FILE} found under {root}", 1)
    runs = []
    for path in paths:
        try:
            runs.append(_read_run(path, root))
        except ValueError as error:  # a half-written or foreign file must not hide the other runs
            print(f"warning: skipping {path}: {error}", file=sys.stderr)
    if not runs:
        raise CompareError(f"ae-compare: no readable {METRICS_FILE} under {root}", 1)
    return runs


def varying_keys(runs: list[Run]) -> list[str]:
    """Override keys whose value (or presence) differs between runs, in first-seen order."""
    keys = dict.fromkeys(key for run in runs for key in run.overrides if key not in IGNORED_KEYS)
    return [key for key in keys if len({run.overrides.get(key) for run in runs}) > 1]


def available_metrics(runs: list[Run]) -> list[str]:
    return sorted({name for run in runs for name in run.metrics})


def default_metrics(runs: list[Run]) -> list[str]:
    """test/mse, test/loss, then the other test/* metrics (val/* when no run got to testing)."""
    names = available_metrics(runs)
    stage = "test/" if any(name.startswith("test/") for name in names) else "val/"
    first = [name for name in (f"{stage}mse", f"{stage}loss") if name in names]
    return first + [name for name in names if name.startswith(stage) and name not in first]


def check_metric(name: str, runs: list[Run], option: str) -> None:
    if name not in available_metrics(runs):
        known = ", ".join(available_metrics(runs)) or "(none)"
        raise CompareError(f"ae-compare: error: unknown metric {name!r} for {option}; available metrics: {known}", 2)


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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ae-compare",
        description="Compare the runs below a directory (every metrics.json, recursively): the overrides "
        "that differ between runs, status and final metrics. Runs that differ only by seed are grouped "
        "into mean ± sample std.",
    )
    parser.add_argument("directory", type=Path, help="a sweep directory, outputs/, or any folder of runs")
    parser.add_argument("--metrics", action="append", metavar="NAMES",
                        help="metric columns, comma-separated or repeated (default: test/mse, test/loss, other test/*)")
    parser.add_argument("--sort", metavar="METRIC", help="sort rows by this metric, ascending (missing values last)")
    parser.add_argument("--desc", action="store_true", help="sort descending")
    parser.add_argument("--format", choices=("rich", "markdown", "csv"),
                        help="output format (default: rich table on a terminal, markdown otherwise)")
    parser.add_argument("--no-group", action="store_true", help="one row per run even when seed was swept")
    plot = parser.add_argument_group("plot", "write a PNG of a metric against one override key")
    plot.add_argument("--plot", metavar="METRIC", help="metric on the y axis")
    plot.add_argument("--x", metavar="KEY", help="override key on the x axis (numeric axis when values are numbers)")
    plot.add_argument("--lines", metavar="KEY", help="one line per value of this override key")
    plot.add_argument("--out", type=Path, help="PNG path (default: <metric>_vs_<x>.png in the current directory)")
    plot.add_argument("--logx", action="store_true", help="logarithmic x axis")
    args = parser.parse_args(argv)
    if args.plot and not args.x:
        parser.error("--plot needs --x KEY")
    if (args.x or args.lines or args.out or args.logx) and not args.plot:
        parser.error("--x, --lines, --out and --logx only go with --plot METRIC")
    return args


def compare(args: argparse.Namespace) -> None:
    runs = load_runs(args.directory)
    if args.metrics:
        metrics = [name.strip() for item in args.metrics for name in item.split(",") if name.strip()]
        for name in metrics:
            check_metric(name, runs, "--metrics")
    else:
        metrics = default_metrics(runs)
    for name, option in ((args.sort, "--sort"), (args.plot, "--plot")):
        if name:
            check_metric(name, runs, option)
    if args.plot:
        from autoencoders.compare_plot import plot_metric  # matplotlib is slow to import

        out = args.out or Path(f"{args.plot.replace('/', '_')}_vs_{args.x}.png")
        plot_metric(runs, args.plot, args.x, args.lines, out, logx=args.logx)  # checks keys before printing
    keys = varying_keys(runs)
    group = SEED_KEY in keys and not args.no_group
    rows = build_rows(runs, keys, metrics, group)
    if args.sort:
        rows = sort_rows(rows, args.sort, args.desc)
    fmt = args.format or ("rich" if sys.stdout.isatty() else "markdown")
    title = f"{len(runs)} runs under {args.directory}" + (f", {len(rows)} groups over seeds" if group else "")
    sys.stdout.write(render(*table_cells(rows, metrics, group, exact=fmt == "csv"), fmt, title))
    if args.plot:
        print(f"wrote {out}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `ae-compare`: exit status 0, 1 (no runs found) or 2 (bad option)."""
    try:
        compare(parse_args(argv))
    except CompareError as error:
        print(error, file=sys.stderr)
        return error.code
    return 0
