"""train(cfg) in-process on the generated set: run directory, metrics, checkpoints, events, failures."""

import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoencoders.data import ImageDataModule
from autoencoders.errors import USER_ERRORS, ConfigError
from autoencoders.models.autoencoder import Autoencoder
from autoencoders.rundir.record import read_record
from autoencoders.training.pipeline import train
from tests.helpers import read_events

QUIET = ["logging.images_every_n_epochs=0", "logging.projector_points=0"]


def test_bad_value_fails_before_anything_is_built(tiny_cfg, tmp_path):
    with pytest.raises(ConfigError):
        train(tiny_cfg("data.batch_size=-1"), run_dir=tmp_path)
    record = read_record(tmp_path)
    assert record["status"] == "failed" and "data.batch_size" in record["error"]["message"]
    assert record["data"] == {} and not (tmp_path / "checkpoints").exists()


KEYS = [
    "model.latent_dim",
    "model.lr",
    "model.loss",
    "model.net",
    "data.batch_size",
    "trainer.max_epochs",
    "seed",
    "torch_threads",
    "model.weight_decay",
]
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
    assert record["data"] == {
        "name": "synthetic",
        "source": record["data"]["source"],
        "note": "",
        "train": 448,
        "val": 64,
        "test": 256,
    }
    assert record["model"]["parameters"] == sum(p.numel() for p in Autoencoder([1, 28, 28], net, 4).parameters())


def worse_after_epoch_1(monkeypatch) -> None:
    """Validation (and test) loss rises by 1 from epoch 2 on, so the best checkpoint is an early one."""
    original = Autoencoder.loss_terms

    def loss_terms(self, x):
        terms, x_hat = original(self, x)
        if not self.training and self.current_epoch >= 2:
            terms["loss"] = terms["loss"] + 1.0
        return terms, x_hat

    monkeypatch.setattr(Autoencoder, "loss_terms", loss_terms)


def test_the_record_describes_the_tested_checkpoint_and_keeps_the_last_epoch_apart(tiny_cfg, tmp_path, monkeypatch):
    worse_after_epoch_1(monkeypatch)
    cfg = tiny_cfg("trainer.max_epochs=4", "trainer.limit_test_batches=1.0", "model.lr_schedule=constant", *QUIET)
    metrics = train(cfg, run_dir=tmp_path)
    record = read_record(tmp_path)
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    assert record["tested"] == {
        "checkpoint": "checkpoints/best.ckpt",
        "epoch": best["epoch"],
        "step": best["global_step"],
    }
    assert best["epoch"] in (0, 1) and record["last"]["epoch"] == 3 and record["last"]["step"] == 8
    for name in ("val/loss", "val/mse", "train/loss"):  # the tested checkpoint's epoch, not the last one
        assert metrics[name] == best["epoch_metrics"][name] != record["last"]["metrics"][name]
    assert record["last"]["metrics"]["val/loss"] > 1.0 > metrics["val/loss"]
    # test/mse is the tested (best) checkpoint's, recomputed by hand, and not the last weights'.
    module = ImageDataModule(name="synthetic", val_size=64)
    module.setup()
    x = module.pixels("test")[0]
    for name, matches in (("best.ckpt", True), ("last.ckpt", False)):
        # weights_only loading: the checkpoint holds plain hyperparameters, nothing to unpickle.
        model = Autoencoder.load_from_checkpoint(tmp_path / "checkpoints" / name, weights_only=True).eval()
        with torch.no_grad():
            mse = ((model.reconstruct(x) - x) ** 2).mean().item()
        assert (mse == pytest.approx(metrics["test/mse"], rel=1e-5)) is matches, name


@pytest.mark.parametrize("model", ["vae", "contractive"])
def test_validation_noise_is_seeded_and_leaves_the_training_rng_alone(tiny_cfg, tmp_path, model):
    # The VAE samples z and the contractive model draws random projections while validating.
    # Validating every epoch or every other one must not change training (the same weights at
    # the end), and the same checkpoint must score the same noise every time.
    extra = ["++model.jacobian_projections=1"] if model == "contractive" else []
    runs = {}
    for every in (1, 2):
        cfg = tiny_cfg(
            f"model={model}",
            "model.latent_dim=4",
            "trainer.max_epochs=2",
            f"trainer.check_val_every_n_epoch={every}",
            "trainer.limit_train_batches=1.0",
            *QUIET,
            "eval.probe=false",
            "eval.nll_samples=0",
            *extra,
        )
        train(cfg, run_dir=tmp_path / str(every))
        runs[every] = torch.load(tmp_path / str(every) / "checkpoints" / "last.ckpt", weights_only=True)
    for name, weight in runs[1]["state_dict"].items():
        assert torch.equal(weight, runs[2]["state_dict"][name]), name
    assert runs[1]["epoch_metrics"]["val/loss"] == runs[2]["epoch_metrics"]["val/loss"]  # epoch 1's validation, seeded


