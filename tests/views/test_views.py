"""What training writes for TensorBoard, read back from the event files."""

import io
import math
import re

import numpy as np
import pytest
import torch
from google.protobuf import json_format, text_format
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.backend.event_processing import plugin_event_accumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as custom_scalars_metadata
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig
from tensorboard.util import tensor_util

from autoencoders.data import ImageDataModule
from autoencoders.errors import ConfigError
from autoencoders.models.autoencoder import Autoencoder
from autoencoders.rundir.record import read_record
from autoencoders.training.pipeline import resume_training, train
from autoencoders.views import build_callbacks
from autoencoders.views.hparams import flatten_hparams
from tests.helpers import read_events

MODELS = ["mlp", "vae"]
IMAGE_TAGS = {"images/reconstructions", "images/interpolation", "images/traversal", "latent/scatter"}
TILE = 28 + 2  # a 28-pixel image plus make_grid's 2-pixel padding


def grid_size(columns: int, rows: int) -> tuple[int, int]:
    return 2 + TILE * columns, 2 + TILE * rows


def png(encoded: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(encoded)))


def steps_and_sizes(events: ea.EventAccumulator, tag: str) -> tuple[list[int], set[tuple[int, int]]]:
    # In the order they were written: the accumulator reads event files in name order, and the
    # test phase's file (Lightning reopens the writer after fit) can sort first when both were
    # created in the same second and the process's file counter went from .9 to .10.
    images = sorted(events.Images(tag), key=lambda image: image.wall_time)
    for image in images:  # the stored width and height are the PNG's
        assert Image.open(io.BytesIO(image.encoded_image_string)).size == (image.width, image.height)
    return [image.step for image in images], {(image.width, image.height) for image in images}


def layouts(events: ea.EventAccumulator) -> list[layout_pb2.Layout]:
    """Every Custom Scalars layout in the run's event files, parsed as TensorBoard's plugin does."""
    found = []
    for event in events.Tensors(custom_scalars_metadata.CONFIG_SUMMARY_TAG):
        found.append(layout_pb2.Layout())
        found[-1].ParseFromString(tensor_util.make_ndarray(event.tensor_proto).item())
    return found


def charted_tags(layout: layout_pb2.Layout, scalar_tags: list[str]) -> dict[str, set[str]]:
    """{chart title: the run's scalar tags its patterns draw}, matched as the plugin does (re.match)."""
    (category,) = layout.category
    return {
        chart.title: {tag for pattern in chart.multiline.tag for tag in scalar_tags if re.match(pattern, tag)}
        for chart in category.chart
    }


