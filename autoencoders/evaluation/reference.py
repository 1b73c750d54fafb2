"""The reference network whose features the sample-quality scores compare: a small conv
classifier trained once per dataset on its training split and its class labels (on shapes and
dsprites: the shape factor), then cached.

The cache is `<data.root>/reference/<hash>.pt`, the hash covering the training images and labels
and the recipe below, so another dataset, split or recipe gets another network. It is built under
an exclusive lock (`<hash>.lock`, flock: released by the kernel however the process ends), so two
runs starting at once train it once, and written to a temporary name then renamed, so a reader
sees a whole file or none. Training is seeded inside its own RNG scope: the run's random state,
which its checkpoints carry, is not touched.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from filelock import FileLock
from torch import Tensor, nn

from autoencoders.atomic import atomic_write

log = logging.getLogger("autoencoders")
RECIPE = {"version": 1, "channels": (32, 64), "features": 128, "epochs": 3, "batch_size": 128, "lr": 1e-3, "seed": 0}
FEATURE_BATCH = 1000


class ReferenceNet(nn.Module):
    """Conv(C->32)+ReLU+pool, Conv(32->64)+ReLU+pool, Linear -> 128 features (+ReLU), Linear -> classes."""

    def __init__(self, input_shape: tuple[int, int, int], n_classes: int) -> None:
        super().__init__()
        channels, height, width = input_shape
        first, second = RECIPE["channels"]
        self.body = nn.Sequential(
            nn.Conv2d(channels, first, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(first, second, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(second * (height // 4) * (width // 4), RECIPE["features"]),
            nn.ReLU(),
        )
        self.head = nn.Linear(RECIPE["features"], n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


@dataclass
class Reference:
    """A trained reference network, its test accuracy and the hash that names it."""

    net: ReferenceNet
    test_accuracy: float
    hash: str

    def features(self, images: Tensor) -> Tensor:
        """Penultimate-layer features (N, 128) of images in [0, 1], in float64 on the CPU."""
        with torch.no_grad():
            return torch.cat([self.net.body(chunk.float()).double() for chunk in images.split(FEATURE_BATCH)])


def data_hash(train: tuple[Tensor, Tensor], input_shape: tuple[int, ...]) -> str:
    digest = hashlib.sha256(json.dumps({**RECIPE, "shape": list(input_shape)}, sort_keys=True).encode())
    for tensor in train:
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def reference_network(
    root: str | Path, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], n_classes: int
) -> Reference:
    """The cached network of this training data, trained now if there is none yet."""
    input_shape = tuple(train[0].shape[1:])
    name = data_hash(train, input_shape)
    folder = Path(root).expanduser() / "reference"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pt"
    with FileLock(folder / f"{name}.lock"):  # a second run waits here, then finds the file
        if not path.is_file():
            net = train_reference(ReferenceNet(input_shape, n_classes), *train)
            accuracy = accuracy_of(net, *test)
            with atomic_write(path, "wb") as handle:
                torch.save(
                    {
                        "state_dict": net.state_dict(),
                        "test_accuracy": accuracy,
                        "recipe": RECIPE,
                        "input_shape": input_shape,
                        "n_classes": n_classes,
                    },
                    handle,
                )
            log.info("Trained the reference network %s: test accuracy %.4f (%s)", name, accuracy, path)
    saved = torch.load(path, map_location="cpu", weights_only=True)
    net = ReferenceNet(tuple(saved["input_shape"]), saved["n_classes"])
    net.load_state_dict(saved["state_dict"])
    return Reference(net.eval(), float(saved["test_accuracy"]), name)


def train_reference(net: ReferenceNet, images: Tensor, labels: Tensor) -> ReferenceNet:
    """Adam on cross-entropy for RECIPE's epochs, seeded in its own RNG scope. Gradients are on
    even inside an evaluation's no_grad block (evaluation runs it under models.inference.evaluating)."""
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(RECIPE["seed"])
        net = ReferenceNet(tuple(images.shape[1:]), net.head.out_features)  # initialised under the seed
        optimizer = torch.optim.Adam(net.parameters(), lr=RECIPE["lr"])
        generator = torch.Generator().manual_seed(RECIPE["seed"])
        net.train()
        for _ in range(RECIPE["epochs"]):
            for batch in torch.randperm(len(images), generator=generator).split(RECIPE["batch_size"]):
                loss = nn.functional.cross_entropy(net(images[batch].float()), labels[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    return net.eval()


def accuracy_of(net: ReferenceNet, images: Tensor, labels: Tensor) -> float:
    with torch.no_grad():
        predicted = torch.cat([net(chunk.float()).argmax(1) for chunk in images.split(FEATURE_BATCH)])
    return float((predicted == labels).float().mean())
