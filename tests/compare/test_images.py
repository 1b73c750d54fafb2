"""ae-compare --images: fake sweeps with real TensorBoard event files, images of known colours at known steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

from autoencoders.cli.compare import main
from autoencoders.compare.collect import load_runs
from autoencoders.compare.grid import choose_axes, plan_sheets
from tests.compare.test_compare import run_cli, write_run

EPOCH_STEPS, TEST_STEP = (1, 3), 4
HEIGHT, WIDTH = 12, 20


def colour(run: int, step: int) -> tuple[int, int, int]:
    """A colour no other (run, step) has, far from the figure's white, black and grey."""
    return (30 + 15 * run, 60 + 30 * (step % 5), 190 - 10 * run)


def write_events(run_dir: Path, run: int, mse: float | None, after_test: bool = True) -> None:
    """A run's event files as training writes them: images/samples at each epoch's step and, after
    testing, at the test step beside test/mse (a second writer, as Lightning reopens its own)."""
    writer = SummaryWriter(str(run_dir))
    for step in EPOCH_STEPS:
        writer.add_image(
            "images/samples", np.full((HEIGHT, WIDTH, 3), colour(run, step), np.uint8), step, dataformats="HWC"
        )
    writer.close()
    if mse is None:
        return
    writer = SummaryWriter(str(run_dir))
    writer.add_scalar("test/mse", mse, TEST_STEP)
    if after_test:
        writer.add_image(
            "images/samples",
            np.full((HEIGHT, WIDTH, 3), colour(run, TEST_STEP), np.uint8),
            TEST_STEP,
            dataformats="HWC",
        )
    writer.close()


def fake_sweep(root: Path, grid: dict[str, tuple[str, ...]]) -> dict[tuple[str, ...], int]:
    """One completed run per combination of `grid` (Hydra's job numbering); {values: run number}."""
    combinations = [()]
    for values in grid.values():
        combinations = [(*done, value) for done in combinations for value in values]
    numbers = {}
    for number, values in enumerate(combinations):
        overrides = [f"{key}={value}" for key, value in zip(grid, values)]
        run_dir = write_run(
            root / f"{number}_{','.join(overrides)}",
            ["model=vae", *overrides, "torch_threads=1"],
            {"test/mse": 0.01 * (number + 1), "test/elbo": -100.0 - number},
        )
        write_events(run_dir, number, 0.01 * (number + 1))
        numbers[values] = number
    return numbers


@pytest.fixture
def drawn(monkeypatch) -> dict[str, dict]:
    """What every figure ae-compare saves shows in words: {file name: title, cell titles, cell texts}."""
    seen = {}
    original = Figure.savefig

    def savefig(self, path, *args, **kwargs):
        seen[Path(path).name] = {
            "title": self._suptitle.get_text(),
            "cells": [axes.get_title() for axes in self.axes],
            "texts": [[text.get_text() for text in axes.texts] for axes in self.axes],
        }
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return seen


def centre(picture: np.ndarray, rgb: tuple[int, int, int]) -> tuple[float, float] | None:
    """(x, y) centre of the pixels of exactly this colour, None when there are none."""
    ys, xs = np.nonzero((picture[..., :3] == rgb).all(-1))
    return (xs.mean(), ys.mean()) if len(xs) else None


def test_each_cell_shows_the_runs_image_drawn_after_testing(tmp_path, capsys, drawn):
    runs = fake_sweep(
        tmp_path / "sweep", {"model.latent_dim": ("8", "2", "32"), "model.beta": ("4", "0.5"), "seed": ("2", "1")}
    )
    code, _, err = run_cli(capsys, tmp_path / "sweep", "--images", "samples", "--out", tmp_path / "grid.png")
    assert code == 0 and f"wrote {tmp_path / 'grid.png'}" in err and "note" not in err
    picture = np.asarray(Image.open(tmp_path / "grid.png").convert("RGB"))
    # The first seed only; of each run the test step's image, none of the epochs' images.
    for (latent, beta, seed), number in runs.items():
        assert all(centre(picture, colour(number, step)) is None for step in EPOCH_STEPS)
        assert (centre(picture, colour(number, TEST_STEP)) is not None) == (seed == "1"), (latent, beta, seed)
    # Columns: latent sizes by value (2, 8, 32); rows: betas by value (0.5, 4), as the sweep gave them.
    where = {
        values[:2]: centre(picture, colour(number, TEST_STEP)) for values, number in runs.items() if values[2] == "1"
    }
    assert where[("2", "0.5")][0] < where[("8", "0.5")][0] < where[("32", "0.5")][0]
    assert where[("2", "0.5")][1] < where[("2", "4")][1] and where[("2", "4")][0] == pytest.approx(
        where[("2", "0.5")][0]
    )
    # Titles: the values and the run's test/mse; the figure says which seed it shows.
    figure = drawn["grid.png"]
    assert "images/samples of sweep" in figure["title"] and "seed=1, the first of 2 seeds" in figure["title"]
    order = [(latent, beta) for beta in ("0.5", "4") for latent in ("2", "8", "32")]
    expected = [
        f"beta={beta} · latent_dim={latent}\ntest/mse {0.01 * (runs[(latent, beta, '1')] + 1):.4g}"
        for latent, beta in order
    ]
    assert figure["cells"] == expected


