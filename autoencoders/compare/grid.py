"""ae-compare --images: one PNG with the same image from every run of a sweep, laid out by its keys.

Rows and columns are two keys the sweep varied (values in natural order, numbers by value); the
other varied keys give one figure per combination of their values. Each cell is titled with its
values and a metric of the run (test/mse by default). When seed was swept, the figure shows the
first seed and says so. A run without the image is an empty cell labelled with its status.

Only this module and events.py import matplotlib and tensorboard, and only when called, so the
table stays fast; nothing here imports torch.
"""

from __future__ import annotations

import io
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from autoencoders.compare.collect import SEED_KEY, CompareError, Run, check_key, value_order, varying_keys
from autoencoders.compare.events import RunImage, image_tags, read_events, tested_image

IMAGE_NAMES = ("samples", "reconstructions", "traversal", "interpolation")  # images/<name>; other tags work too
UNSET = "(unset)"
DPI = 100
TITLE_INCHES = 0.42  # two lines of 8-point title above each cell


@dataclass
class Sheet:
    """One figure: the runs of one combination of the other varied keys, by row and column value."""

    out: Path
    fixed: dict[str, str]  # this figure's values of the varied keys that are neither rows nor columns
    rows: list[str]  # row values ([""] without a row key)
    cols: list[str]
    cells: dict[tuple[str, str], Run] = field(default_factory=dict)


def image_tag(name: str) -> str:
    """`samples` -> `images/samples`; a full tag (`latent/scatter`) stays as it is."""
    return name if "/" in name else f"images/{name}"


def _value(run: Run, key: str | None) -> str:
    return run.overrides.get(key, UNSET) if key else ""


def choose_axes(runs: list[Run], rows: str | None, cols: str | None) -> tuple[str | None, str | None, list[str]]:
    """(row key, column key, keys that split figures): the given keys, else the varied keys in
    the order the sweep gave them, columns first (`-m model.latent_dim=... model.beta=...` puts
    latent sizes across and betas down)."""
    check_key(rows, runs, "--rows")
    check_key(cols, runs, "--cols")
    if rows is not None and rows == cols:
        raise CompareError(f"ae-compare: error: --rows and --cols are both {rows!r}; choose two keys", 2)
    free = [key for key in varying_keys(runs) if key not in (rows, cols, SEED_KEY)]
    cols = cols if cols is not None or not free else free.pop(0)
    rows = rows if rows is not None or not free else free.pop(0)
    return rows, cols, free


def first_seed(runs: list[Run], axes: tuple[str | None, ...]) -> tuple[list[Run], str]:
    """The runs of the first seed when seed was swept (and is not an axis), and the title's note."""
    if SEED_KEY not in varying_keys(runs) or SEED_KEY in axes:
        return runs, ""
    seeds = value_order(list({_value(run, SEED_KEY) for run in runs}))
    return [
        run for run in runs if _value(run, SEED_KEY) == seeds[0]
    ], f"seed={seeds[0]}, the first of {len(seeds)} seeds"


def _sheet_path(out: Path, fixed: dict[str, str]) -> Path:
    """grid.png, or grid_model.lr=0.001,seed=1.png for one of several figures."""
    if not fixed:
        return out
    names = ",".join(f"{key}={value}".replace("/", "_") for key, value in fixed.items())
    return out.with_name(f"{out.stem}_{names}{out.suffix or '.png'}")


def plan_sheets(runs: list[Run], rows: str | None, cols: str | None, fixed_keys: list[str], out: Path) -> list[Sheet]:
    """One Sheet per combination of `fixed_keys` (in natural order), each run in its cell."""
    order = {key: value_order(list({_value(run, key) for run in runs})) for key in [rows, cols, *fixed_keys] if key}
    groups: dict[tuple[str, ...], list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(_value(run, key) for key in fixed_keys), []).append(run)
    sheets = []
    for combination in sorted(groups, key=lambda values: [order[key].index(v) for key, v in zip(fixed_keys, values)]):
        fixed = dict(zip(fixed_keys, combination))
        sheet = Sheet(_sheet_path(out, fixed), fixed, order.get(rows, [""]), order.get(cols, [""]))
        for run in groups[combination]:
            cell = (_value(run, rows), _value(run, cols))
            if cell in sheet.cells:  # runs that differ in nothing swept (a sweep run twice under one folder)
                print(
                    f"note: {run.label} has the same values as {sheet.cells[cell].label}; showing the first",
                    file=sys.stderr,
                )
                continue
            sheet.cells[cell] = run
        sheets.append(sheet)
    return sheets


def _short_names(keys: list[str | None]) -> dict[str, str]:
    """model.latent_dim -> latent_dim in cell titles, unless two keys would then read the same."""
    shown = [key for key in keys if key]
    short = {key: key.rsplit(".", 1)[-1] for key in shown}
    return short if len(set(short.values())) == len(short) else {key: key for key in shown}


