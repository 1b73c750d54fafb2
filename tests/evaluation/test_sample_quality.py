"""Sample quality: the Fréchet distance against its closed form, precision/recall at their
extremes, the reference network's cache, and the scores of a run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg

from autoencoders.evaluation.reference import RECIPES, recipe_for, reference_network
from autoencoders.evaluation.sample_quality import frechet_distance, precision_recall


def test_the_distance_of_a_set_to_itself_is_zero():
    features = np.random.default_rng(0).standard_normal((500, 16)) @ np.random.default_rng(1).standard_normal((16, 16))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)


def test_two_gaussian_samples_match_the_closed_form_within_d_over_n():
    rng = np.random.default_rng(2)
    d, n = 8, 20_000
    mean_a, mean_b = rng.standard_normal(d), rng.standard_normal(d)
    shape_a, shape_b = rng.standard_normal((d, d)) / 2, rng.standard_normal((d, d)) / 2
    cov_a, cov_b = shape_a @ shape_a.T + np.eye(d) * 0.1, shape_b @ shape_b.T + np.eye(d) * 0.1
    closed = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * linalg.sqrtm(cov_a @ cov_b).real)
    a = rng.multivariate_normal(mean_a, cov_a, n)
    b = rng.multivariate_normal(mean_b, cov_b, n)
    # The estimate's bias and spread are O(d/n) of the covariances' scale (traces ~ d).
    scale = np.trace(cov_a) + np.trace(cov_b)
    assert abs(frechet_distance(a, b) - closed) < 10 * d / n * scale + 0.02 * closed
    assert frechet_distance(a, a + 3.0) == pytest.approx(9.0 * d, rel=1e-6)  # a shift: only the means differ


def test_fewer_samples_than_dimensions_take_the_n_by_n_route_to_the_same_distance():
    import autoencoders.evaluation.sample_quality as module

    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((12, 40)) * 2.0, rng.standard_normal((15, 40)) + 0.3
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    by_samples = module._trace_root_from_samples(a - a.mean(0), b - b.mean(0))
    # the d × d square root, rank-deficient here: its rounding is larger, its value the same
    assert by_samples == pytest.approx(np.trace(linalg.sqrtm(cov_a @ cov_b)).real, rel=1e-5)
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * by_samples
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-12)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_precision_and_recall_are_one_for_identical_sets_and_zero_when_separated():
    real = torch.randn(300, 5, generator=torch.Generator().manual_seed(3))
    assert precision_recall(real, real.clone()) == (1.0, 1.0)
    far = real + 1000.0  # beyond every k-NN radius of either set
    assert precision_recall(real, far) == (0.0, 0.0)
    # half of the fakes in the real cloud, half far away: precision 1/2, recall still 1
    half = torch.cat([real[:150], far[150:]])
    precision, recall = precision_recall(real, half)
    assert precision == pytest.approx(0.5) and recall < 1.0


def blurred(images: torch.Tensor, sigma: float) -> torch.Tensor:
    from torchvision.transforms.functional import gaussian_blur

    return images if sigma == 0 else gaussian_blur(images, kernel_size=9, sigma=sigma)


def test_the_reference_network_is_cached_under_its_hash_and_reused(shapes_reference, monkeypatch):
    import autoencoders.evaluation.reference as reference_module

    root, datamodule, reference = shapes_reference
    assert sorted(path.name for path in (root / "reference").iterdir()) == [
        f"{reference.hash}.lock",
        f"{reference.hash}.pt",
    ]
    # 16 × 16 sprites, the smallest 3 pixels wide: the translation-invariant recipe still tells the
    # shapes apart (the flattened one of version 1 reached 0.44 here, chance being 1/3).
    assert reference.test_accuracy >= 0.8
    monkeypatch.setattr(reference_module, "train_reference", lambda *args: pytest.fail("retrained"))
    train, test = datamodule.stored("train"), datamodule.stored("test")
    again = reference_network(root, train, test, 3, recipe_for("shapes"))
    assert again.hash == reference.hash and again.test_accuracy == reference.test_accuracy
    images = datamodule.pixels("test")[0][:50]
    assert torch.equal(again.features(images), reference.features(images))
    assert torch.equal(again.features((images * 255).round().to(torch.uint8)), reference.features(images))  # bytes too
    # Another network for other data, another recipe, or another version of this one (old caches stay unread).
    other = (train[0][:-1], train[1][:-1])
    assert reference_module.data_hash(other, (1, 16, 16), recipe_for("shapes")) != reference.hash
    assert reference_module.data_hash(train, (1, 16, 16), RECIPES["images"]) != reference.hash
    assert reference_module.data_hash(train, (1, 16, 16), {**recipe_for("shapes"), "version": 1}) != reference.hash


def test_the_network_trains_on_one_thread_and_gives_the_run_its_threads_back(monkeypatch):
    import autoencoders.evaluation.reference as reference_module

    seen = []
    monkeypatch.setattr(reference_module, "_train", lambda *args: seen.append(torch.get_num_threads()) or "trained")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert reference_module.train_reference((1, 8, 8), 3, recipe_for("shapes"), None, None) == "trained"
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_distance_grows_with_gaussian_blur(shapes_reference):
    _, datamodule, reference = shapes_reference
    images = datamodule.pixels("test")[0]
    real = reference.features(images)
    distances = [
        frechet_distance(real, reference.features(blurred(images, sigma))) for sigma in (0, 0.5, 1.0, 2.0, 3.0)
    ]
    assert distances[0] == pytest.approx(0.0, abs=1e-6)
    assert all(later > earlier for earlier, later in zip(distances, distances[1:])), distances


def test_a_run_records_the_scores_and_the_reference_network(tiny_cfg, tmp_path):
    from autoencoders.rundir.record import read_record
    from autoencoders.training.pipeline import train

    run = tmp_path / "run"
    # A fresh data.root: the reference network is trained inside the evaluation (under no_grad).
    metrics = train(
        tiny_cfg(
            "data=shapes",
            f"data.root={tmp_path / 'data'}",
            "data.resolution=16",
            "data.orientations=8",
            "data.positions=8",
            "data.subsample=1100",
            "data.test_size=200",
            "data.val_size=100",
            "model=vae",
            "model.latent_dim=4",
            "eval.fd_images=150",
            "eval.disentanglement=false",
            "eval.nll_samples=0",
            "logging.projector_points=0",
        ),
        run_dir=run,
    )
    assert {"test/fd", "test/precision", "test/recall", "test/recon_fd"} <= set(metrics)
    assert metrics["test/fd"] > 0 and 0 <= metrics["test/precision"] <= 1 and 0 <= metrics["test/recall"] <= 1
    used = read_record(run)["evaluation"]["sample_quality"]
    assert used["images"] == 150 and used["k"] == 3 and 0 < used["reference_test_accuracy"] <= 1
    assert [path.name for path in (tmp_path / "data" / "reference").glob("*.pt")] == [f"{used['reference_hash']}.pt"]


@pytest.mark.slow
def test_the_reference_network_reaches_088_on_fashionmnist(tmp_path):
    from autoencoders.data import ImageDataModule

    datamodule = ImageDataModule(name="fashionmnist", download=False)
    datamodule.setup("fit")
    # Trained from scratch as on a fresh machine (a cache of its own, not the default data.root's).
    train, test = datamodule.stored("train"), datamodule.stored("test")
    reference = reference_network(tmp_path, train, test, 10, recipe_for("fashionmnist"))
    assert reference.test_accuracy >= 0.88
    assert [path.name for path in (tmp_path / "reference").glob("*.pt")] == [f"{reference.hash}.pt"]


def test_a_run_waits_for_the_lock_and_reuses_the_network_another_run_built(shapes_reference, tmp_path, monkeypatch):
    import fcntl
    import shutil
    import threading

    import autoencoders.evaluation.reference as reference_module

    source_root, datamodule, reference = shapes_reference
    folder = tmp_path / "reference"
    folder.mkdir()
    # "Another run" holds the lock (flock locks belong to an open file, so this blocks the thread too).
    holder = open(folder / f"{reference.hash}.lock", "a")  # noqa: SIM115 (held open across the test)
    fcntl.flock(holder, fcntl.LOCK_EX)
    monkeypatch.setattr(reference_module, "train_reference", lambda *args: pytest.fail("built a second network"))
    found = {}
    waiting = threading.Thread(
        target=lambda: found.update(
            net=reference_network(
                tmp_path, datamodule.stored("train"), datamodule.stored("test"), 3, recipe_for("shapes")
            )
        )
    )
    waiting.start()
    # The other run finishes its network, then lets go of the lock; only then may the thread look.
    shutil.copy(source_root / "reference" / f"{reference.hash}.pt", folder / f"{reference.hash}.pt")
    fcntl.flock(holder, fcntl.LOCK_UN)
    holder.close()
    waiting.join()
    assert found["net"].hash == reference.hash and found["net"].test_accuracy == reference.test_accuracy
