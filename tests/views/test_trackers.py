"""MLflow and W&B beside TensorBoard (views/trackers.py), read back through their own clients and
files: a real `mlflow server` (SQLite backend, 127.0.0.1) takes a 2-job sweep and a resume; parallel
joblib jobs share one SQLite store; W&B offline writes the run's scalars and final metrics."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from autoencoders.rundir.record import read_record
from tests.helpers import BIN, ae_train_here, free_port, read_events, run_dirs

pytestmark = pytest.mark.slow

ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "WANDB_SILENT": "true", "WANDB_MODE": "offline"}
TINY = [
    "data=synthetic",
    "trainer=fast",
    "torch_threads=1",
    "eval.probe=false",
    "logging.projector_points=0",
    "trainer.enable_progress_bar=false",
]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real MLflow tracking server on 127.0.0.1 with a SQLite backend, stopped afterwards."""
    port, log = free_port(), tmp_path / "mlflow-server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                f"sqlite:///{tmp_path / 'server.db'}",
                "--artifacts-destination",
                str(tmp_path / "server-artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env={**os.environ, **ENV},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a limit on waiting, not a measurement: a loaded machine starts it slowly
        while not _answers(f"{uri}/health"):
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(1)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:  # its store is this test's to throw away: a server slow to stop is killed
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def tensorboard_steps(run: Path, tag: str) -> list[int]:
    return [event.step for event in read_events(run).Scalars(tag)]


def test_a_sweep_and_a_resume_land_in_a_real_mlflow_server(mlflow_server, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    for name, value in ENV.items():
        monkeypatch.setenv(name, value)

    out = tmp_path / "out"
    # A constant learning rate: a finished cosine schedule may not be extended by a resume.
    # In-process (the server is the other process here): the same main() as the command.
    done = ae_train_here(
        "-m",
        *TINY,
        "seed=1,2",
        "model.lr_schedule=constant",
        "logger=mlflow",
        f"logger.mlflow.tracking_uri={mlflow_server}",
        f"output_root={out}",
        cwd=tmp_path,
        monkeypatch=monkeypatch,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = run_dirs(out / "sweeps")
    assert len(runs) == 2 and "tracking_uri" not in runs[0].name  # where it is logged stays out of the run name
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name(runs[0].parent.name)  # one experiment per sweep
    assert {run.info.run_id for run in client.search_runs([experiment.experiment_id])} == {
        read_record(run)["loggers"]["mlflow"]["run_id"] for run in runs
    }  # one MLflow run per run directory
    for run in runs:
        record = read_record(run)
        found = client.get_run(record["loggers"]["mlflow"]["run_id"])
        assert found.info.status == "FINISHED" and found.info.run_name == run.name
        params = found.data.params
        assert params["seed"] == str(OmegaConf.load(run / "config.yaml").seed) and params["model.latent_dim"] == "32"
        assert params["model"] == "mlp" and params["data"] == "synthetic"  # the HParams session's run settings
        for name, value in record["metrics"].items():  # each metric's latest value is metrics.json's
            assert found.data.metrics[name] == pytest.approx(value, rel=1e-6), name
        history = client.get_metric_history(found.info.run_id, "val/loss")
        assert [point.step for point in history] == tensorboard_steps(run, "val/loss")
        assert {item.path for item in client.list_artifacts(found.info.run_id)} >= {"config.yaml", "metrics.json"}
        assert [item.path for item in client.list_artifacts(found.info.run_id, "checkpoints")] == [
            record["tested"]["checkpoint"]
        ]
        assert client.list_artifacts(found.info.run_id, "images/reconstructions")
        copy = client.download_artifacts(found.info.run_id, "metrics.json", str(tmp_path))
        assert json.loads(Path(copy).read_text()) == record  # the final record, as the run directory holds it

    first, first_steps = read_record(runs[0]), tensorboard_steps(runs[0], "val/loss")
    resumed = ae_train_here(f"resume={runs[0]}", "trainer.max_epochs=2", cwd=tmp_path, monkeypatch=monkeypatch)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    record = read_record(runs[0])
    run_id = record["loggers"]["mlflow"]["run_id"]
    assert run_id == first["loggers"]["mlflow"]["run_id"]  # reattached, not a new MLflow run
    assert len(client.search_runs([experiment.experiment_id])) == 2
    found = client.get_run(run_id)
    assert found.info.status == "FINISHED" and found.data.tags["resume.1.overrides"] == "trainer.max_epochs=2"
    # MLflow keeps every point it was sent: the first session's, then the resume's (TensorBoard drops
    # the first session's points from the checkpoint's step on; MLflow cannot).
    steps = sorted(point.step for point in client.get_metric_history(run_id, "val/loss"))
    assert first_steps == [1, 2]  # epoch 0's validation, and the tested checkpoint's val/* at the test step
    assert tensorboard_steps(runs[0], "val/loss") == [1, 3, 4]  # purged from the checkpoint's step 2 on
    assert steps == [1, 2, 3, 4]
    assert found.data.metrics["epoch"] == 2  # the test after the second epoch, in the same run
    assert found.data.metrics["val/loss"] == pytest.approx(record["metrics"]["val/loss"], rel=1e-6)


def test_parallel_joblib_jobs_share_one_sqlite_store(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "out"
    done = ae_train_here(  # in-process: the jobs run in joblib's worker processes
        "-m",
        *TINY,
        "seed=1,2,3",
        "logger=mlflow",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=3",
        f"output_root={out}",
        cwd=tmp_path,
        monkeypatch=monkeypatch,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = run_dirs(out / "sweeps")  # not the metrics.json copies under out/mlartifacts
    client = MlflowClient(f"sqlite:///{(out / 'mlflow.db').resolve()}")  # the default store: absolute, in output_root
    experiment = client.get_experiment_by_name(runs[0].parent.name)
    found = {run.info.run_id: run for run in client.search_runs([experiment.experiment_id])}
    assert len(runs) == 3 and len(found) == 3
    for run in runs:
        record = read_record(run)
        mlflow_run = found[record["loggers"]["mlflow"]["run_id"]]
        assert mlflow_run.info.status == "FINISHED"
        assert mlflow_run.data.metrics["test/mse"] == pytest.approx(record["metrics"]["test/mse"], rel=1e-6)
        artifacts = Path(mlflow_run.info.artifact_uri.removeprefix("file://"))
        assert artifacts.is_relative_to((out / "mlartifacts").resolve()) and (artifacts / "config.yaml").is_file()


def wandb_records(path: Path) -> list:
    """The records of a W&B transaction log (run-<id>.wandb): a 7-byte header, then LevelDB's log
    format, 32 KiB blocks of chunks (crc32, length, type: 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    raw, block, position, pending, records = path.read_bytes(), 32768, 7, b"", []
    assert raw[:4] == b":W&B"
    while position + 7 <= len(raw):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", raw[position : position + 7])
        if position + 7 + length > len(raw):  # a chunk still being written
            break
        data, position = raw[position + 7 : position + 7 + length], position + 7 + length
        pending = data if kind in (1, 2) else pending + data
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def items(entries) -> dict[str, object]:
    return {entry.key or "/".join(entry.nested_key): json.loads(entry.value_json) for entry in entries}


def test_wandb_offline_holds_the_scalars_and_the_final_metrics(tiny_cfg, tmp_path, monkeypatch):
    from autoencoders.training.pipeline import train

    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    run = tmp_path / "run"
    metrics = train(tiny_cfg("logger=wandb", "trainer.max_epochs=2", *TINY[3:]), run_dir=run)
    entry = read_record(run)["loggers"]["wandb"]
    assert entry["mode"] == "offline"
    (log,) = (run / "wandb").glob(f"offline-run-*-{entry['id']}/run-{entry['id']}.wandb")
    # W&B's service process writes the log after finish() returns; its last record is the run's exit.
    deadline = time.monotonic() + 120  # a limit on waiting, not a measurement
    while not any(record.WhichOneof("record_type") == "exit" for record in wandb_records(log)):
        assert time.monotonic() < deadline, "W&B never wrote the run's exit record"
        time.sleep(0.5)
    records = wandb_records(log)
    history = [items(record.history.item) for record in records if record.WhichOneof("record_type") == "history"]
    events = read_events(run)
    for tag in events.Tags()["scalars"]:  # every TensorBoard scalar at the same steps, same values
        points = [(row["trainer/global_step"], row[tag]) for row in history if tag in row]
        expected = [(event.step, event.value) for event in events.Scalars(tag)]
        assert [step for step, _ in points] == [step for step, _ in expected], tag
        assert [value for _, value in points] == pytest.approx([value for _, value in expected], rel=1e-6), tag
    assert any("images/reconstructions" in key for row in history for key in row)
    summary = {}
    for record in records:
        if record.WhichOneof("record_type") == "summary":
            summary.update(items(record.summary.update))
    for name, value in metrics.items():  # the final metrics.json values
        assert summary[name] == pytest.approx(value, rel=1e-6), name
    (start,) = [record.run for record in records if record.WhichOneof("record_type") == "run"]
    config = items(start.config.update)  # the composed config, flat, as the run's W&B config
    for record in records:
        if record.WhichOneof("record_type") == "config":  # then the model's and the run settings
            config.update(items(record.config.update))
    assert (
        config["data.batch_size"] == config["batch_size"] == 32 and config["seed"] == 42 and config["latent_dim"] == 32
    )
