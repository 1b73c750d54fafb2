"""ae-compare: tables and plots built from fake run directories, checked against their metrics.json."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from autoencoders.cli.compare import main
from autoencoders.compare.collect import load_runs
from autoencoders.compare.plot import collect
from autoencoders.rundir.record import read_record, write_json_atomic

BIN = Path(sys.executable).parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BETAS, LATENTS, SEEDS = ("1", "4"), ("2", "8"), ("1", "2", "3")


def write_run(
    run_dir: Path, overrides: list[str], metrics: dict[str, float], status: str = "completed", error: dict | None = None
) -> Path:
    """A metrics.json shaped like RunRecord's, written the way ae-train writes it."""
    payload = {
        "status": status,
        "metrics": metrics,
        "data": {"name": "synthetic", "source": "generated", "note": "", "train": 448, "val": 64, "test": 256},
        "model": {"name": "vae", "target": "autoencoders.models.vae.VAE", "parameters": 435_987},
        "overrides": overrides,
        "error": error,
        "provenance": {"command": "ae-train -m ...", "run_dir": str(run_dir), "torch_threads": 1},
    }
    write_json_atomic(run_dir / "metrics.json", payload)
    return run_dir


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A beta x latent_dim x seed sweep of 12 completed VAE jobs, laid out as Hydra names them."""
    root = tmp_path / "sweeps" / "2026-01-01_12-00-00_ab12cd34"
    num = 0
    for beta in BETAS:
        for latent in LATENTS:
            for seed in SEEDS:
                swept = [f"model.beta={beta}", f"model.latent_dim={latent}", f"seed={seed}"]
                # Irregular numbers so that a wrong row or a rounded value cannot pass by chance.
                mse = 0.05 / int(latent) + 0.0013 * int(seed) ** 1.5 + 0.0007 * int(beta)
                elbo = -250.0 - 3.1 * int(beta) + 7.3 / int(latent) - 1.7 * int(seed) ** 2
                metrics = {"test/mse": mse, "test/loss": -elbo / 784, "test/elbo": elbo, "val/loss": 0.3 + mse}
                overrides = ["model=vae", *swept, "torch_threads=1", f"output_root={tmp_path}"]
                write_run(root / f"{num}_{','.join(swept)}", overrides, metrics)
                num += 1
    return root


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def records(root: Path) -> dict[str, dict]:
    """metrics.json of every run, by directory relative to `root` (the table's run column)."""
    return {
        path.parent.relative_to(root).as_posix(): json.loads(path.read_text()) for path in root.rglob("metrics.json")
    }


def test_csv_rows_equal_each_jobs_metrics_json(sweep, capsys):
    code, out, _ = run_cli(capsys, sweep, "--format", "csv", "--no-group")
    assert code == 0
    rows = read_csv(out)
    # Only swept keys are columns: model=vae is the same everywhere; torch_threads and
    # output_root are run plumbing (conf/train.yaml keeps them out of run names too).
    assert list(rows[0]) == [
        "run",
        "model.beta",
        "model.latent_dim",
        "seed",
        "status",
        "test/mse",
        "test/loss",
        "test/elbo",
    ]
    expected = records(sweep)
    assert sorted(row["run"] for row in rows) == sorted(expected) and len(rows) == 12
    for row in rows:
        record = expected[row["run"]]
        assert row["status"] == "completed"
        for metric in ("test/mse", "test/loss", "test/elbo"):
            assert float(row[metric]) == record["metrics"][metric]  # exact: CSV keeps full precision
        assert [f"{key}={row[key]}" for key in ("model.beta", "model.latent_dim", "seed")] == record["overrides"][1:4]
    # Natural order of job numbers (0, 1, ..., 10, 11), not string order (0, 1, 10, 11, 2, ...).
    assert [row["run"].split("_")[0] for row in rows] == [str(num) for num in range(12)]


def test_metrics_option_picks_columns(sweep, capsys):
    code, out, _ = run_cli(capsys, sweep, "--format", "csv", "--no-group", "--metrics", "val/loss,test/elbo")
    assert code == 0
    assert list(read_csv(out)[0])[-2:] == ["val/loss", "test/elbo"]


def test_ignored_and_constant_keys_are_not_columns(tmp_path, capsys):
    write_run(
        tmp_path / "a", ["model=mlp", "model.latent_dim=2", "torch_threads=1", "output_root=/x"], {"test/mse": 0.2}
    )
    write_run(
        tmp_path / "b", ["model=mlp", "model.latent_dim=3", "torch_threads=2", "output_root=/y"], {"test/mse": 0.1}
    )
    write_run(tmp_path / "c", ["model=mlp", "model.latent_dim=3", "+trainer.gradient_clip_val=1"], {"test/mse": 0.3})
    code, out, _ = run_cli(capsys, tmp_path, "--format", "csv")
    assert code == 0
    rows = read_csv(out)
    assert list(rows[0]) == ["run", "model.latent_dim", "trainer.gradient_clip_val", "status", "test/mse"]
    assert [row["trainer.gradient_clip_val"] for row in rows] == ["", "", "1"]  # absent = differs


def test_sort_ascending_descending_and_missing_last(sweep, capsys):
    write_run(
        sweep / "12_model.beta=9",
        ["model=vae", "model.beta=9", "model.latent_dim=2", "seed=1"],
        {},
        status="failed",
        error={"type": "RuntimeError", "message": "boom", "traceback": "..."},
    )
    write_run(
        sweep / "13_model.beta=99",
        ["model=vae", "model.beta=99", "model.latent_dim=2", "seed=1"],
        {"test/mse": math.nan},
        status="diverged",
    )
    for extra, reverse in (([], False), (["--desc"], True)):
        _, out, _ = run_cli(capsys, sweep, "--format", "csv", "--no-group", "--sort", "test/mse", *extra)
        values = [row["test/mse"] for row in read_csv(out)]
        numbers = [float(value) for value in values[:-2]]
        assert len(numbers) == 12 and numbers == sorted(numbers, reverse=reverse)
        assert sorted(values[-2:]) == ["", "nan"]  # no value (failed) and nan (diverged) go last either way


def test_seed_groups_give_mean_and_sample_std(sweep, capsys):
    code, out, _ = run_cli(capsys, sweep, "--format", "csv", "--sort", "test/elbo")
    assert code == 0
    rows = read_csv(out)
    assert len(rows) == len(BETAS) * len(LATENTS)
    assert list(rows[0]) == [
        "model.beta",
        "model.latent_dim",
        "status",
        "seeds",
        "test/mse",
        "test/mse std",
        "test/loss",
        "test/loss std",
        "test/elbo",
        "test/elbo std",
    ]
    by_job = {tuple(record["overrides"][1:3]): [] for record in records(sweep).values()}
    for record in records(sweep).values():
        by_job[tuple(record["overrides"][1:3])].append(record["metrics"])
    for row in rows:
        seeds = by_job[(f"model.beta={row['model.beta']}", f"model.latent_dim={row['model.latent_dim']}")]
        assert row["seeds"] == "3" and row["status"] == "completed"
        for metric in ("test/mse", "test/loss", "test/elbo"):
            values = [metrics[metric] for metrics in seeds]
            # statistics.stdev is the sample std (n - 1), which ae-compare reports.
            assert float(row[metric]) == pytest.approx(statistics.mean(values), rel=1e-12)
            assert float(row[f"{metric} std"]) == pytest.approx(statistics.stdev(values), rel=1e-12)
    assert [float(row["test/elbo"]) for row in rows] == sorted(float(row["test/elbo"]) for row in rows)
    _, out, _ = run_cli(capsys, sweep, "--format", "markdown")
    assert "| seeds |" in out and " ± " in out and out.count("\n") == 2 + 4


def test_failed_and_diverged_runs_show_status_and_short_error(sweep, capsys):
    message = "model.latent_dim must be a positive integer, got -4; pick a size such as 2, 8 or 32\nmore detail"
    failed = write_run(
        sweep / "12_model.latent_dim=-4",
        ["model=vae", "model.beta=1", "model.latent_dim=-4", "seed=1"],
        {},
        status="failed",
        error={"type": "ValueError", "message": message, "traceback": "Trace..."},
    )
    diverged = write_run(
        sweep / "13_model.beta=1000",
        ["model=vae", "model.beta=1000", "model.latent_dim=2", "seed=1"],
        {"test/mse": math.nan, "test/loss": math.nan, "test/elbo": math.nan},
        status="diverged",
    )
    _, out, _ = run_cli(capsys, sweep, "--format", "csv", "--no-group")
    rows = {row["run"]: row for row in read_csv(out)}
    row = rows[failed.name]
    assert row["status"] == "failed" and row["test/mse"] == ""
    assert row["error"].startswith("ValueError: model.latent_dim must be a positive integer, got -4")
    assert row["error"].endswith("…") and len(row["error"]) <= 70 and "more detail" not in row["error"]
    assert rows[diverged.name]["status"] == "diverged" and math.isnan(float(rows[diverged.name]["test/mse"]))
    assert rows["0_model.beta=1,model.latent_dim=2,seed=1"]["error"] == ""
    # Grouped, a failed seed shows in the status and does not turn the mean into nan.
    write_run(
        sweep / "14_failed_seed", ["model=vae", "model.beta=1", "model.latent_dim=2", "seed=4"], {}, status="failed"
    )
    _, out, _ = run_cli(capsys, sweep, "--format", "csv")
    (group,) = [row for row in read_csv(out) if row["model.beta"] == "1" and row["model.latent_dim"] == "2"]
    assert group["status"] == "3 completed, 1 failed" and group["seeds"] == "4"
    values = [
        read_record(sweep / f"{num}_model.beta=1,model.latent_dim=2,seed={seed}")["metrics"]["test/mse"]
        for num, seed in enumerate(SEEDS)
    ]
    assert float(group["test/mse"]) == pytest.approx(statistics.mean(values), rel=1e-12)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_writes_a_png_with_one_line_per_beta(sweep, tmp_path, capsys):
    out = tmp_path / "plots" / "elbo.png"
    code, table, err = run_cli(
        capsys, sweep, "--plot", "test/elbo", "--x", "model.latent_dim", "--lines", "model.beta", "--out", out, "--logx"
    )
    assert code == 0 and f"wrote {out}" in err and "| model.beta |" in table
    assert out.stat().st_size > 5_000 and png_size(out) == (768, 504)  # 6.4 x 4.2 inches at 120 dpi
    points = collect(load_runs(sweep), "test/elbo", "model.latent_dim", "model.beta")
    assert sorted(points) == list(BETAS) and sorted(points["4"]) == list(LATENTS)
    expected = [
        read_record(sweep / f"{9 + i}_model.beta=4,model.latent_dim=8,seed={seed}")["metrics"]["test/elbo"]
        for i, seed in enumerate(SEEDS)
    ]
    assert points["4"]["8"] == expected


def test_plot_with_categorical_x_and_default_name(tmp_path, capsys, monkeypatch):
    for num, model in enumerate(("mlp", "conv", "vae")):
        write_run(tmp_path / "runs" / f"{num}_model={model}", [f"model={model}"], {"test/mse": 0.01 * (num + 1)})
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, tmp_path / "runs", "--plot", "test/mse", "--x", "model")
    assert code == 0 and png_size(tmp_path / "test_mse_vs_model.png")[0] > 0
    code, _, err = run_cli(capsys, tmp_path / "runs", "--plot", "test/mse", "--x", "model", "--logx")
    assert code == 2 and "--logx needs numeric values" in err


