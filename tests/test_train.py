"""train(cfg) in-process on the generated set: run directory, metrics, checkpoints, events."""

import os
import subprocess
import sys

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from autoencoders.data import ImageDataModule
from autoencoders.models.autoencoder import Autoencoder
from autoencoders.run_record import read_record
from autoencoders.train import train


@pytest.mark.parametrize("net", ["mlp", "conv"])
def test_train_writes_a_complete_run_directory(tiny_cfg, tmp_path, net):
    cfg = tiny_cfg(f"model.net={net}", "model.latent_dim=4")
    metrics = train(cfg, run_dir=tmp_path / "run", overrides=[f"model.net={net}"])
    run = tmp_path / "run"
    assert {"test/loss", "test/mse", "val/loss", "val/mse", "train/loss"} <= set(metrics)
    assert all(isinstance(value, float) for value in metrics.values())
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "config.yaml").read_text().count("latent_dim: 4") == 1
    record = read_record(run)
    assert record["status"] == "completed" and record["metrics"] == metrics
    assert record["overrides"] == [f"model.net={net}"]
    assert record["data"] == {"name": "synthetic", "source": record["data"]["source"], "note": "",
                              "train": 448, "val": 64, "test": 256}  # fmt: skip
    assert record["model"]["parameters"] == sum(p.numel() for p in Autoencoder([1, 28, 28], net, 4).parameters())


def test_test_mse_is_reproduced_from_the_best_checkpoint(tiny_cfg, tmp_path):
    cfg = tiny_cfg("trainer.limit_test_batches=1.0")
    metrics = train(cfg, run_dir=tmp_path)
    # weights_only loading: the checkpoint holds plain hyperparameters, nothing to unpickle.
    model = Autoencoder.load_from_checkpoint(tmp_path / "checkpoints" / "best.ckpt", weights_only=True).eval()
    module = ImageDataModule(name="synthetic", val_size=64)
    module.setup()
    x = module.test_set.tensors[0]
    with torch.no_grad():
        mse = ((model.reconstruct(x) - x) ** 2).mean().item()
    assert mse == pytest.approx(metrics["test/mse"], rel=1e-5)


def test_tensorboard_events_hold_the_epoch_scalars(tiny_cfg, tmp_path):
    train(tiny_cfg("trainer.max_epochs=2"), run_dir=tmp_path)
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "val/loss", "val/mse", "test/mse", "train/loss_step"} <= scalars
    assert len(events.Scalars("val/loss")) == 2  # one point per epoch, none from the sanity check


def test_training_lowers_the_loss(tiny_cfg, tmp_path):
    cfg = tiny_cfg("trainer.max_epochs=8", "trainer.limit_train_batches=1.0", "model.lr=0.003")
    train(cfg, run_dir=tmp_path)
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    losses = [event.value for event in events.Scalars("train/loss")]
    assert losses[-1] < 0.8 * losses[0]


def test_same_seed_gives_the_same_result(tiny_cfg, tmp_path):
    first = train(tiny_cfg(), run_dir=tmp_path / "a")
    second = train(tiny_cfg(), run_dir=tmp_path / "b")
    third = train(tiny_cfg("seed=3"), run_dir=tmp_path / "c")
    assert first["test/mse"] == second["test/mse"] != third["test/mse"]


def test_a_failing_run_records_its_error(tiny_cfg, tmp_path):
    with pytest.raises(ValueError, match="latent_dim"):
        train(tiny_cfg("model.latent_dim=0"), run_dir=tmp_path)
    record = read_record(tmp_path)
    assert record["status"] == "failed" and "latent_dim" in record["error"]["message"]


# A float32 denormal (below 1.2e-38) made by multiplying two normal numbers, in a large tensor
# so torch splits the work over its threads; "flushed" counts the elements that became 0.
DENORMALS = """
import sys, torch
{setup}
product = torch.full((1_000_000,), 1e-30) * torch.full((1_000_000,), 1e-10)
print(int((product == 0).sum()))
"""


@pytest.mark.parametrize(("setup", "flushed"), [
    ("torch.set_num_threads(2)", 0),
    ("from autoencoders.train import set_up_torch; set_up_torch(2)", 1_000_000),
])  # fmt: skip
def test_set_up_torch_flushes_denormals_on_every_thread(setup, flushed):
    done = subprocess.run([sys.executable, "-c", DENORMALS.format(setup=setup)], capture_output=True, text=True, check=True)
    assert int(done.stdout.strip().splitlines()[-1]) == flushed


def test_train_sets_up_torch(tiny_cfg, tmp_path):
    torch.set_flush_denormal(False)
    assert (torch.tensor([1e-30]) * 1e-10).item() != 0.0
    train(tiny_cfg("torch_threads=2"), run_dir=tmp_path, overrides=[])
    assert (torch.tensor([1e-30]) * 1e-10).item() == 0.0
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)  # as conftest has it for the other tests


def test_training_uses_torchs_cuda_check_not_lightnings_nvml_one(tiny_cfg, tmp_path, monkeypatch):
    import lightning  # noqa: F401 - sets PYTORCH_NVML_BASED_CUDA_CHECK=1 on import

    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    seen = []
    step = Autoencoder.training_step

    def recording_step(self, batch, batch_idx):
        seen.append(os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK"))
        return step(self, batch, batch_idx)

    monkeypatch.setattr(Autoencoder, "training_step", recording_step)
    train(tiny_cfg(), run_dir=tmp_path, overrides=[])
    assert seen and set(seen) == {None}  # unset while training: torch's cached runtime check
    assert os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] == "1"  # restored afterwards