@pytest.mark.parametrize("model", MODELS)
def test_every_view_is_in_the_event_files(tiny_cfg, tmp_path, model):
    cfg = tiny_cfg(
        f"model={model}",
        "model.latent_dim=4",
        "trainer.max_epochs=2",
        "logging.latents_every_n_epochs=1",
        "logging.n_images=8",
    )
    metrics = train(cfg, run_dir=tmp_path)
    # Fit, test and evaluation write one event file: a second one could sort before the first
    # (views/tensorboard.SessionLogger), and the first's restart marker would drop what it held.
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1
    events = read_events(tmp_path)
    tags = events.Tags()

    # Scalars: loss terms per stage, learning rate, throughput and epoch time once per epoch.
    assert {
        "train/loss",
        "val/loss",
        "val/mse",
        "test/loss",
        "test/mse",
        "lr-Adam",
        "train/images_per_s",
        "train/epoch_time_s",
    } <= set(tags["scalars"])
    assert "hp_metric" not in tags["scalars"]
    epoch_steps = [event.step for event in events.Scalars("train/loss")]
    for tag in ("train/images_per_s", "train/epoch_time_s"):
        assert [event.step for event in events.Scalars(tag)] == epoch_steps  # beside train/loss
        assert all(0 < event.value < math.inf for event in events.Scalars(tag))
    assert "train/images_per_s" not in metrics  # timings are not results: not in metrics.json

    # Custom Scalars: one chart per term the model trains with, its train and val curves together;
    # anchored patterns, so the loss chart leaves out train/loss_step. Validation-only values
    # (val/mse, the VAE's val/kl_dim/*) have no training curve and no chart.
    (layout,) = layouts(events)
    terms = ["loss", "recon", "kl", "elbo"] if model == "vae" else ["loss"]
    assert charted_tags(layout, tags["scalars"]) == {term: {f"train/{term}", f"val/{term}"} for term in terms}
    assert [chart.title for chart in layout.category[0].chart] == terms
    assert "train/loss_step" in tags["scalars"]

    # Images: at each epoch's step (beside train/loss), and all of them once more after testing,
    # with the tested checkpoint at the test step (where test/* are), so picture and number agree.
    (test_step,) = [event.step for event in events.Scalars("test/mse")]
    all_steps = [*epoch_steps, test_step]
    assert set(tags["images"]) >= IMAGE_TAGS and ("images/samples" in tags["images"]) == (model == "vae")
    assert steps_and_sizes(events, "images/reconstructions") == (all_steps, {grid_size(8, 2)})
    if model == "vae":
        assert steps_and_sizes(events, "images/samples") == (all_steps, {grid_size(8, 1)})
    assert steps_and_sizes(events, "images/interpolation") == (all_steps, {grid_size(8 + 2, 4)})
    assert steps_and_sizes(events, "images/traversal") == (all_steps, {grid_size(7, 4)})  # 4 latent dims, -3..3 sigma
    steps, ((width, height),) = steps_and_sizes(events, "latent/scatter")
    assert steps == all_steps and width >= 300 and height >= 300

    # The grid's first tile is the first validation image, in every epoch.
    data = ImageDataModule(name="synthetic", val_size=64)
    data.setup()
    first_image = data.pixels("val")[0][0, 0].numpy() * 255
    for image in events.Images("images/reconstructions"):
        tile = png(image.encoded_image_string)[2 : 2 + 28, 2 : 2 + 28, 0].astype(float)
        assert np.abs(tile - first_image).max() <= 1  # add_image truncates to uint8

    # Projector: codes of the 256 test images at each step, class names and one sprite.
    config = text_format.Parse((tmp_path / "projector_config.pbtxt").read_text(), ProjectorConfig())
    assert [embedding.tensor_name for embedding in config.embeddings] == [
        f"latent/test_codes:{step:05d}" for step in all_steps
    ]
    for embedding in config.embeddings:
        codes = np.loadtxt(tmp_path / embedding.tensor_path, delimiter="\t")
        labels = (tmp_path / embedding.metadata_path).read_text().splitlines()
        assert codes.shape == (256, 4) and np.isfinite(codes).all()
        assert len(labels) == 256 and set(labels) <= {f"bar-{k}" for k in range(10)} and len(set(labels)) > 5
        assert list(embedding.sprite.single_image_dim) == [28, 28]
        assert Image.open(tmp_path / embedding.sprite.image_path).size == (16 * 28, 16 * 28)  # 256 = 16 x 16 thumbnails

    # HParams: one session (start and end), no Experiment summary and no placeholder metric.
    content = events.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    assert set(content) == {hparams_metadata.SESSION_START_INFO_TAG, hparams_metadata.SESSION_END_INFO_TAG}
    start = hparams_metadata.parse_session_start_info_plugin_data(content[hparams_metadata.SESSION_START_INFO_TAG])
    hparams = json_format.MessageToDict(start)["hparams"]
    assert hparams["latent_dim"] == 4 and hparams["lr"] == pytest.approx(cfg.model.lr) and hparams["net"] == "mlp"
    assert hparams["net.hidden"] == "256x64" and "net._target_" not in hparams  # the family by name, its sizes beside
    assert hparams["batch_size"] == 32 and hparams["seed"] == 42 and hparams["data"] == "synthetic"
    assert hparams["model"].endswith(("Autoencoder", "VAE"))
    assert ("beta" in hparams) == (model == "vae")
    assert read_record(tmp_path)["status"] == "completed"