def test_missing_or_empty_directory_exits_1(tmp_path, capsys):
    code, out, err = run_cli(capsys, tmp_path / "nowhere")
    assert code == 1 and out == "" and err.strip() == f"ae-compare: {tmp_path / 'nowhere'} is not a directory"
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    code, out, err = run_cli(capsys, tmp_path / "empty")
    assert code == 1 and out == "" and err.strip() == f"ae-compare: no metrics.json found under {tmp_path / 'empty'}"


def test_corrupt_metrics_are_skipped_with_a_warning(sweep, capsys):
    broken = {
        "truncated": '{"status": "completed", "metrics": {"test/mse": 0.0',
        "list": "[1, 2]",
        "text_metric": json.dumps({"status": "completed", "metrics": {"test/mse": "low"}, "overrides": []}),
        "binary": "\udcff",
        "newer": json.dumps(
            {"schema_version": 99, "status": "completed", "metrics": {"test/mse": 0.1}, "overrides": []}
        ),
    }
    for name, text in broken.items():
        (sweep / name).mkdir()
        (sweep / name / "metrics.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    code, out, err = run_cli(capsys, sweep, "--format", "csv", "--no-group")
    assert code == 0 and len(read_csv(out)) == 12
    warnings = err.strip().splitlines()
    assert len(warnings) == len(broken)
    for name in broken:
        assert any(line.startswith(f"warning: skipping {sweep / name / 'metrics.json'}: ") for line in warnings)
    code, out, err = run_cli(capsys, sweep / "truncated")
    assert code == 1 and out == "" and "no readable metrics.json" in err


@pytest.mark.parametrize("option", ["--sort", "--plot", "--metrics"])
def test_unknown_metric_exits_2_listing_available(sweep, capsys, option):
    extra = ["--x", "model.beta"] if option == "--plot" else []
    code, out, err = run_cli(capsys, sweep, option, "test/mse_typo", *extra)
    assert code == 2 and out == ""
    assert err.strip() == (
        f"ae-compare: error: unknown metric 'test/mse_typo' for {option}; "
        "available metrics: test/elbo, test/loss, test/mse, val/loss"
    )


def test_unknown_plot_key_and_misused_plot_options_exit_2(sweep, capsys):
    code, _, err = run_cli(capsys, sweep, "--plot", "test/mse", "--x", "model.lat")
    assert code == 2 and "unknown override key 'model.lat' for --x" in err and "model.latent_dim" in err
    for argv in (["--plot", "test/mse"], ["--x", "model.beta"]):
        with pytest.raises(SystemExit) as stopped:
            main([str(sweep), *argv])
        assert stopped.value.code == 2


def test_installed_script_is_light(sweep):
    """--help and a table need neither torch nor matplotlib (both take seconds to import)."""
    done = subprocess.run([BIN / "ae-compare", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--no-group" in done.stdout
    check = (
        "import sys; from autoencoders.cli.compare import main; main([sys.argv[1], '--format', 'csv']); "
        "assert not {'torch', 'matplotlib'} & set(sys.modules), sorted(sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", check, str(sweep)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_real_sweep_table_matches_its_runs(tmp_path, monkeypatch):
    from tests.helpers import ae_train_here

    args = [
        "-m",
        "data=synthetic",
        "trainer=fast",
        "torch_threads=1",
        "model.latent_dim=2,3",
        f"output_root={tmp_path}",
    ]
    done = ae_train_here(*args, cwd=tmp_path, monkeypatch=monkeypatch)  # the sweep in-process; ae-compare as installed
    assert done.returncode == 0, done.stderr[-2000:]
    done = subprocess.run(
        [BIN / "ae-compare", tmp_path / "sweeps", "--format", "csv"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    rows = read_csv(done.stdout)
    assert [row["model.latent_dim"] for row in rows] == ["2", "3"] and list(rows[0])[:2] == ["run", "model.latent_dim"]
    for row in rows:
        record = read_record(tmp_path / "sweeps" / row["run"])
        assert row["status"] == record["status"] == "completed"
        assert float(row["test/mse"]) == record["metrics"]["test/mse"]
    # --images on real runs: every run has its reconstructions drawn after testing (no note about
    # falling back to an earlier image), and reading event files and drawing need no torch.
    check = (
        "import sys; from autoencoders.cli.compare import main; code = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(code)"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            check,
            str(tmp_path / "sweeps"),
            "--images",
            "reconstructions",
            "--out",
            str(tmp_path / "grid.png"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == f"wrote {tmp_path / 'grid.png'}" and png_size(tmp_path / "grid.png")[0] > 400


def test_a_resumed_job_shows_what_its_resume_changed(tmp_path, capsys):
    root = tmp_path / "sweep"
    for latent in ("2", "3"):
        write_run(
            root / f"{latent}_model.latent_dim={latent}",
            [f"model.latent_dim={latent}", "trainer.max_epochs=1"],
            {"test/mse": 0.05},
        )
    for name in ("2_model.latent_dim=2", "3_model.latent_dim=3"):
        record = read_record(root / name)
        record["last"] = {"epoch": 0, "step": 14, "metrics": {}}
        # latent 3 was extended by a resume that completed, and tried again by one that failed
        if name.startswith("3"):
            record["last"]["epoch"] = 2
            record["resumes"] = [
                {"overrides": ["trainer.max_epochs=3"], "status": "completed"},
                {"overrides": ["trainer.max_epochs=9"], "status": "failed"},
            ]
        write_json_atomic(root / name / "metrics.json", record)
    code, out, _ = run_cli(capsys, root, "--format", "csv")
    rows = {row["run"]: row for row in read_csv(out)}
    assert code == 0 and rows["3_model.latent_dim=3"]["trainer.max_epochs"] == "3"  # not the folder's 1
    assert rows["2_model.latent_dim=2"]["trainer.max_epochs"] == "1"
    assert (rows["2_model.latent_dim=2"]["epochs"], rows["3_model.latent_dim=3"]["epochs"]) == ("1", "3")


def test_plot_of_a_metric_against_a_metric_has_one_point_per_seed_group(tmp_path, capsys, monkeypatch):
    from autoencoders.compare.plot import seed_groups

    runs_dir = tmp_path / "sweep"
    for num, (model, beta, seed) in enumerate([(m, b, s) for m in ("vae", "tcvae") for b in (1, 4) for s in (0, 1)]):
        metrics = {"test/mse": 0.01 * beta + 0.001 * seed, "test/mig": 0.05 * beta + 0.01 * seed}
        write_run(runs_dir / f"{num}_run", [f"model={model}", f"model.beta={beta}", f"seed={seed}"], metrics)
    groups = seed_groups(load_runs(runs_dir), "test/mig", "test/mse")
    assert len(groups) == 4 and all(len(members) == 2 for members in groups.values())
    assert sorted(dict(key)["model.beta"] for key in groups) == ["1", "1", "4", "4"]
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, runs_dir, "--plot", "test/mig", "--x", "test/mse")
    assert code == 0 and png_size(tmp_path / "test_mig_vs_test_mse.png") == (768, 552)
    code, _, err = run_cli(capsys, runs_dir, "--plot", "test/mig", "--x", "test/nope")
    assert code == 2 and "unknown metric 'test/nope' for --x" in err


def test_runs_scored_with_another_reference_network_are_flagged(tmp_path, capsys):
    import json

    used = {"sample_quality": {"images": 2000, "k": 3, "reference_hash": "aaa", "seconds": 3.0}}
    for num, (reference, seconds) in enumerate([("aaa", 3.0), ("aaa", 9.0), ("bbb", 3.0)]):
        run = write_run(tmp_path / "sweep" / f"{num}_run", [f"seed={num}"], {"test/fd": 1.0 + num})
        record = json.loads((run / "metrics.json").read_text())
        record["evaluation"] = {
            "sample_quality": {**used["sample_quality"], "reference_hash": reference, "seconds": seconds}
        }
        write_json_atomic(run / "metrics.json", record)
    code, _, err = run_cli(capsys, tmp_path / "sweep")
    assert code == 0 and "note: 1 run(s) were scored with other evaluation settings" in err
    assert err.count("2_run") == 1 and "1_run" not in err  # timings alone do not count
    (tmp_path / "sweep" / "2_run" / "metrics.json").unlink()
    code, _, err = run_cli(capsys, tmp_path / "sweep")
    assert code == 0 and "note:" not in err
