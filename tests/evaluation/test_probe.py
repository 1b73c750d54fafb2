"""The linear probe: separable codes, and real FashionMNIST codes well above chance."""

import pytest
import torch

from autoencoders.evaluation.probe import probe_accuracy
from autoencoders.training.pipeline import train

QUIET = ["logging.projector_points=0", "logging.images_every_n_epochs=0"]


# --- linear probe ------------------------------------------------------------------------------
def test_probe_separates_linearly_separable_codes():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (600,), generator=generator)
    codes = torch.randn(600, 5, generator=generator) + 4 * torch.nn.functional.one_hot(labels, 5).float()
    assert probe_accuracy(codes[:400], labels[:400], codes[400:], labels[400:]) > 0.95


@pytest.mark.slow
def test_probe_beats_chance_on_real_fashionmnist_codes(compose_cfg, tmp_path):
    cfg = compose_cfg(
        "torch_threads=1",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=50",
        "trainer.limit_val_batches=5",
        "trainer.limit_test_batches=5",
        "trainer.enable_progress_bar=false",
        *QUIET,
    )
    metrics = train(cfg, run_dir=tmp_path)
    assert metrics["test/probe_acc"] > 0.5  # chance is 0.1 with 10 balanced classes


def test_a_probe_subset_of_one_class_is_refused_naming_the_smallest_size_that_works(tiny_cfg):
    from autoencoders.errors import ConfigError
    from autoencoders.evaluation.probe import SUBSET_SEED, check_probe_classes, subset
    from autoencoders.training.building import build_data

    datamodule = build_data(tiny_cfg())
    labels = datamodule.labels("train")
    needed = next(
        size for size in range(1, len(labels)) if len(labels[subset(len(labels), size, SUBSET_SEED)].unique()) > 1
    )
    with pytest.raises(
        ConfigError, match=rf"eval.probe_train_size=1 is too small .* Use eval.probe_train_size={needed} or more"
    ):
        check_probe_classes(1, datamodule)
    check_probe_classes(needed, datamodule)  # the size it names holds two classes
    check_probe_classes(None, datamodule)
    one_class = build_data(tiny_cfg("data.normal_classes=[4]"))
    with pytest.raises(ConfigError, match=r"the training split holds only class 4 .* Set eval.probe=false"):
        check_probe_classes(None, one_class)
