"""ae-predict's command line: a light --help, the latent-dataset recipe through the installed
script, and errors as one paragraph with exit code 1 (2 for a bad option)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from autoencoders.cli import predict as cli
from autoencoders.evaluation.predict import DEFAULT_WHAT, WHAT
from autoencoders.rundir.record import read_record
from tests.helpers import BIN, digest

AE_PREDICT = str(BIN / "ae-predict")


def test_help_and_parsing_import_no_torch():
    done = subprocess.run([AE_PREDICT, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--split" in done.stdout and "--resize" in done.stdout
    check = (
        "import sys; from autoencoders.cli.predict import parse_args; parse_args(['run', 'images/', '--out', 'x.npz']); "
        "assert 'torch' not in sys.modules, sorted(sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # The help text names the arrays the library writes (kept as text there so --help stays light).
    assert ",".join(WHAT) == cli.WHAT and cli.parse_args(["run", "x", "--out", "o.npz"]).what == ",".join(DEFAULT_WHAT)


def test_the_latent_dataset_recipe_through_the_installed_script(finished_run, tmp_path):
    out = tmp_path / "latents.npz"
    done = subprocess.run(
        [AE_PREDICT, str(finished_run), "--split", "train", "--what", "codes", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    train_size = read_record(finished_run)["data"]["train"]
    with np.load(out, allow_pickle=False) as latents:
        assert sorted(latents.files) == ["codes", "labels", "names"]
        assert latents["codes"].shape == (train_size, 4) and latents["labels"].shape == (train_size,)
        assert 3 not in latents["labels"]  # the held-out class stays out of train, as in training
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["input"].startswith("the run's train split") and sidecar["epoch"] == 0
    assert f"{train_size} images" in done.stdout and "codes (" in done.stdout


def test_errors_are_one_paragraph_exit_1_and_write_nothing(finished_run, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    (tmp_path / "empty").mkdir()
    before, out = digest(finished_run), str(tmp_path / "p.npz")
    cases = [
        ([str(finished_run), str(tmp_path / "empty"), "--out", out], "holds no PNG or JPEG images"),
        ([str(finished_run), "--split", "test", "--out", out, "--what", "code"], "unknown code"),
        ([str(tmp_path), "--split", "test", "--out", out], "is not a run directory"),
        ([str(finished_run), "--split", "val", "--out", out, "--chunk-size", "0"], "--chunk-size 0 is not allowed"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as stopped:
            cli.main(argv)
        stderr = capsys.readouterr().err
        assert stopped.value.code == 1 and message in stderr and "Traceback" not in stderr, (argv, stderr)
        assert stderr.strip().startswith("ae-predict:") and stderr.strip().count("\n") == 0  # one paragraph
    for argv in ([str(finished_run), "--out", out], [str(finished_run), "x", "--split", "test", "--out", out]):
        with pytest.raises(SystemExit) as stopped:
            cli.main(argv)
        assert stopped.value.code == 2 and "exactly one of INPUT, --split or --decode" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["empty", "run"] and digest(finished_run) == before
