"""train(cfg) in-process on the generated set: run directory, metrics, checkpoints, events, failures."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from autoencoders.data import ImageDataModule
from autoencoders.errors import USER_ERRORS, ConfigError
from autoencoders.models.autoencoder import Autoencoder
from autoencoders.runs.record import read_record
from autoencoders.runs.train import train

QUIET = ["logging.images_every_n_epochs=0", "logging.projector_points=0"]


def test_bad_value_fails_before_anything_is_built(tiny_cfg, tmp_path):
    with pytest.raises(ConfigError):
        train(tiny_cfg("data.batch_size=-1"), run_dir=tmp_path)
    record = read_record(tmp_path)
    assert record["status"] == "failed" and "data.batch_size" in record["error"]["message"]
    assert record["data"] == {} and not (tmp_path / "checkpoints").exists()


KEYS = ["model.latent_dim", "model.lr", "model.loss", "model.net", "data.batch_size", "trainer.max_epochs",
        "seed", "torch_threads", "model.weight_decay"]  # fmt: skip
VALUES = st.one_of(
    st.integers(-3, 3), st.sampled_from([0.5, -0.1, 1e-9, 1e30, 2.0, "nan", "inf", "null", "true", "mlp", "bce", "x"])
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(overrides=st.dictionaries(st.sampled_from(KEYS), VALUES, min_size=1, max_size=3))
def test_random_overrides_give_a_run_or_a_clean_error(tiny_cfg, tmp_path_factory, overrides):
    cfg = tiny_cfg(*QUIET, *(f"{key}={value}" for key, value in overrides.items()))
    try:
        metrics = train(cfg, run_dir=tmp_path_factory.mktemp("run"))
    except USER_ERRORS as error:
        assert str(error)  # a message, and of a type shown without a traceback
    else:
        assert "test/mse" in metrics


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
