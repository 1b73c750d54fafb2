"""`ae-compare`: one table of every run below a directory (its overrides, status, final metrics).

    ae-compare outputs/sweeps/<sweep> [--sort test/mse] [--format csv] [--plot test/mse --x model.latent_dim]
    ae-compare outputs/sweeps/<sweep> --images samples [--rows model.beta --cols model.latent_dim] [--out grid.png]
    ae-compare outputs/sweeps/<sweep> --paired test/nll --baseline model=vae

Exit status 0, 1 (no runs found) or 2 (bad option). It never imports torch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autoencoders.cli import quick_exit
from autoencoders.compare.collect import CompareError
from autoencoders.compare.table import compare


def _add_picture_options(parser: argparse.ArgumentParser) -> None:
    """--plot and --images, and the options that go with each."""
    plot = parser.add_argument_group("plot", "write a PNG of a metric against one override key")
    plot.add_argument("--plot", metavar="METRIC", help="metric on the y axis")
    plot.add_argument(
        "--x",
        metavar="KEY",
        help="override key on the x axis (numeric axis when values are numbers); "
        "a metric (a name with /, e.g. test/mse): one point per seed group, mean ± std on both axes",
    )
    plot.add_argument(
        "--lines",
        metavar="KEY",
        help="one line per value of this override key (with a metric --x: the colour of each point, default model)",
    )
    plot.add_argument("--logx", action="store_true", help="logarithmic x axis")
    images = parser.add_argument_group(
        "images",
        "write a PNG with one image from every run, drawn with its tested checkpoint, laid out by the swept keys",
    )
    images.add_argument(
        "--images",
        metavar="NAME",
        help="samples, reconstructions, traversal or interpolation "
        "(TensorBoard's images/NAME), or another image tag such as latent/scatter",
    )
    images.add_argument("--rows", metavar="KEY", help="override key down the rows (default: the second swept key)")
    images.add_argument(
        "--cols",
        metavar="KEY",
        help="override key across the columns (default: the first swept key); "
        "other swept keys give one PNG per combination",
    )
    images.add_argument("--label", metavar="METRIC", help="metric in each cell's title (default: test/mse)")
    paired = parser.add_argument_group(
        "paired",
        "compare runs image by image: each run's mean difference from its baseline run on the same test "
        "images, with its standard error (docs/compare.md)",
    )
    paired.add_argument("--paired", metavar="METRIC", help="a metric runs keep per image (test/nll)")
    paired.add_argument(
        "--baseline",
        metavar="KEY=VALUE",
        help="the baseline runs (e.g. model=vae); with seeds swept, each run is paired with its seed's",
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ae-compare",
        description="Compare the runs below a directory (every metrics.json, recursively): the overrides "
        "that differ between runs, status and final metrics. Runs that differ only by seed are grouped "
        "into mean ± sample std.",
    )
    parser.add_argument("directory", type=Path, help="a sweep directory, outputs/, or any folder of runs")
    parser.add_argument(
        "--metrics",
        action="append",
        metavar="NAMES",
        help="metric columns, comma-separated or repeated (default: test/mse, test/loss, other test/*)",
    )
    parser.add_argument("--sort", metavar="METRIC", help="sort rows by this metric, ascending (missing values last)")
    parser.add_argument("--desc", action="store_true", help="sort descending")
    parser.add_argument(
        "--format",
        choices=("rich", "markdown", "csv"),
        help="output format (default: rich table on a terminal, markdown otherwise)",
    )
    parser.add_argument("--no-group", action="store_true", help="one row per run even when seed was swept")
    _add_picture_options(parser)
    parser.add_argument(
        "--out",
        type=Path,
        help="PNG path for --plot or --images (default: <metric>_vs_<x>.png, "
        "<NAME>_grid.png, in the current directory)",
    )
    args = parser.parse_args(argv)
    if args.plot and not args.x:
        parser.error("--plot needs --x KEY")
    if args.plot and args.images:
        parser.error("--plot and --images each write a PNG; ask for one at a time")
    if (args.x or args.lines or args.logx) and not args.plot:
        parser.error("--x, --lines and --logx only go with --plot METRIC")
    if (args.rows or args.cols or args.label) and not args.images:
        parser.error("--rows, --cols and --label only go with --images NAME")
    if args.out and not (args.plot or args.images):
        parser.error("--out only goes with --plot METRIC or --images NAME")
    if bool(args.paired) != bool(args.baseline):
        parser.error("--paired METRIC and --baseline KEY=VALUE go together")
    if args.paired and (args.plot or args.images or args.metrics or args.sort or args.no_group):
        parser.error(
            "--paired writes its own table: it goes without --plot, --images, --metrics, --sort and --no-group"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point of `ae-compare`: exit status 0, 1 (no runs found) or 2 (bad option)."""
    quick_exit()
    try:
        compare(parse_args(argv))
    except CompareError as error:
        print(error, file=sys.stderr)
        return error.code
    return 0
