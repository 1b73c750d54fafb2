"""Several processes per run (Lightning's DDP on CPU with gloo): each image counted once, one
record, the main process alone writing, signals reaching every process, resume."""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from autoencoders.data import ImageDataModule
from autoencoders.rundir.checkpoints import load_checkpoint
from autoencoders.rundir.loading import load_run
from autoencoders.rundir.record import read_record
from tests.helpers import BIN, ae_train, free_port, only_run, run_dirs, signal_when, start_ae_train

QUIET = ["logging.projector_points=0", "logging.images_every_n_epochs=0", "eval.nll_samples=0"]
LAYOUT = {".hydra", ".lock", "checkpoints", "config.yaml", "metrics.json", "train.log", "hparams.yaml"}


def run_files(run: Path) -> set[str]:
    """The top-level names of a run directory, event files as one."""
    return {"events" if path.name.startswith("events.out.tfevents.") else path.name for path in run.iterdir()}


@pytest.mark.slow
def test_two_processes_on_fashionmnist_count_every_image_once(tmp_path):
    # 4,999 validation images: the two shards differ (2,500 and 2,499), so a mean of the two
    # processes' means would not be the mean over the split; the record's must be.
    args = [
        "trainer=ddp",
        "model=vae",
        "model.latent_dim=4",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=4",
        "data.val_size=4999",
        "trainer.enable_progress_bar=false",
        *QUIET,
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    done = ae_train(*args, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "run"
    record = read_record(run)
    assert record["status"] == "completed"
    assert record["processes"] == {"count": 2, "batch_per_process": 256, "global_batch": 512}
    # Once, by the main process: the record, the table, the probe; nothing outside the run's layout.
    assert done.stderr.count("Final metrics") == 1 and done.stderr.count("Linear probe") == 1
    assert run_files(run) == LAYOUT | {"events"} and sorted(path.name for path in tmp_path.iterdir()) == ["run"]
    # test/* equal a single-process evaluation of the tested checkpoint.
    evaluated = ae_train_eval(run)
    for name in ("test/mse", "test/loss", "test/active_units"):
        assert record["metrics"][name] == pytest.approx(evaluated[name], rel=1e-5, abs=1e-6), name
    # val/mse of the tested checkpoint, by hand over all 4,999 validation images.
    data = ImageDataModule(name="fashionmnist", val_size=4999)
    data.setup()
    model = load_run(run)
    x = data.pixels("val")[0]
    with torch.no_grad():
        mse = torch.cat([(model.reconstruct(chunk) - chunk).pow(2).flatten(1).sum(1) for chunk in x.split(1000)]).sum()
    assert record["metrics"]["val/mse"] == pytest.approx(float(mse) / x.numel(), rel=1e-5)


def ae_train_eval(run: Path) -> dict[str, float]:
    from autoencoders.cli.evaluate import main as ae_eval_main

    ae_eval_main([str(run), "eval.probe=false"])  # one process: what the DDP run must equal
    return read_record(run)["eval"]["metrics"]


@pytest.mark.slow
def test_a_sweep_of_ddp_jobs_keeps_each_jobs_processes_in_its_directory(tmp_path):
    sweep = tmp_path / "sweep"
    done = ae_train(
        "-m",
        "trainer=ddp",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "data=synthetic",
        "model.latent_dim=2,3",
        *QUIET,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = run_dirs(sweep)
    assert [run.name.split("_")[0] for run in runs] == ["0", "1"]
    for run in runs:
        assert read_record(run)["status"] == "completed" and read_record(run)["processes"]["count"] == 2
        assert run_files(run) == LAYOUT | {"events"}, run
    assert {path.name for path in sweep.iterdir()} == {run.name for run in runs} | {"multirun.yaml"}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["sweep"]  # no sweep of the workers' own


@pytest.mark.slow
def test_sigterm_reaches_every_process_and_the_run_resumes_under_ddp(tmp_path):
    args = [
        "trainer=ddp",
        "data=synthetic",
        "data.batch_size=8",
        "trainer.max_epochs=40",
        "trainer.log_every_n_steps=5",
        "trainer.enable_progress_bar=false",
        *QUIET,
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    process = start_ae_train(*args, cwd=tmp_path)
    _, stderr = signal_when(process, (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file, signal.SIGTERM)
    assert process.returncode == 143, stderr[-3000:]
    run = only_run(tmp_path)
    assert read_record(run)["status"] == "interrupted"
    stopped = load_checkpoint(run / "checkpoints" / "interrupted.ckpt")
    # Both stopped at a step they agree on: every log_every_n_steps (5) steps, or the start of an
    # epoch (448 training images over 2 processes in batches of 8: 28 steps an epoch). Which one
    # depends on when the signal lands, so both are accepted.
    steps_per_epoch = (512 - 64) // 2 // 8
    assert stopped["global_step"] > 0
    assert stopped["global_step"] % 5 == 0 or stopped["global_step"] % steps_per_epoch == 0, stopped["global_step"]
    assert "DDP worker" not in stderr  # the worker stopped with the signal, not with a failure
    done = ae_train(f"resume={run}", "trainer.max_epochs=3", cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    record = read_record(run)
    assert record["status"] == "completed" and record["processes"]["count"] == 2
    assert record["resumes"][0]["checkpoint"] == "checkpoints/interrupted.ckpt"
    assert json.loads((run / ".lock").read_text())["command"].startswith("ae-train resume=")


@pytest.mark.slow
def test_processes_a_cluster_starts_follow_the_main_process(tmp_path):
    # torchrun starts every process itself, as srun does on Slurm: the main process (rank 0) holds
    # the run and announces its plan; the other one waits for it, then trains its shard.
    command = [
        str(BIN / "torchrun"),
        "--nproc-per-node=2",
        "--master-addr=127.0.0.1",
        f"--master-port={free_port()}",
        "-m",
        "autoencoders.cli.train",
        "trainer=ddp",
        "data=synthetic",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        *QUIET,
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    record = read_record(tmp_path / "run")
    assert record["status"] == "completed" and record["processes"]["count"] == 2
    assert done.stderr.count("Final metrics") == 1 and run_files(tmp_path / "run") == LAYOUT | {"events"}
    assert json.loads((tmp_path / "run" / ".lock").read_text())["decision"]["job"].startswith("torchrun-")


@pytest.mark.slow
def test_the_processes_of_a_run_on_one_machine_listen_on_loopback_only(tiny_cfg, tmp_path, monkeypatch):
    # torch's own rendezvous store listens on every interface, whatever address it is given; the
    # run's rank 0 serves it on loopback, and gloo's sockets stay there too. The probe is a user's
    # `_target_`: the worker, reading the run's config back, may import it (the main process's own).
    import ipaddress

    from autoencoders.training.pipeline import train

    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))  # the worker imports tests.*
    monkeypatch.delenv("GLOO_SOCKET_IFNAME", raising=False)
    cfg = tiny_cfg(
        "trainer=ddp",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        *QUIET,
        "+callbacks.probe._target_=tests.distributed.probes.ListeningProbe",
        f"+callbacks.probe.folder={tmp_path}",
    )
    train(cfg, run_dir=tmp_path / "run")
    record = read_record(tmp_path / "run")
    assert record["status"] == "completed" and record["processes"]["count"] == 2
    listening = {rank: json.loads((tmp_path / f"listening.{rank}.json").read_text()) for rank in (0, 1)}
    assert len(listening[0]) >= 2, listening  # rank 0: the store and gloo's own socket
    for rank, sockets in listening.items():
        for address, port in sockets:
            assert ipaddress.ip_address(address).is_loopback, (rank, address, port)
    assert "GLOO_SOCKET_IFNAME" not in os.environ  # this process's environment is as it was


def test_only_a_loopback_address_is_served_on_loopback():
    # Any other address is one the user named (several nodes): torch then listens as it does.
    from autoencoders.distributed.ddp import on_loopback

    assert all(on_loopback(address) for address in ("127.0.0.1", "localhost", "::1", "127.0.1.1"))
    assert not any(on_loopback(address) for address in ("10.0.0.5", "node7", "0.0.0.0", "::"))
