"""Networks in whole runs: a network of your own trains, reloads and predicts; shipped families by
name keep working; a sweep over model/net lands in flat job folders that ae-compare tells apart."""

from __future__ import annotations

import csv
import io
import json
import sys
import textwrap

import numpy as np
import pytest
import torch

from autoencoders import load_run
from autoencoders.errors import ConfigError, UntrustedCode
from autoencoders.rundir.record import read_record
from autoencoders.training.pipeline import train
from tests.conftest import FAST
from tests.helpers import ae_train_here

QUIET = ["logging.images_every_n_epochs=0", "logging.projector_points=0", "eval.nll_samples=0", "eval.probe=false"]
# A network of one's own, as docs/models.md shows it: a module on the user's path, not in the package.
USER_MODULE = textwrap.dedent(
    """
    import math
    import torch
    from torch import nn


    class Encoder(nn.Module):
        def __init__(self, input_shape, out_dim, condition_dim=0, width=32):
            super().__init__()
            self.layers = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), width), nn.Tanh(), nn.Linear(width, out_dim))

        def forward(self, x):
            return self.layers(x)


    class Decoder(nn.Module):
        def __init__(self, input_shape, latent_dim, width=32):
            super().__init__()
            self.input_shape = tuple(input_shape)
            self.layers = nn.Sequential(nn.Linear(latent_dim, width), nn.Tanh(), nn.Linear(width, math.prod(input_shape)), nn.Sigmoid())

        def forward(self, z):
            return self.layers(z).view(-1, *self.input_shape)
    """
)
OWN_NET = "+model.net={_target_: my_nets.Encoder, width: 24, decoder: {_target_: my_nets.Decoder}}"


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    folder = tmp_path / "user_code"
    folder.mkdir()
    (folder / "my_nets.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    sys.modules.pop("my_nets", None)


def test_a_network_of_your_own_trains_reloads_and_predicts(tiny_cfg, tmp_path, user_module, monkeypatch):
    from autoencoders.cli.evaluate import main as ae_eval
    from autoencoders.cli.predict import main as ae_predict
    from autoencoders.training.pipeline import resume_training

    run = tmp_path / "run"
    metrics = train(tiny_cfg("model=vae", "~model/net", OWN_NET, "model.latent_dim=3", *QUIET), run_dir=run)
    record = read_record(run)
    assert record["status"] == "completed" and np.isfinite(metrics["test/mse"])
    # The record names the class and its size: 784*24 + 24*6 weights out, 3*24 + 24*784 back, plus biases.
    assert record["model"]["network"] == "my_nets.Encoder"
    assert record["model"]["multiply_adds"] == 784 * 24 + 24 * 6 + 3 * 24 + 24 * 784
    assert record["model"]["encoder_parameters"] == 784 * 24 + 24 + 24 * 6 + 6
    # Reopening runs the network's own code, so it is the user's to allow (rundir/trust.py).
    with pytest.raises(UntrustedCode, match=r"'my_nets.Encoder' as model.net._target_"):
        load_run(run)
    model = load_run(run, trust=["my_nets"])
    assert type(model.encoder).__module__ == "my_nets" and model.encoder.layers[1].out_features == 24
    saved = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(value, model.state_dict()[key]) for key, value in saved.items())
    images = np.random.default_rng(0).random((5, 28, 28)).astype(np.float32)
    np.savez(tmp_path / "new.npz", images=images)
    ae_predict(
        [
            str(run),
            str(tmp_path / "new.npz"),
            "--trust",
            "my_nets",
            "--what",
            "codes",
            "--out",
            str(tmp_path / "codes.npz"),
        ]
    )
    with torch.no_grad():
        expected = model.encode(torch.from_numpy(images)[:, None])
    assert np.allclose(np.load(tmp_path / "codes.npz")["codes"], expected.numpy(), atol=1e-6)
    ae_eval([str(run), "--trust", "my_nets"])  # re-tested with the same network: the same number
    assert read_record(run)["eval"]["metrics"]["test/mse"] == pytest.approx(metrics["test/mse"], rel=1e-6)
    monkeypatch.setenv("AE_TRUST", "my_nets")
    resumed = resume_training(run, ["trainer.max_epochs=2"])
    assert read_record(run)["status"] == "completed" and np.isfinite(resumed["test/mse"])
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    # Reopened where the module cannot be imported: a clear error, never a silent default network.
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry != str(user_module)])
    sys.modules.pop("my_nets", None)
    with pytest.raises(
        ConfigError, match=r"model.net._target_=my_nets.Encoder: cannot import its module 'my_nets'.*PYTHONPATH"
    ):
        load_run(run)


