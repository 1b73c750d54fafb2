"""Sweeps on clusters: a real local Ray head on 127.0.0.1, and the Slurm job a DDP sweep point becomes."""

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from autoencoders.distributed.torch_setup import threads_per_job
from autoencoders.rundir.record import read_record
from tests.helpers import BIN, ae_train, free_port, run_dirs

TINY = ["data=synthetic", "trainer=fast", "logging.projector_points=0", "logging.images_every_n_epochs=0"]


TOKEN = secrets.token_hex(16)


@pytest.fixture
def ray_head(tmp_path):
    """A Ray head of our own on 127.0.0.1 with token authentication (RAY_AUTH_MODE=token, TOKEN),
    stopped by stopping the process that started it (which stops the processes it started), not by
    `ray stop`, which would stop every Ray of the user."""
    port = free_port()
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # Ray's socket paths must stay short
    log = (tmp_path / "ray-head.log").open("w")
    head = subprocess.Popen(
        [
            str(BIN / "ray"),
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN},
    )
    deadline = time.monotonic() + 90
    while "--block" not in (tmp_path / "ray-head.log").read_text() and time.monotonic() < deadline:
        assert head.poll() is None, (tmp_path / "ray-head.log").read_text()[-2000:]
        time.sleep(0.2)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)
        head.wait(timeout=60)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_a_sweep_runs_on_a_ray_cluster_and_a_failing_job_stays_its_own(tmp_path, ray_head):
    sweep = tmp_path / "sweep"  # absolute: the jobs run in Ray's worker processes
    launch = ["-m", "hydra/launcher=ray", f"hydra.launcher.ray.init.address={ray_head}", *TINY]
    # A driver without the cluster's token (and no token file: another home) is refused in one paragraph.
    refused = ae_train(
        *launch, f"hydra.sweep.dir={sweep}", cwd=tmp_path, env={"RAY_AUTH_MODE": "token", "HOME": str(tmp_path)}
    )
    assert refused.returncode == 1, refused.stderr[-3000:]
    assert refused.stderr.count("uses token authentication and refused this driver") == 1
    assert "RAY_AUTH_TOKEN" in refused.stderr and "Traceback" not in refused.stdout + refused.stderr
    assert not run_dirs(tmp_path)
    with_token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}
    done = ae_train(
        *launch, "model.latent_dim=2,-1", f"hydra.sweep.dir={sweep}", cwd=tmp_path, env=with_token, timeout=600
    )
    assert done.returncode == 1, done.stderr[-3000:]
    records = {run.name.split("_")[0]: read_record(run) for run in run_dirs(sweep)}
    assert {num: record["status"] for num, record in records.items()} == {"0": "completed", "1": "failed"}
    assert "model.latent_dim=-1 is not allowed" in records["1"]["error"]["message"]
    assert records["0"]["provenance"]["torch_threads"] == 1  # the CPU Ray gave the job's task
    summary = done.stderr[done.stderr.index("did not complete") :]
    assert summary.count("\n  ") == 1 and "model.latent_dim=-1" in summary
    port = ray_head.rsplit(":", 1)[1]  # our head, not a local cluster of the launcher's own
    assert "Connecting to existing Ray cluster at address: " in done.stderr and f":{port}..." in done.stderr


def test_a_driver_refused_for_its_token_is_told_what_to_set(monkeypatch):
    # Without RAY_AUTH_MODE=token Ray retries for 20 s, then raises a ConnectionError whose cause
    # holds its AuthenticationError only as text (as seen from Ray 2.60 against the head above).
    from ray.exceptions import AuthenticationError

    from autoencoders.distributed.launchers import demands_token, token_missing

    def refused(cause: Exception) -> ConnectionError:
        try:
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379") from cause
        except ConnectionError as error:
            return error

    text = "Failed to connect to GCS. ... ray.exceptions.AuthenticationError: RPC error: InvalidAuthToken: ..."
    assert demands_token(refused(RuntimeError(text)))
    assert demands_token(AuthenticationError("Token authentication is enabled but no authentication token was found"))
    assert not demands_token(refused(RuntimeError("Failed to connect to GCS. ... Connection refused")))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "x")
    message = token_missing("10.0.0.1:6379")
    assert "address=10.0.0.1:6379" in message and "RAY_AUTH_MODE is unset" in message
    assert "RAY_AUTH_TOKEN_PATH are set" in message and "RAY_AUTH_MODE=token and the cluster's token" in message


