"""The evaluations' shared passes (machinery/passes.py): each split encoded once, the same numbers as
separate passes, and one pass for a run's latent views and evaluations after testing."""

import lightning as L
import torch

from autoencoders.data import ImageDataModule
from autoencoders.evaluation.anomaly import anomaly_metrics
from autoencoders.evaluation.probe import probe_accuracy, subset
from autoencoders.evaluation.suite import evaluate_model, shared_passes
from autoencoders.machinery import passes as passes_module
from autoencoders.machinery.passes import SplitPasses, passes_of, per_image_mse
from autoencoders.models.autoencoder import Autoencoder
from autoencoders.rundir.record import read_record
from autoencoders.training.pipeline import train


def model_and_data(**data_arguments):
    L.seed_everything(0, verbose=False)
    data = ImageDataModule(name="synthetic", val_size=64, **data_arguments)
    data.setup()
    return Autoencoder(list(data.input_shape), net="mlp", latent_dim=4).eval(), data


def counting(model, counts):
    """Count the images each call of model.encode gets."""
    encode = model.encode
    model.encode = lambda x, *given: (counts.append(len(x)), encode(x, *given))[1]


@torch.no_grad()
def test_a_split_is_encoded_once_and_gives_the_numbers_of_separate_passes():
    model, data = model_and_data()
    counts = []
    counting(model, counts)
    passes = SplitPasses(model, data)
    codes, errors = passes.codes("test"), passes.errors("test")
    chosen = torch.tensor([5, 2, 200])
    assert torch.equal(passes.codes("test", chosen), codes[chosen])  # read from the whole split's codes
    reconstructions = passes.reconstructions("test", chosen)
    train_chosen = subset(448, 100, seed=0)
    assert torch.equal(passes.codes("train", train_chosen), passes.codes("train", train_chosen.clone()))
    assert counts == [256, 100] and passes.encoded == 356  # test once (errors decode its codes), the subset once
    images, _ = data.pixels("test")
    assert torch.equal(codes, model.encode(images)) and torch.equal(
        errors, per_image_mse(model.reconstruct(images), images)
    )
    assert torch.equal(reconstructions, model.decode(codes[chosen]))
    assert torch.allclose(reconstructions, model.reconstruct(images[chosen]), rtol=1e-6, atol=1e-7)
    assert torch.equal(passes.codes("train", train_chosen), model.encode(data.pixels("train", train_chosen)[0]))


@torch.no_grad()
def test_a_model_whose_reconstruct_is_its_own_is_reconstructed_by_it():
    class Halved(Autoencoder):
        def reconstruct(self, x):
            return super().reconstruct(x) / 2

    L.seed_everything(0, verbose=False)
    _, data = model_and_data()
    model = Halved(list(data.input_shape), net="mlp", latent_dim=4).eval()
    images, _ = data.pixels("val")
    assert torch.equal(SplitPasses(model, data).errors("val"), per_image_mse(model.reconstruct(images), images))


def test_the_evaluations_share_one_pass_and_score_as_separate_passes(tmp_path):
    model, data = model_and_data(holdout_class=3)
    settings = {"probe": True, "anomaly": "auto", "anomaly_images": 0, "nll_samples": 0}
    counts = []
    counting(model, counts)
    with shared_passes(settings, model, data) as shared:
        assert passes_of(model, data) is shared and passes_of(model, ImageDataModule(name="synthetic")) is not shared
        metrics = evaluate_model(settings, model, data)
    assert passes_of(model, data) is not shared  # the block is over: nothing is reused with other weights
    n_train, n_val, n_test = (len(data.labels(split)) for split in ("train", "val", "test"))
    # Each split once (the probe's training subset is all 397 normal images); nothing else asked for a pass.
    assert sorted(counts) == sorted([n_train, n_val, n_test]) and shared.encoded == n_train + n_val + n_test
    # The same numbers from a pass per evaluation, as they were computed before they shared one.
    with torch.no_grad():
        (train_images, train_labels), (test_images, test_labels) = data.pixels("train"), data.pixels("test")
        known = torch.isin(test_labels, train_labels.unique())
        accuracy = probe_accuracy(
            model.encode(train_images), train_labels, model.encode(test_images[known]), test_labels[known]
        )
        val_images = data.pixels("val")[0]
        errors = [per_image_mse(model.reconstruct(x), x) for x in (test_images, val_images)]
    assert metrics == {"test/probe_acc": accuracy, **anomaly_metrics(errors[0], test_labels == 3, errors[1])}


def test_a_runs_latent_views_and_evaluations_share_the_tested_weights_pass(tiny_cfg, tmp_path, monkeypatch):
    made, loaded = [], []
    monkeypatch.setattr(passes_module, "SplitPasses", type("Recorded", (SplitPasses,), {"__init__": record(made)}))
    load = torch.load
    monkeypatch.setattr(
        torch, "load", lambda f, *args, **kwargs: (loaded.append(name_of(f)), load(f, *args, **kwargs))[1]
    )
    train(tiny_cfg("logging.projector_points=100", "logging.images_every_n_epochs=0"), run_dir=tmp_path)
    data = read_record(tmp_path)["data"]
    assert len(made) == 1  # the views after testing (a subset of the test codes) and the probe: one pass
    assert made[0].encoded == data["test"] + min(data["train"], 10_000)
    # No checkpoint read twice: the tested one once, by the test (the record takes what it loaded).
    assert [name for name in loaded if name.endswith(".ckpt")] == [str(tmp_path / "checkpoints" / "best.ckpt")]


def name_of(file) -> str:
    """The path torch.load reads: a path, or an open file's (Lightning opens checkpoints with fsspec)."""
    return str(getattr(file, "path", None) or getattr(file, "name", file))


def record(made):
    def __init__(self, *args, **kwargs):
        SplitPasses.__init__(self, *args, **kwargs)
        made.append(self)

    return __init__