def test_validating_draws_nothing_from_the_training_rng(tiny_cfg):
    from autoencoders.models.vae import VAE

    model = VAE(input_shape=[1, 28, 28], latent_dim=4).eval()
    x = torch.rand(8, 1, 28, 28)
    torch.manual_seed(7)
    state = torch.get_rng_state()
    model._evaluation_step("val", (x, torch.zeros(8)), 0)
    first = model._means["val"].compute()["loss"]
    assert torch.equal(torch.get_rng_state(), state)
    model.on_validation_epoch_start()
    torch.manual_seed(99)
    model._evaluation_step("val", (x, torch.zeros(8)), 0)
    assert torch.equal(model._means["val"].compute()["loss"], first)  # the same draws, whatever the RNG


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.limit_train_batches=0", "trainer.limit_train_batches=0 is not allowed"),
        ("trainer.limit_train_batches=0.0", "a fraction in (0, 1]"),
        ("trainer.limit_val_batches=1.5", "trainer.limit_val_batches=1.5 is not allowed"),
        ("trainer.limit_test_batches=-1", "whole number of batches >= 0"),
        ("++trainer.max_steps=0", "the run would train no step"),
    ],
)
def test_a_run_that_would_train_nothing_is_refused_before_it_starts(tiny_cfg, tmp_path, override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        train(tiny_cfg(override), run_dir=tmp_path)
    record = read_record(tmp_path)
    assert record["status"] == "failed" and record["metrics"] == {} and not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "+model.foo=1",
            "model.foo is not a model setting; the settings are latent_dim, loss, lr, lr_schedule, net, weight_decay.",
        ),
        ("+model.input_shape=[1,28,28]", "model.input_shape is not a model setting"),
        (
            "+data.colour=true",
            "data.colour is not a data setting; the settings are batch_size, binarize, download, holdout_class,",
        ),
    ],
)
def test_an_unknown_key_is_named_with_the_known_ones_before_the_data_loads(
    tiny_cfg, tmp_path, monkeypatch, override, message
):
    from autoencoders.data import datamodule

    monkeypatch.setattr(datamodule, "load_image_set", lambda *args: pytest.fail("the data was loaded"))
    with pytest.raises(ConfigError, match=re.escape(message)):
        train(tiny_cfg(override), run_dir=tmp_path)
    assert read_record(tmp_path)["status"] == "failed"


def test_tensorboard_events_hold_the_epoch_scalars(tiny_cfg, tmp_path):
    train(tiny_cfg("trainer.max_epochs=2"), run_dir=tmp_path)
    events = read_events(tmp_path)
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "val/loss", "val/mse", "test/mse", "train/loss_step"} <= scalars
    # One point per epoch, none from the sanity check; then, at the test step, the tested
    # checkpoint's value, so that HParams (each tag's last value) agrees with metrics.json.
    epochs = [event.step for event in events.Scalars("train/loss")]
    (test_step,) = [event.step for event in events.Scalars("test/mse")]
    val = events.Scalars("val/loss")
    assert [event.step for event in val] == [*epochs, test_step]
    record = read_record(tmp_path)
    tested_epoch = record["tested"]["epoch"]
    assert val[-1].value == pytest.approx(val[tested_epoch].value) == pytest.approx(record["metrics"]["val/loss"])


def test_training_lowers_the_loss(tiny_cfg, tmp_path):
    cfg = tiny_cfg("trainer.max_epochs=8", "trainer.limit_train_batches=1.0", "model.lr=0.003")
    train(cfg, run_dir=tmp_path)
    events = read_events(tmp_path)
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


def test_a_model_that_needs_labels_refuses_data_without_them(tiny_cfg, tmp_path, monkeypatch):
    # A data set without class labels (num_classes None): the cvae stops at start-up with one clear
    # message, and the record says failed; models that need no labels train on it.
    monkeypatch.setattr(ImageDataModule, "num_classes", property(lambda self: None))
    with pytest.raises(
        ConfigError,
        match=r"CVAE needs class labels from the data \(num_classes\), but data "
        r"'synthetic' has none",
    ):
        train(tiny_cfg("model=cvae", *QUIET), run_dir=tmp_path / "cvae")
    record = read_record(tmp_path / "cvae")
    assert record["status"] == "failed" and "class labels" in record["error"]["message"]
    assert not (tmp_path / "cvae" / "checkpoints").exists()
    assert "test/mse" in train(tiny_cfg("model=vae", *QUIET, "eval.probe=false"), run_dir=tmp_path / "vae")


def test_data_sizes_reach_the_models_that_need_them(tiny_cfg, tmp_path):
    from autoencoders.rundir.loading import load_run

    for model, size in [("cvae", "num_classes"), ("tcvae", "dataset_size")]:
        train(tiny_cfg(f"model={model}", *QUIET, "eval.probe=false", "eval.nll_samples=0"), run_dir=tmp_path / model)
        assert load_run(tmp_path / model).hparams[size] == {"num_classes": 10, "dataset_size": 448}[size]
        assert size not in (tmp_path / model / "config.yaml").read_text()  # from the data, not the config
