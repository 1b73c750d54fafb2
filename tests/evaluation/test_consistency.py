"""Class consistency: a pixel classifier's verdict on samples asked for each class."""

import pytest
import torch

from autoencoders.data import ImageDataModule
from autoencoders.evaluation.consistency import class_consistency


class ImagesOfClass:
    """A stand-in conditional model whose samples are test images of the class asked for plus
    `shift` (0: faithful, 1: always the next class)."""

    conditional = True

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, shift: int) -> None:
        self.images, self.labels, self.shift = images, labels, shift

    def sample(self, n: int, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        wanted = (y + self.shift) % 10
        picks = [torch.nonzero(self.labels == k).flatten() for k in wanted.tolist()]
        return torch.stack([self.images[p[torch.randint(len(p), (1,), generator=generator)]][0] for p in picks])


@pytest.fixture(scope="module")
def data() -> ImageDataModule:
    datamodule = ImageDataModule(name="synthetic", val_size=64)
    datamodule.setup()
    return datamodule


def test_samples_of_the_asked_class_score_high_and_of_another_class_low(data):
    test_images, test_labels = data.pixels("test")
    faithful = class_consistency(ImagesOfClass(test_images, test_labels, 0), data.pixels("train"), per_class=20)
    shifted = class_consistency(ImagesOfClass(test_images, test_labels, 1), data.pixels("train"), per_class=20)
    assert faithful > 0.8 and shifted < 0.2, (faithful, shifted)


def test_only_classes_the_classifier_saw_are_asked_for(data):
    images, labels = data.pixels("train")
    keep = labels < 5  # as with data.normal_classes: the classifier never sees classes 5..9
    asked = []

    class Recording(ImagesOfClass):
        def sample(self, n, y, generator):
            asked.append(y)
            return super().sample(n, y, generator)

    class_consistency(Recording(*data.pixels("test"), 0), (images[keep], labels[keep]), per_class=3)
    assert asked[0].tolist() == [k for k in range(5) for _ in range(3)]
