"""test/inception_fid: the standard FID through torch-fidelity (an optional extra) from a local
weights file, never downloaded. The weights here are a randomly initialised torch-fidelity
InceptionV3 saved to a temporary file; every test runs with the network cut off."""

from __future__ import annotations

import socket

import pytest
import torch

from autoencoders.errors import ConfigError
from tests.evaluation.conftest import SHAPES_SETTINGS

inception_module = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any download or connection fails the test: torch-fidelity's weights URL above all."""

    def refuse(*args, **kwargs):
        pytest.fail(f"tried the network: {args[:2]}")

    monkeypatch.setattr(inception_module, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_the_guard_catches_torch_fidelity_reaching_for_its_weights_url():
    # Without a path torch-fidelity downloads; the guard above turns that into a failure, so the
    # tests below, which pass a path, would fail if any of it went to the network.
    with pytest.raises(pytest.fail.Exception, match="tried the network"):
        inception_module.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A torch-fidelity InceptionV3 state dict, randomly initialised (fan-in scaled, so features keep
    their scale through its 90-odd layers), saved as a local weights file."""
    with pytest.MonkeyPatch.context() as patch:  # built without its weights: nothing to load
        patch.setattr(inception_module, "load_state_dict_from_url", lambda *args, **kwargs: {})
        patch.setattr(inception_module.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        torch.manual_seed(0)
        network = inception_module.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    for layer in network.modules():
        if isinstance(layer, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    path = tmp_path_factory.mktemp("inception") / "inception.pth"
    torch.save(network.state_dict(), path)
    return path


def test_the_fid_of_a_set_to_itself_is_zero_and_grows_for_other_images(weights, shapes_reference):
    from autoencoders.evaluation.inception import inception_features, inception_network
    from autoencoders.evaluation.sample_quality import frechet_distance

    _, datamodule, _ = shapes_reference
    images = datamodule.pixels("test")[0]
    network = inception_network(str(weights))
    real = inception_features(network, images[:6])
    assert real.shape == (6, 2048) and real.dtype == torch.float64 and real.abs().max() > 0
    scale = float(real.var(0).sum())  # tr(Σ): the size of a distance between such sets
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-9 * scale)
    assert frechet_distance(real, inception_features(network, images[6:12])) > 0.1 * scale
    # Bytes or floats, the network sees the same uint8 pixels (as torch-fidelity wants them).
    assert torch.equal(inception_features(network, (images[:6] * 255).round().to(torch.uint8)), real)


@pytest.mark.parametrize("n", [20, 300])  # fewer samples than dimensions (the n × n route), and more
def test_the_distance_is_torch_fidelitys_fid_formula(n):
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    from autoencoders.evaluation.sample_quality import frechet_distance

    generator = torch.Generator().manual_seed(n)
    a = torch.randn(n, 64, generator=generator, dtype=torch.float64) @ torch.randn(64, 64, generator=generator).double()
    b = torch.randn(n + 5, 64, generator=generator, dtype=torch.float64) + 0.5
    theirs = fid_statistics_to_metric(fid_features_to_statistics(a), fid_features_to_statistics(b), verbose=False)
    assert frechet_distance(a, b) == pytest.approx(theirs[KEY_METRIC_FID], rel=1e-6)


def test_a_run_records_the_inception_fid_beside_the_others(weights, shapes_reference, tiny_cfg, tmp_path):
    from autoencoders.evaluation.inception import weights_digest
    from autoencoders.rundir.record import read_record
    from autoencoders.training.pipeline import train

    root, _, reference = shapes_reference
    run = tmp_path / "run"
    metrics = train(
        tiny_cfg(
            "data=shapes",
            f"data.root={root}",  # the reference network is found there, not trained again
            *(f"data.{key}={value}" for key, value in SHAPES_SETTINGS.items()),
            "model=vae",
            "model.latent_dim=4",
            "eval.fd_images=10",  # 20 images through Inception
            f"eval.inception_weights={weights}",
            "eval.disentanglement=false",
            "eval.nll_samples=0",
            "logging.projector_points=0",
        ),
        run_dir=run,
    )
    assert {"test/fd", "test/inception_fid"} <= set(metrics) and metrics["test/inception_fid"] > 0
    record = read_record(run)
    assert record["metrics"]["test/inception_fid"] == metrics["test/inception_fid"]
    used = record["evaluation"]["sample_quality"]
    assert used["inception_weights"] == weights_digest(str(weights)) and used["reference_hash"] == reference.hash


def test_a_missing_file_stops_the_run_before_it_trains(tiny_cfg, tmp_path):
    from autoencoders.rundir.record import read_record
    from autoencoders.training.pipeline import train

    run = tmp_path / "run"
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(ConfigError) as caught:
        train(tiny_cfg(f"eval.inception_weights={missing}"), run_dir=run)
    message = str(caught.value)
    assert f"eval.inception_weights={missing}: there is no such file" in message
    assert "weights-inception-2015-12-05-6726825d.pth" in message and "nothing is downloaded" in message
    assert "\n" not in message  # one paragraph
    assert read_record(run)["status"] == "failed" and not (run / "checkpoints").exists()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"not a torch file", "it cannot be read as a file of tensors"),
        ({"conv.weight": torch.zeros(3)}, "it is not an InceptionV3 state dict"),
        ({"fc.weight": torch.zeros(3, 3)}, "its tensors do not fit the network"),
    ],
)
def test_a_wrong_file_is_refused_with_what_to_do(tmp_path, content, says):
    from autoencoders.evaluation.inception import inception_network

    path = tmp_path / "wrong.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(ConfigError, match=f"eval.inception_weights={path}: {says}.*fetch it once"):
        inception_network(str(path))
