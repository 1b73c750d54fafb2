"""A run of the user's own code (their model class, callback and logger) opens with the user's
allowance for the command, never with one the run itself carries (rundir/trust.py)."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from autoencoders.cli.evaluate import main as ae_eval_main
from autoencoders.cli.predict import main as ae_predict_main
from autoencoders.errors import UntrustedCode
from autoencoders.rundir.loading import load_run
from autoencoders.rundir.record import read_record
from tests.helpers import ae_train_here, digest, sigterm_after_epoch

MODULE = "mylab_own"
QUIET = [
    "model.lr_schedule=constant",
    "logging.images_every_n_epochs=0",
    "logging.projector_points=0",
    "eval.probe=false",
    "eval.nll_samples=0",
]


@pytest.fixture
def own_code(tmp_path, monkeypatch) -> list[str]:
    """The user's module on the path: a model (the plain autoencoder under another name), a callback
    writing the epoch it ended at, a logger (the CSV one, made by their factory); and the overrides
    of a run that uses all three."""
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / f"{MODULE}.py").write_text(
        textwrap.dedent(
            """
            from pathlib import Path

            from lightning.pytorch.callbacks import Callback

            from autoencoders.models.autoencoder import Autoencoder
            from autoencoders.views.loggers import csv


            class MyAutoencoder(Autoencoder):
                pass


            class Marker(Callback):
                def __init__(self, path):
                    self.path = path

                def on_train_end(self, trainer, pl_module):  # the epochs trained so far
                    Path(self.path).write_text(str(trainer.current_epoch))


            def my_csv(context):
                return csv(context)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path / "lab"))
    monkeypatch.delenv("AE_TRUST", raising=False)
    return [
        f"model._target_={MODULE}.MyAutoencoder",
        f"+callbacks.marker._target_={MODULE}.Marker",
        f"+callbacks.marker.path={tmp_path / 'marker.txt'}",
        f"+logger.mine._target_={MODULE}.my_csv",
    ]


def csv_steps(run: Path) -> list[int]:
    with (run / "csv" / "metrics.csv").open(newline="") as file:
        return [int(row["step"]) for row in csv.DictReader(file)]


def test_the_users_allowance_opens_their_run_and_the_run_cannot_grant_it(
    own_code, tiny_cfg, tmp_path, capsys, monkeypatch
):
    from autoencoders.training.pipeline import train

    run, marker = tmp_path / "run", tmp_path / "marker.txt"
    train(tiny_cfg(*own_code, *QUIET), run_dir=run)  # a new run is the user's own command: not restricted
    assert marker.read_text() == "1" and (run / "csv" / "metrics.csv").is_file()
    with pytest.raises(UntrustedCode, match=f"'{MODULE}.MyAutoencoder' as model._target_"):
        load_run(run)
    assert type(load_run(run, trust=[MODULE])).__name__ == "MyAutoencoder"
    monkeypatch.setenv("AE_TRUST", MODULE)
    assert type(load_run(run)).__name__ == "MyAutoencoder"
    monkeypatch.delenv("AE_TRUST")

    ae_eval_main([str(run), "--trust", MODULE])
    assert "test/mse" in read_record(run)["eval"]["metrics"]
    ae_predict_main([str(run), "--split", "test", "--trust", MODULE, "--out", str(tmp_path / "codes.npz")])
    with np.load(tmp_path / "codes.npz", allow_pickle=False) as arrays:
        assert arrays["codes"].shape == (len(arrays["names"]), OmegaConf.load(run / "config.yaml").model.latent_dim)

    steps_before = csv_steps(run)
    before = {name: value for name, value in digest(run).items() if name != ".lock"}
    refused = ae_train_here(f"resume={run}", "trainer.max_epochs=2", monkeypatch=monkeypatch)
    assert refused.returncode == 1 and f"'{MODULE}.MyAutoencoder' as model._target_" in refused.stderr
    assert {name: value for name, value in digest(run).items() if name != ".lock"} == before

    done = ae_train_here(f"resume={run}", "trainer.max_epochs=2", f"trust=[{MODULE}]", monkeypatch=monkeypatch)
    assert done.returncode == 0, done.stderr[-3000:]
    record = read_record(run)
    assert record["status"] == "completed" and marker.read_text() == "2"  # their callback ran in the resume
    assert csv_steps(run) and max(csv_steps(run)) > max(steps_before)  # their logger logged the resume too
    # The allowance was this command's: not an override (the command line is kept as typed, as
    # provenance, and never replayed), not in the config, so the next resume asks again.
    assert record["resumes"][-1]["overrides"] == ["trainer.max_epochs=2"]
    assert record["resumes"][-1]["command"].endswith(f"trust=[{MODULE}]")
    assert "trust" not in record["config"]["resolved"] and "trust" not in OmegaConf.load(run / "config.yaml")
    again = ae_train_here(f"resume={run}", "trainer.max_epochs=3", monkeypatch=monkeypatch)
    assert again.returncode == 1 and f"trust=[{MODULE}]" in again.stderr


def test_a_rerun_of_the_same_command_resumes_its_own_run_with_its_own_code(own_code, tmp_path, monkeypatch):
    # A sweep re-run continues an interrupted job: the classes of the command it composes are its own.
    from autoencoders.models.autoencoder import Autoencoder

    run = tmp_path / "rerun"
    args = ["data=synthetic", "trainer=fast", "trainer.max_epochs=2", "torch_threads=1", *QUIET, *own_code]
    args.append(f"hydra.run.dir={run}")
    with monkeypatch.context() as patched:
        sigterm_after_epoch(patched, Autoencoder, 0)
        stopped = ae_train_here(*args, monkeypatch=monkeypatch, cwd=tmp_path)
    assert stopped.returncode == 143 and read_record(run)["status"] == "interrupted", stopped.stderr[-3000:]
    done = ae_train_here(*args, monkeypatch=monkeypatch, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert read_record(run)["status"] == "completed" and (tmp_path / "marker.txt").read_text() == "2"
    assert Path(run / "checkpoints" / "last.ckpt").is_file()