def test_fixed_images_and_noise_give_the_same_grid_when_the_model_stands_still(tiny_cfg, tmp_path, monkeypatch):
    # Any model with `sample` gets images/samples; decode(fixed z) makes epochs comparable.
    monkeypatch.setattr(
        Autoencoder, "sample", lambda self, n: self.decode(torch.randn(n, self.hparams.latent_dim)), raising=False
    )
    train(tiny_cfg("trainer.max_epochs=2", "model.lr=1e-12"), run_dir=tmp_path)  # weights stay put
    events = read_events(tmp_path)
    for tag in ("images/reconstructions", "images/samples"):
        # Two epochs and the tested checkpoint after testing: three identical grids.
        first, *others = (png(image.encoded_image_string) for image in events.Images(tag))
        assert len(others) == 2 and all(np.array_equal(first, other) for other in others), tag


def test_defaults_draw_latents_once_after_testing(tiny_cfg, tmp_path):
    train(tiny_cfg("trainer.max_epochs=2"), run_dir=tmp_path)  # 2 steps an epoch
    events = read_events(tmp_path)
    assert steps_and_sizes(events, "images/reconstructions")[0] == [1, 3, 4]  # every epoch, and after testing
    for tag in ("latent/scatter", "images/interpolation", "images/traversal"):
        assert steps_and_sizes(events, tag)[0] == [4], tag  # only the tested checkpoint
    config = text_format.Parse((tmp_path / "projector_config.pbtxt").read_text(), ProjectorConfig())
    assert [embedding.tensor_name for embedding in config.embeddings] == ["latent/test_codes:00004"]
    assert steps_and_sizes(events, "images/traversal")[1] == {grid_size(7, 8)}  # top 8 of 32 dimensions


def test_views_can_be_switched_off(tiny_cfg, tmp_path):
    train(tiny_cfg("logging.images_every_n_epochs=0", "logging.projector_points=0"), run_dir=tmp_path)
    events = read_events(tmp_path)
    assert events.Tags()["images"] == [] and not (tmp_path / "projector_config.pbtxt").exists()
    assert "train/images_per_s" in events.Tags()["scalars"]
    assert hparams_metadata.SESSION_START_INFO_TAG in events.PluginTagToContent(hparams_metadata.PLUGIN_NAME)


def test_one_projector_point_draws_its_views(tiny_cfg, tmp_path):
    """logging.projector_points=1 passed the checks, then failed in the scatter's PCA (a plane through one point)."""
    train(tiny_cfg("logging.images_every_n_epochs=0", "logging.projector_points=1"), run_dir=tmp_path)
    scatter = read_events(tmp_path).Images("latent/scatter")
    assert len(scatter) == 1 and "test_codes" in (tmp_path / "projector_config.pbtxt").read_text()


def test_a_resumed_run_repeats_no_image_and_no_embedding(tiny_cfg, tmp_path):
    # A constant lr: the default cosine schedule of a finished run cannot be extended (it reached 0).
    train(
        tiny_cfg("trainer.max_epochs=2", "logging.latents_every_n_epochs=1", "model.lr_schedule=constant"),
        run_dir=tmp_path,
    )
    resume_training(tmp_path, ["trainer.max_epochs=3"])
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 2  # one per session
    events = read_events(tmp_path)
    epoch_steps = [event.step for event in events.Scalars("train/loss")]
    (test_step,) = [event.step for event in events.Scalars("test/mse")]  # the first test's point is purged
    assert epoch_steps == [1, 3, 5]
    assert steps_and_sizes(events, "images/reconstructions")[0] == [*epoch_steps, test_step]
    assert steps_and_sizes(events, "latent/scatter")[0] == [*epoch_steps, test_step]
    config = text_format.Parse((tmp_path / "projector_config.pbtxt").read_text(), ProjectorConfig())
    assert [embedding.tensor_name for embedding in config.embeddings] == [
        f"latent/test_codes:{step:05d}" for step in [*epoch_steps, test_step]
    ]
    assert all((tmp_path / embedding.sprite.image_path).is_file() for embedding in config.embeddings)
    assert len(layouts(events)) == 1  # written in the first epochs, kept by the resume
    # TensorBoard's server reads with its own accumulator, which takes the first restart marker
    # as the run's start: the resume's must still drop the points it repeats.
    served = plugin_event_accumulator.EventAccumulator(str(tmp_path))
    served.Reload()
    for tag in ("train/loss", "test/mse", "val/loss"):
        steps = [event.step for event in served.Tensors(tag)]
        assert steps == [event.step for event in events.Scalars(tag)], tag
    assert [event.step for event in served.Tensors("test/mse")] == [test_step]