def test_a_network_yaml_of_your_own_on_the_search_path(tmp_path, user_module, monkeypatch):
    # The reproducible way: the network's config in a file of the user's own config folder.
    folder = tmp_path / "my_conf" / "model" / "net"
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text("_target_: my_nets.Encoder\nwidth: 20\ndecoder:\n  _target_: my_nets.Decoder\n")
    done = ae_train_here(
        f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]",
        "model=mlp",
        "model/net=mine",
        "data=synthetic",
        *FAST,
        *QUIET,
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        monkeypatch=monkeypatch,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert read_record(tmp_path / "run")["model"]["network"] == "my_nets.Encoder"
    assert load_run(tmp_path / "run", trust=["my_nets"]).encoder.layers[1].out_features == 20


def test_a_network_of_the_wrong_shape_stops_before_training(tmp_path, monkeypatch):
    wrong = "+model.net={_target_: tests.nets.user_nets.TinyEncoder, extra_outputs: 2, decoder: {_target_: tests.nets.user_nets.TinyDecoder}}"
    done = ae_train_here(
        "model=mlp",
        "~model/net",
        wrong,
        "data=synthetic",
        *FAST,
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        monkeypatch=monkeypatch,
    )
    assert done.returncode == 1
    message = done.stderr.strip().splitlines()[-1]  # after the data's log line: one paragraph
    assert "Traceback" not in done.stderr and "[ERROR] - model.net: the encoder" in message
    assert (
        "model.net: the encoder turned images of shape (2, 1, 28, 28) into (2, 34); the model needs (2, 32)" in message
    )
    assert not list((tmp_path / "run").rglob("*.ckpt"))  # no step was trained
    assert read_record(tmp_path / "run")["status"] == "failed"


def test_a_network_chosen_by_name_is_the_family_at_its_defaults(tiny_cfg, tmp_path):
    # model.net=conv (a string, as old runs' config.yaml hold it) and model/net=conv build one network.
    by_name = train(tiny_cfg("model=mlp", "model.net=conv", *QUIET), run_dir=tmp_path / "name")
    by_group = train(tiny_cfg("model=mlp", "model/net=conv", *QUIET), run_dir=tmp_path / "group")
    assert by_name == by_group
    assert read_record(tmp_path / "name")["model"]["network"] == "conv"
    assert read_record(tmp_path / "name")["model"]["parameters"] == 111_649


def test_a_sweep_over_networks_lands_in_flat_job_folders(tmp_path, monkeypatch, capsys):
    from autoencoders.cli.compare import main as ae_compare

    sweep = tmp_path / "sweep"
    done = ae_train_here(
        "-m",
        "model=mlp",
        "model/net=mlp,conv",
        "data=synthetic",
        *FAST,
        *QUIET,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        monkeypatch=monkeypatch,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    jobs = sorted(path.parent.relative_to(sweep).as_posix() for path in sweep.rglob("metrics.json"))
    assert len(jobs) == 2 and all("/" not in job for job in jobs)
    assert [job.split("_", 1)[0] for job in jobs] == ["0", "1"] and all("model.net=" in job for job in jobs)
    capsys.readouterr()
    assert ae_compare([str(sweep), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sorted(row["model.net"] for row in rows) == ["conv", "mlp"]
    sizes = {row["model.net"]: float(row["model/parameters"]) for row in rows}
    assert sizes == {"mlp": 439_728, "conv": 111_649}
    assert all(float(row["model/multiply_adds"]) > 0 for row in rows)
    assert json.loads((sweep / jobs[1] / "metrics.json").read_text())["overrides"][1] == "model/net=conv"