def test_threads_per_job_follow_the_cpus_ray_gives_a_task(monkeypatch):
    import ray

    class Context:
        def get_assigned_resources(self):
            return {"CPU": 3.0}

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "get_runtime_context", lambda: Context())
    launcher = {"_target_": "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"}
    assert threads_per_job(launcher) == 3


def test_a_slurm_ddp_sweep_point_is_one_job_of_srun_tasks_with_a_gpu_each(tmp_path, monkeypatch):
    with initialize_config_module("autoencoders.conf", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "hydra/launcher=slurm_ddp",
                "trainer=ddp",
                "trainer.accelerator=gpu",
                "trainer.devices=4",
                "trainer.num_nodes=2",
                "hydra.launcher.partition=gpu",
                f"hydra.sweep.dir={tmp_path}",
            ],
            return_hydra_config=True,
        )
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "SlurmLauncher"
    assert (launcher.params["nodes"], launcher.params["tasks_per_node"], launcher.params["gpus_per_task"]) == (2, 4, 1)
    # The sbatch script submitit would submit, built the way the launcher builds its executor.
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\n")
    (tmp_path / "bin" / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")  # submitit looks for srun
    params = dict(launcher.params)
    executor = submitit.AutoExecutor(cluster="slurm", folder=str(tmp_path / "submitit"))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(
        **{
            key if key in base else f"slurm_{key}": value
            for key, value in params.items()
            if key not in {"submitit_folder", "max_num_timeout"}
        }
    )
    script = executor._executor._make_submission_file_text("python -u -m submitit.core._submit", "uid")
    for line in (
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --gpus-per-task=1",
        "#SBATCH --partition=gpu",
        "#SBATCH --cpus-per-task=4",
    ):
        assert line in script.splitlines(), (line, script)
    assert any(line.startswith("srun ") for line in script.splitlines())


def test_ranks_come_from_the_environment_the_launchers_set(monkeypatch):
    from autoencoders.distributed.processes import cluster_job, global_rank

    for key in (
        "RANK",
        "LOCAL_RANK",
        "NODE_RANK",
        "LOCAL_WORLD_SIZE",
        "SLURM_NTASKS",
        "SLURM_PROCID",
        "SLURM_JOB_ID",
        "TORCHELASTIC_RUN_ID",
    ):
        monkeypatch.delenv(key, raising=False)
    assert global_rank() == 0 and cluster_job() is None  # a process nobody started as a worker
    monkeypatch.setenv("LOCAL_RANK", "1")  # our launcher's worker on this machine
    assert global_rank() == 1
    monkeypatch.setenv("NODE_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert global_rank() == 5
    for key in ("LOCAL_RANK", "NODE_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("SLURM_NTASKS", "8")  # srun's tasks
    monkeypatch.setenv("SLURM_PROCID", "6")
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    assert global_rank() == 6 and cluster_job() == "slurm-123.0.0"


def test_workers_started_by_a_cluster_follow_the_main_process_decision(tmp_path):
    from autoencoders.rundir.lock import RunLock, wait_for_decision

    lock = RunLock(tmp_path)
    lock.acquire()
    with pytest.raises(RuntimeError, match="did not announce its plan"):
        wait_for_decision(tmp_path, "slurm-1.0.0", timeout=0.3, poll=0.1)
    lock.announce({"job": "slurm-1.0.0", "checkpoint": None, "config": {"seed": 3}})
    assert wait_for_decision(tmp_path, "slurm-1.0.0", timeout=1)["config"] == {"seed": 3}
    with pytest.raises(RuntimeError):  # an earlier job's decision is not this job's
        wait_for_decision(tmp_path, "slurm-2.0.0", timeout=0.3, poll=0.1)
    with pytest.raises(RuntimeError):  # nor an earlier run's under the same job name (torchrun's default "none")
        wait_for_decision(tmp_path, "slurm-1.0.0", timeout=0.3, poll=0.1, not_before=time.time() + 5)
    lock.release()
