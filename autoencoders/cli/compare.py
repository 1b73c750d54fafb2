"""`ae-compare`: one table of every run below a directory (its overrides, status, final metrics).

    ae-compare outputs/sweeps/<sweep> [--sort test/mse] [--format csv] [--plot test/mse --x model.latent_dim]

Exit status 0, 1 (no runs found) or 2 (bad option). It never imports torch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autoencoders.compare.runs import CompareError
from autoencoders.compare.table import compare


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


def main(argv: list[str] | None = None) -> int:
    """Entry point of `ae-compare`: exit status 0, 1 (no runs found) or 2 (bad option)."""
    try:
        compare(parse_args(argv))
    except CompareError as error:
        print(error, file=sys.stderr)
        return error.code
    return 0
