"""A real TensorBoard server over real ae-train runs, read through its HTTP data API."""

import io
import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from autoencoders.rundir.record import read_record
from tests.helpers import BIN, free_port

IMAGE_TAGS = {"images/reconstructions", "images/interpolation", "images/traversal", "latent/scatter"}
TILE = 28 + 2  # a 28-pixel image plus make_grid's 2-pixel padding


def grid_size(columns: int, rows: int) -> tuple[int, int]:
    return 2 + TILE * columns, 2 + TILE * rows


# --- a real TensorBoard server over real ae-train runs ---------------------------------------


class TensorBoardServer:
    """`tensorboard --logdir ...` on a free local port, read through its HTTP data API."""

    def __init__(self, logdir: Path, log_file: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = log_file.open("w")
        command = [
            str(BIN / "tensorboard"),
            "--logdir",
            str(logdir),
            "--host",
            "127.0.0.1",
            "--port",
            self.url.rsplit(":", 1)[1],
            "--load_fast=false",
        ]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)

    def get(self, route: str, **query: str) -> bytes:
        url = f"{self.url}/data/{route}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        with urllib.request.urlopen(url, timeout=20) as response:
            return response.read()

    def get_json(self, route: str, **query: str):
        return json.loads(self.get(route, **query))

    def post_json(self, route: str, body: dict):
        request = urllib.request.Request(
            f"{self.url}/data/{route}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "X-XSRF-Protected": "1"},
        )
        with urllib.request.urlopen(request, timeout=20) as response:
            return json.loads(response.read())

    def wait_for(self, runs: set[str], tag: str, timeout: float = 90) -> None:
        """Until every run's scalars include `tag` (the server loads the logdir in the background)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "tensorboard exited; see its log"
            try:
                loaded = self.get_json("plugin/scalars/tags")
                if all(tag in loaded.get(run, {}) for run in runs):
                    return
            except OSError:  # not listening yet
                pass
            time.sleep(0.3)
        raise TimeoutError(f"tensorboard did not show {tag} for {runs} within {timeout} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()


@pytest.mark.slow
def test_a_tensorboard_server_shows_runs_scalars_images_and_hparams(tmp_path):
    tiny = ["data=synthetic", "trainer=fast", "torch_threads=1", f"output_root={tmp_path / 'outputs'}"]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    jobs = [
        subprocess.Popen(
            [str(BIN / "ae-train"), *tiny],
            cwd=tmp_path,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        ),
        subprocess.Popen(
            [str(BIN / "ae-train"), "-m", *tiny, "model.latent_dim=2,3"],
            cwd=tmp_path,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        ),
    ]
    for job in jobs:
        _, errors = job.communicate(timeout=600)
        assert job.returncode == 0, errors[-2000:]
    outputs = tmp_path / "outputs"
    run_dirs = {path.parent.relative_to(outputs).as_posix(): path.parent for path in outputs.rglob("metrics.json")}
    # Run names say what differs: model and data for a single run, the overrides for sweep jobs.
    (single,) = [name for name in run_dirs if name.startswith("runs/")]
    assert "_mlp_synthetic_" in single
    sweep = sorted(name for name in run_dirs if name.startswith("sweeps/"))
    assert [name.rsplit("/", 1)[1].split("_", 1)[0] for name in sweep] == ["0", "1"]
    assert "model.latent_dim=2" in sweep[0] and "model.latent_dim=3" in sweep[1]

    server = TensorBoardServer(outputs, tmp_path / "tensorboard.log")
    try:
        server.wait_for(set(run_dirs), "test/mse")
        assert set(server.get_json("runs")) >= set(run_dirs)
        for name, run in run_dirs.items():
            final = read_record(run)["metrics"]
            (point,) = server.get_json("plugin/scalars/scalars", run=name, tag="test/mse")
            assert point[2] == pytest.approx(final["test/mse"], rel=1e-6)
            assert server.get_json("plugin/scalars/scalars", run=name, tag="train/images_per_s")[0][2] > 0

            assert set(server.get_json("plugin/images/tags")[name]) >= IMAGE_TAGS
            # One epoch (2 steps): the epoch's grid at step 1, the tested checkpoint's at the test step 2.
            images = server.get_json("plugin/images/images", run=name, tag="images/reconstructions")
            assert [image["step"] for image in images] == [1, 2]
            for image in images:
                encoded = server.get(f"plugin/images/individualImage?{image['query']}")
                assert Image.open(io.BytesIO(encoded)).size == grid_size(8, 4)

        # HParams: one session per run with its hyperparameters and final metrics.
        experiment = server.post_json("plugin/hparams/experiment", {"experimentName": ""})
        assert {"model", "net", "latent_dim", "lr", "batch_size", "seed", "data"} <= {
            info["name"] for info in experiment["hparamInfos"]
        }
        assert {"test/loss", "test/mse", "val/loss", "val/mse"} <= {
            info["name"]["tag"] for info in experiment["metricInfos"]
        }
        groups = server.post_json(
            "plugin/hparams/session_groups",
            {
                "experimentName": "",
                "allowedStatuses": ["STATUS_SUCCESS", "STATUS_UNKNOWN"],
                "startIndex": 0,
                "sliceSize": 100,
            },
        )["sessionGroups"]
        sessions = {group["name"]: group for group in groups}
        assert set(sessions) == set(run_dirs)
        for name, run in run_dirs.items():
            values = {value["name"]["tag"]: value["value"] for value in sessions[name]["metricValues"]}
            final = read_record(run)["metrics"]
            assert values["test/mse"] == pytest.approx(final["test/mse"], rel=1e-6)
            assert values["test/loss"] == pytest.approx(final["test/loss"], rel=1e-6)
            assert sessions[name]["hparams"]["model"] == "mlp" and sessions[name]["hparams"]["data"] == "synthetic"
        assert [sessions[name]["hparams"]["latent_dim"] for name in sweep] == [2, 3]

        # Custom Scalars: every run's layout merged into one chart per term, whose anchored patterns
        # draw train/loss and val/loss and nothing else (not train/loss_step).
        (category,) = server.get_json("plugin/custom_scalars/layout")["category"]
        assert category["title"] == "train and val" and [chart["title"] for chart in category["chart"]] == ["loss"]
        drawn = set()
        for pattern in category["chart"][0]["multiline"]["tag"]:
            answer = server.get_json("plugin/custom_scalars/scalars", run=single, tag=pattern)
            assert answer["regex_valid"]
            drawn.update(answer["tag_to_events"])
        assert drawn == {"train/loss", "val/loss"}

        # Projector: the run's test codes with their shape.
        assert single in server.get_json("plugin/projector/runs")
        (embedding,) = server.get_json("plugin/projector/info", run=single)["embeddings"]
        assert embedding["tensorShape"] == [256, 32] and embedding["sprite"]["singleImageDim"] == [28, 28]
    finally:
        server.stop()
    assert server.process.returncode is not None
