"""A small shapes set and its reference network, trained once for the sample-quality tests
(test_sample_quality.py, test_inception_fid.py); SHAPES_SETTINGS make a run of the same data
find it in the same data.root."""

from __future__ import annotations

import pytest

SHAPES_SETTINGS = {
    "resolution": 16,
    "orientations": 8,
    "positions": 8,
    "subsample": 1500,
    "test_size": 400,
    "val_size": 100,
}


@pytest.fixture(scope="package")
def shapes_reference(tmp_path_factory):
    """(data.root, its DataModule, the reference network on its shape factor)."""
    from autoencoders.data import ImageDataModule
    from autoencoders.evaluation.reference import recipe_for, reference_network

    root = tmp_path_factory.mktemp("data")
    datamodule = ImageDataModule(name="shapes", root=str(root), **SHAPES_SETTINGS)
    datamodule.setup("fit")
    train, test = datamodule.stored("train"), datamodule.stored("test")
    return root, datamodule, reference_network(root, train, test, 3, recipe_for("shapes"))