def test_one_swept_key_is_one_row_and_label_picks_the_metric(tmp_path, capsys, drawn, monkeypatch):
    runs = fake_sweep(tmp_path, {"model.latent_dim": ("2", "16")})
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, tmp_path, "--images", "samples", "--label", "test/elbo")
    assert code == 0 and (tmp_path / "samples_grid.png").is_file()  # the default name
    assert drawn["samples_grid.png"]["cells"] == [
        f"latent_dim={latent}\ntest/elbo {-100.0 - runs[(latent,)]:.4g}" for latent in ("2", "16")
    ]


def test_more_than_two_keys_give_one_figure_per_combination(tmp_path, capsys, drawn):
    grid = {"model.lr": ("0.01", "0.001"), "model.beta": ("1", "4"), "model.latent_dim": ("2", "8")}
    runs = fake_sweep(tmp_path / "sweep", grid)
    code, _, err = run_cli(
        capsys,
        tmp_path / "sweep",
        "--images",
        "samples",
        "--rows",
        "model.latent_dim",
        "--cols",
        "model.beta",
        "--out",
        tmp_path / "out" / "grid.png",
    )
    assert code == 0
    for lr in ("0.001", "0.01"):
        name = f"grid_model.lr={lr}.png"
        assert f"wrote {tmp_path / 'out' / name}" in err and f"model.lr={lr}" in drawn[name]["title"]
        assert [title.split("\n")[1] for title in drawn[name]["cells"]] == [
            f"test/mse {0.01 * (runs[(lr, beta, latent)] + 1):.4g}" for latent in ("2", "8") for beta in ("1", "4")
        ]
    # Without --rows/--cols the first two swept keys are the axes (columns first), the third splits figures.
    assert choose_axes(load_runs(tmp_path / "sweep"), None, None) == ("model.beta", "model.lr", ["model.latent_dim"])


def test_a_run_without_the_image_is_an_empty_cell_with_its_status(tmp_path, capsys, drawn):
    fake_sweep(tmp_path, {"model.latent_dim": ("2", "8")})
    write_run(tmp_path / "2_model.latent_dim=64", ["model=vae", "model.latent_dim=64"], {}, status="failed")
    old = write_run(tmp_path / "3_model.latent_dim=128", ["model=vae", "model.latent_dim=128"], {"test/mse": 0.5})
    write_events(old, 7, 0.5, after_test=False)  # trained before images were drawn after testing
    code, _, err = run_cli(capsys, tmp_path, "--images", "samples", "--out", tmp_path / "grid.png")
    assert code == 0 and "note: no image after testing in 3_model.latent_dim=128" in err
    figure = drawn["grid.png"]
    assert figure["cells"][2:] == ["latent_dim=64\ntest/mse – (failed)", "latent_dim=128\ntest/mse 0.5 *"]
    assert figure["texts"][2] == ["no image\n(failed)"] and figure["texts"][3] == []
    assert "* no image after testing in this run: its last one" in figure["title"]
    picture = np.asarray(Image.open(tmp_path / "grid.png").convert("RGB"))
    assert centre(picture, colour(7, EPOCH_STEPS[-1])) is not None  # the last image, drawn at the last epoch


def test_unknown_tag_key_or_metric_exits_2_listing_the_ones_there_are(tmp_path, capsys):
    fake_sweep(tmp_path, {"model.latent_dim": ("2", "8"), "model.beta": ("1", "4")})
    code, out, err = run_cli(capsys, tmp_path, "--images", "traversal")
    assert (
        code == 2
        and out == ""
        and err.strip()
        == (
            "ae-compare: error: no run has the image 'traversal' "
            "(images/traversal) for --images; images in these runs: samples"
        )
    )
    code, _, err = run_cli(capsys, tmp_path, "--images", "samples", "--rows", "model.bta")
    assert code == 2 and "unknown override key 'model.bta' for --rows; keys in these runs: model, model.beta" in err
    code, _, err = run_cli(capsys, tmp_path, "--images", "samples", "--rows", "model.beta", "--cols", "model.beta")
    assert code == 2 and "--rows and --cols are both 'model.beta'" in err
    code, _, err = run_cli(capsys, tmp_path, "--images", "samples", "--label", "test/ms")
    assert code == 2 and "unknown metric 'test/ms' for --label; available metrics: test/elbo, test/mse" in err
    for argv in (
        ["--rows", "model.beta"],
        ["--out", "x.png"],
        ["--images", "samples", "--plot", "test/mse", "--x", "seed"],
    ):
        with pytest.raises(SystemExit) as stopped:
            main([str(tmp_path), *argv])
        assert stopped.value.code == 2


def test_runs_that_share_every_swept_value_show_the_first_once(tmp_path, capsys):
    fake_sweep(tmp_path / "a", {"model.latent_dim": ("2", "8")})
    fake_sweep(tmp_path / "b", {"model.latent_dim": ("2", "8")})  # the same sweep again, under one folder
    runs = load_runs(tmp_path)
    (sheet,) = plan_sheets(runs, None, "model.latent_dim", [], tmp_path / "grid.png")
    assert {cell: run.label for cell, run in sheet.cells.items()} == {
        ("", "2"): "a/0_model.latent_dim=2",
        ("", "8"): "a/1_model.latent_dim=8",
    }
    assert "note: b/0_model.latent_dim=2 has the same values as a/0_model.latent_dim=2" in capsys.readouterr().err