def test_a_run_resumed_from_before_its_layout_gets_it_once(tiny_cfg, tmp_path):
    # A one-epoch run writes its layout after its only checkpoint; resuming from that checkpoint
    # purges the layout with the later events, and the resumed run writes it again.
    train(
        tiny_cfg("model.lr_schedule=constant", "logging.images_every_n_epochs=0", "logging.projector_points=0"),
        run_dir=tmp_path,
    )
    assert len(layouts(read_events(tmp_path))) == 1
    resume_training(tmp_path, ["trainer.max_epochs=2"])
    (layout,) = layouts(read_events(tmp_path))
    assert [chart.title for chart in layout.category[0].chart] == ["loss"]


@pytest.mark.parametrize("key, value", [("n_images", 0), ("latents_every_n_epochs", -1), ("projector_points", 1.5)])
def test_bad_logging_values_name_the_key(key, value):
    with pytest.raises(ConfigError, match=f"logging.{key} must be"):
        build_callbacks({key: value})


def test_an_unknown_logging_key_lists_the_known_ones():
    with pytest.raises(
        ConfigError,
        match="logging.image_every_n_epochs is not a logging setting; the settings are "
        "images_every_n_epochs, latents_every_n_epochs, n_images, projector_points.",
    ):
        build_callbacks({"image_every_n_epochs": 2})


def test_hparams_are_flattened_to_scalars_and_strings():
    flat = flatten_hparams(
        {"input_shape": [1, 28, 28], "net": "mlp", "beta": 4.0, "extra": {"free_bits": 0.5}, "x": None}
    )
    assert flat == {"input_shape": "1x28x28", "net": "mlp", "beta": 4.0, "extra.free_bits": 0.5, "x": "None"}


@pytest.mark.parametrize("model, rows, own", [("cvae", 10, "num_classes"), ("vqvae", 1, "codebook_size")])
def test_models_with_their_own_samples_grid(tiny_cfg, tmp_path, model, rows, own):
    # cvae: one row per class (10 in the generated set), 8 styles; vqvae: 8 draws from its code prior.
    quiet = ["eval.probe=false", "eval.nll_samples=0", "eval.class_consistency=false"]
    train(tiny_cfg(f"model={model}", "model.latent_dim=8", "logging.n_images=8", *quiet), run_dir=tmp_path)
    events = read_events(tmp_path)
    assert IMAGE_TAGS | {"images/samples"} <= set(events.Tags()["images"])
    assert steps_and_sizes(events, "images/samples")[1] == {grid_size(8, rows)}
    assert steps_and_sizes(events, "images/traversal")[1] == {grid_size(7, 8)}  # 8 latent dims
    content = events.PluginTagToContent(hparams_metadata.PLUGIN_NAME)[hparams_metadata.SESSION_START_INFO_TAG]
    hparams = json_format.MessageToDict(hparams_metadata.parse_session_start_info_plugin_data(content))["hparams"]
    assert own in hparams and hparams["model"].endswith(model.upper())
