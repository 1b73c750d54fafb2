"""The data wing: dataset sources (sources.py) and the in-memory DataModule (datamodule.py).

`ImageDataModule` is importable from here because run directories made before the package was
split into wings name it `autoencoders.data.ImageDataModule` in their config.yaml.
"""

from autoencoders.data.datamodule import ImageDataModule

__all__ = ["ImageDataModule"]
