"""Where ae-predict may write: never over a file it reads (the input, the checkpoint, the run's
record or config, by any path or link), only where it can write (checked before any model
work), and a full disk says what to do for a prediction, not for a training run."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest

from autoencoders.cli import predict as cli
from autoencoders.errors import ConfigError
from autoencoders.evaluation import inputs as inputs_module
from autoencoders.evaluation import predict as predict_module
from autoencoders.evaluation.predict import decode, predict
from tests.evaluation.test_predict import split_tensors, train_run
from tests.helpers import digest


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return train_run(tmp_path_factory.mktemp("mlp"), "eval.probe=false")


@pytest.fixture
def no_model_work(monkeypatch):
    monkeypatch.setattr(
        predict_module, "load_model", lambda *args: pytest.fail("the model was loaded before the check")
    )


def images_file(run: Path, path: Path) -> Path:
    images = (split_tensors(run)[0][:5, 0] * 255).round().byte().numpy()  # data=npz: N × H × W uint8
    np.savez(path, images=images)
    return path


def test_an_output_that_is_a_file_the_command_reads_is_refused_before_any_model_work(run, tmp_path, no_model_work):
    source = images_file(run, tmp_path / "in.npz")
    codes = tmp_path / "codes.npz"
    np.savez(codes, codes=np.zeros((3, 32), dtype=np.float32))
    (tmp_path / "hard.npz").hardlink_to(source)
    (tmp_path / "soft.npz").symlink_to(source)
    (tmp_path / "sub").mkdir()
    before, run_before = {path: path.read_bytes() for path in (source, codes)}, digest(run)
    cases = [
        (lambda: predict(run, source, out=source), rf"--out {source} would overwrite {source}, which this command"),
        (lambda: predict(run, source, out=tmp_path / "sub" / ".." / "in.npz"), r"in.npz is the same file"),
        (lambda: predict(run, source, out=tmp_path / "hard.npz"), r"hard.npz is the same file"),  # a hard link
        (lambda: predict(run, source, out=tmp_path / "soft.npz"), r"soft.npz is the same file"),  # a symbolic one
        (lambda: predict(run, tmp_path / "soft.npz", out=source), r"would overwrite .*soft.npz"),
        (lambda: decode(run, codes, out=codes), rf"would overwrite {codes}"),
        # Its sidecar, metrics.json, would replace the run's record.
        (lambda: predict(run, split="test", out=run / "metrics.npz"), rf"would overwrite {run / 'metrics.json'}"),
    ]
    for call, message in cases:
        with pytest.raises(ConfigError, match=message):
            call()
    assert {path: path.read_bytes() for path in before} == before and digest(run) == run_before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["codes.npz", "hard.npz", "in.npz", "soft.npz", "sub"]


def test_an_out_that_cannot_be_written_is_refused_before_any_model_work(run, tmp_path, no_model_work, monkeypatch):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    with pytest.raises(ConfigError, match=rf"--out .*p.npz cannot be written: {tmp_path / 'notes.txt'} is a file"):
        predict(run, split="test", out=tmp_path / "notes.txt" / "deeper" / "p.npz")
    # Permission bits do not stop root, who runs these tests: os.access is what the check asks.
    monkeypatch.setattr(inputs_module.os, "access", lambda path, mode: Path(path) != tmp_path / "locked")
    (tmp_path / "locked").mkdir()
    with pytest.raises(ConfigError, match=r"locked is a folder you cannot write to\. Nothing was computed"):
        predict(run, split="test", out=tmp_path / "locked" / "new" / "p.npz")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["locked", "notes.txt"]
    assert list((tmp_path / "locked").iterdir()) == []


def test_a_missing_folder_of_out_is_created(run, tmp_path):
    out = tmp_path / "new" / "deeper" / "p.npz"
    predict(run, split="val", out=out, what="errors")
    assert out.is_file() and out.with_suffix(".json").is_file()


def test_the_command_line_says_so_in_one_paragraph(run, tmp_path, capsys, monkeypatch, no_model_work):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    source = images_file(run, tmp_path / "in.npz")
    capsys.readouterr()  # what reading the run's data logged
    with pytest.raises(SystemExit) as exited:
        cli.main([str(run), str(source), "--out", str(source)])
    error = capsys.readouterr().err
    assert exited.value.code == 1 and error.count("\n") == 1 and "would overwrite" in error and "Traceback" not in error


def test_a_full_disk_tells_what_to_do_for_a_prediction(run, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def full_disk(handle, **arrays):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(SystemExit) as exited:
        cli.main([str(run), "--split", "val", "--out", str(tmp_path / "p.npz")])
    error = capsys.readouterr().err
    assert exited.value.code == 1 and f"No space left on device while writing {tmp_path / 'p.npz'}" in error
    assert "choose an --out on another disk" in error and "resume" not in error
    assert list(tmp_path.iterdir()) == []