def cell_title(run: Run | None, values: list[tuple[str, str]], label: str, image: RunImage | None) -> str:
    """'beta=0.5 · latent_dim=2' over 'test/mse 0.0285' (a * marks an image not drawn after testing)."""
    first = " · ".join(f"{name}={value}" for name, value in values)
    if run is None:
        return first
    metric = run.metrics.get(label, math.nan)
    second = f"{label} {metric:.4g}" if label in run.metrics else f"{label} –"
    second += "" if run.status == "completed" else f" ({run.status})"
    return f"{first}\n{second}{' *' if image is not None and not image.tested else ''}"


def draw_sheet(
    sheet: Sheet, images: dict[str, RunImage | None], keys: tuple[str | None, str | None], label: str, title: str
) -> None:
    """Write sheet.out: one cell per row and column value, each image at twice its pixel size."""
    from matplotlib.figure import Figure  # Figure + savefig use Agg without touching pyplot's state
    from matplotlib.image import imread

    pictures = {name: imread(io.BytesIO(image.png), format="png") for name, image in images.items() if image}
    # Cells fit the largest image, and every image keeps one pixel scale: a 2-d model's traversal
    # has 2 rows where a 32-d model's has 8.
    height = max((picture.shape[0] for picture in pictures.values()), default=100)
    width = max((picture.shape[1] for picture in pictures.values()), default=100)
    scale = 2 if width <= 400 else 1  # whole pixels: small grids stay sharp with nearest-neighbour scaling
    cell_width, cell_height = max(width * scale / DPI, 1.6), height * scale / DPI
    figure = Figure(
        figsize=(len(sheet.cols) * (cell_width + 0.1), len(sheet.rows) * (cell_height + TITLE_INCHES) + 0.6),
        layout="constrained",
    )
    grid = figure.subplots(len(sheet.rows), len(sheet.cols), squeeze=False)
    names = _short_names(list(keys))
    for i, row in enumerate(sheet.rows):
        for j, col in enumerate(sheet.cols):
            axes, run = grid[i][j], sheet.cells.get((row, col))
            axes.set_axis_off()
            values = [(names[key], value) for key, value in zip(keys, (row, col)) if key]
            image = images.get(run.label) if run is not None else None
            axes.set_title(cell_title(run, values, label, image), fontsize=8)
            if image is not None:  # centred at the top of the cell
                own_height, own_width = pictures[run.label].shape[:2]
                left = (width - own_width) / 2
                axes.imshow(
                    pictures[run.label], interpolation="nearest", extent=(left, left + own_width, own_height, 0)
                )
            axes.set(xlim=(0, width), ylim=(height, 0), aspect="equal")
            if image is None:
                axes.text(
                    width / 2,
                    height / 2,
                    "no run" if run is None else f"no image\n({run.status})",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="0.4",
                )
    if any(image is not None and not image.tested for image in images.values()):
        title += "\n* no image after testing in this run: its last one, which may show other weights than the number"
    figure.suptitle(title, fontsize=9)
    sheet.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(sheet.out, dpi=DPI)


def image_grids(
    runs: list[Run],
    root: Path,
    name: str,
    out: Path,
    rows: str | None = None,
    cols: str | None = None,
    label: str = "test/mse",
) -> list[Path]:
    """Write the PNG(s) of image `name` from every run below `root`; returns their paths."""
    tag = image_tag(name)
    rows, cols, fixed_keys = choose_axes(runs, rows, cols)
    runs, seed_note = first_seed(runs, (rows, cols))
    images: dict[str, RunImage | None] = {}
    tags: set[str] = set()
    for run in runs:
        events = read_events(root / run.label)
        tags.update(image_tags(events))
        images[run.label] = tested_image(events, tag)
    if not any(images.values()):
        listed = ", ".join(sorted(found.removeprefix("images/") for found in tags)) or "(none)"
        raise CompareError(
            f"ae-compare: error: no run has the image {name!r} ({tag}) for --images; images in these runs: {listed}", 2
        )
    untested = [label for label, image in images.items() if image is not None and not image.tested]
    if untested:
        print(
            f"note: no image after testing in {', '.join(untested)}; showing each one's last image instead",
            file=sys.stderr,
        )
    sheets = plan_sheets(runs, rows, cols, fixed_keys, out)
    for sheet in sheets:
        parts = [
            f"{tag} of {root.resolve().name}",
            *(f"{key}={value}" for key, value in sheet.fixed.items()),
            seed_note,
        ]
        draw_sheet(
            sheet,
            {run.label: images[run.label] for run in sheet.cells.values()},
            (rows, cols),
            label,
            ", ".join(part for part in parts if part),
        )
    return [sheet.out for sheet in sheets]
