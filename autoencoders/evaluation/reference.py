"""The reference network whose features the sample-quality scores compare: a small conv
classifier trained once per dataset on its training split and its class labels (on shapes and
dsprites: the shape factor), then cached.

Two recipes, one per kind of image (RECIPES). Centred objects (FashionMNIST, MNIST, npz files)
keep the layout of the last conv map (flattened): where a feature is says what the object is.
Small sprites anywhere on a large canvas (shapes, dsprites) end in a global max pool instead, so
a shape is recognised wherever it is: flattened, the linear layer has to learn every shape at
every position, and on shapes it reached only 0.49 on the 3 shapes (docs/disentanglement.md).
Both use batch normalisation and Adam on a one-cycle schedule (Smith & Topin 2019) for a fixed
number of steps, so the cost does not grow with the training set.

The cache is `<data.root>/reference/<hash>.pt`, the hash covering the training images and labels
and the recipe, so another dataset, split or recipe gets another network. It is built under an
exclusive lock (`<hash>.lock`, flock: released by the kernel however the process ends), so two
runs starting at once train it once, and written to a temporary name then renamed, so a reader
sees a whole file or none. Training is seeded inside its own RNG scope: the run's random state,
which its checkpoints carry, is not touched.

The file holds a digest of its name and its contents (`weights_digest`), checked whenever it is
read: a file that is not whole, not readable, or not the network its name promises (another
dataset's network copied over it, weights edited) is never used, and never fails the run: it
is trained again under the lock, with a warning naming it. A file written before the digest
(recipe version 2 without it) is trained again once, the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from filelock import FileLock
from torch import Tensor, nn

from autoencoders.atomic import atomic_write, remove_dead_temp_files
from autoencoders.data.batches import to_pixels

log = logging.getLogger("autoencoders")
_COMMON = {"version": 2, "features": 128, "batch_size": 64, "lr": 3e-3, "seed": 0}
RECIPES = {
    "images": {**_COMMON, "channels": (16, 32), "pool": "flatten", "steps": 860},  # ~1 FashionMNIST epoch
    "sprites": {**_COMMON, "channels": (16, 32, 64), "pool": "global_max", "steps": 600},
}
SPRITE_SETS = ("shapes", "dsprites")
FEATURE_BATCH = 1000


def recipe_for(dataset: str) -> dict:
    """The recipe of a dataset: `sprites` for shapes and dsprites, `images` for the rest."""
    return RECIPES["sprites" if dataset in SPRITE_SETS else "images"]


class ReferenceNet(nn.Module):
    """Per entry of recipe["channels"]: Conv 3×3 + BatchNorm + ReLU + 2×2 max-pool; then the map
    flattened (or max-pooled over all positions), Linear -> 128 features (+ReLU), Linear -> classes."""

    def __init__(self, input_shape: tuple[int, int, int], n_classes: int, recipe: dict) -> None:
        super().__init__()
        channels, height, width = input_shape
        layers: list[nn.Module] = []
        for out in recipe["channels"]:
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
            layers.append(nn.MaxPool2d(2))
            channels, height, width = out, height // 2, width // 2
        if recipe["pool"] == "global_max":
            layers.append(nn.AdaptiveMaxPool2d(1))
            height = width = 1
        self.body = nn.Sequential(
            *layers, nn.Flatten(), nn.Linear(channels * height * width, recipe["features"]), nn.ReLU()
        )
        self.head = nn.Linear(recipe["features"], n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


@dataclass
class Reference:
    """A trained reference network, its test accuracy and the hash that names it."""

    net: ReferenceNet
    test_accuracy: float
    hash: str

    def features(self, images: Tensor) -> Tensor:
        """Penultimate-layer features (N, 128) of images (uint8, or floats in [0, 1]), in float64 on the CPU."""
        with torch.no_grad():
            return torch.cat([self.net.body(to_pixels(chunk)).double() for chunk in images.split(FEATURE_BATCH)])


def data_hash(train: tuple[Tensor, Tensor], input_shape: tuple[int, ...], recipe: dict) -> str:
    digest = hashlib.sha256(json.dumps({**recipe, "shape": list(input_shape)}, sort_keys=True).encode())
    for tensor in train:
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def reference_network(
    root: str | Path, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], n_classes: int, recipe: dict
) -> Reference:
    """The cached network of this training data and recipe, trained now if there is none yet."""
    input_shape = tuple(train[0].shape[1:])
    name = data_hash(train, input_shape, recipe)
    folder = Path(root).expanduser() / "reference"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pt"
    with FileLock(folder / f"{name}.lock"):  # a second run waits here, then finds the file
        remove_dead_temp_files(folder)  # a network's writing cut short by a kill
        found = read_cached(path, name, input_shape, n_classes, recipe) if path.is_file() else None
        if found is None:
            net = train_reference(input_shape, n_classes, recipe, *train)
            accuracy = accuracy_of(net, *test)
            saved = {"test_accuracy": accuracy, "recipe": recipe, "input_shape": input_shape, "n_classes": n_classes}
            saved["digest"] = weights_digest(name, net.state_dict(), saved)
            with atomic_write(path, "wb") as handle:
                torch.save({"state_dict": net.state_dict(), **saved}, handle)
            log.info("Trained the reference network %s: test accuracy %.4f (%s)", name, accuracy, path)
            found = net, accuracy
    return Reference(found[0].eval(), found[1], name)


def read_cached(
    path: Path, name: str, input_shape: tuple[int, ...], n_classes: int, recipe: dict
) -> tuple[ReferenceNet, float] | None:
    """The network and test accuracy in `path` when it is whole and the network `name` stands for
    (its digest checks out, its shape and recipe are this one's); None, with a warning naming the
    file, when not: the caller trains it again."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        problem = _problem(saved, name, (input_shape, n_classes, recipe))
        if problem is None:
            net = ReferenceNet(input_shape, n_classes, recipe)
            net.load_state_dict(saved["state_dict"])
            return net, float(saved["test_accuracy"])
    except Exception as error:  # noqa: BLE001 - garbage, a truncated zip, a foreign pickle: whatever torch says
        problem = f"it cannot be read ({type(error).__name__}: {error})"
    log.warning("The cached reference network %s is not usable: %s. Training it again.", path, problem)
    return None


FIELDS = ("test_accuracy", "recipe", "input_shape", "n_classes")  # saved beside the weights and the digest


def _problem(saved: object, name: str, expected: tuple) -> str | None:
    """Why a loaded cache file is not the network `name` of the `expected` (input shape, class
    count, recipe); None when it is."""
    missing = [key for key in ("state_dict", *FIELDS) if not isinstance(saved, dict) or key not in saved]
    if missing:
        return f"it is not a reference network file of this package (it has no {', '.join(missing)})"
    fields = {key: saved[key] for key in FIELDS}
    if "digest" not in saved:
        return "it has no digest (written by an earlier version)"
    if saved["digest"] != weights_digest(name, saved["state_dict"], fields):
        return "its digest does not match its contents: another network's file, or weights changed since"
    if _plain(fields["input_shape"], fields["n_classes"], fields["recipe"]) != _plain(*expected):
        return "it was trained for another image shape, class count or recipe"
    return None


def weights_digest(name: str, state_dict: dict[str, Tensor], fields: dict) -> str:
    """sha256 of the network's name (its data hash), its weights (each tensor's name, dtype, shape
    and bytes, in name order) and its other saved fields: a copy of another network under this
    name, or weights changed after writing, give another digest."""
    digest = hashlib.sha256(json.dumps({"name": name, **fields}, sort_keys=True, default=list).encode())
    for key in sorted(state_dict):
        tensor = state_dict[key]
        digest.update(f"{key}:{tensor.dtype}:{list(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _plain(*values: object) -> str:
    return json.dumps(values, sort_keys=True, default=list)  # tuples and lists alike


def train_reference(
    input_shape: tuple[int, ...], n_classes: int, recipe: dict, images: Tensor, labels: Tensor
) -> ReferenceNet:
    """Adam on cross-entropy, its learning rate on a one-cycle schedule over recipe["steps"] full
    batches (consecutive shuffles of the set), seeded in its own RNG scope. Gradients are on even
    inside an evaluation's no_grad block (evaluation runs it under machinery.inference.evaluating).
    On one thread, whatever the run's: a sum over another number of threads rounds otherwise, and
    one hash would name different networks (at 32 × 32 two threads gave 0.966 test accuracy where
    one gives 0.9715); a net this small loses little by it, and nothing on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(input_shape, n_classes, recipe, images, labels)
    finally:
        torch.set_num_threads(threads)


def _train(input_shape: tuple[int, ...], n_classes: int, recipe: dict, images: Tensor, labels: Tensor) -> ReferenceNet:
    steps, size = recipe["steps"], recipe["batch_size"]
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(recipe["seed"])
        net = ReferenceNet(input_shape, n_classes, recipe)  # initialised under the seed
        optimizer = torch.optim.Adam(net.parameters(), lr=recipe["lr"])
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe["lr"], total_steps=steps)
        generator = torch.Generator().manual_seed(recipe["seed"])
        shuffles = math.ceil(steps * size / len(images))
        order = torch.cat([torch.randperm(len(images), generator=generator) for _ in range(shuffles)])
        net.train()
        for batch in order[: steps * size].view(steps, size):
            loss = nn.functional.cross_entropy(net(to_pixels(images[batch])), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return net.eval()


def accuracy_of(net: ReferenceNet, images: Tensor, labels: Tensor) -> float:
    with torch.no_grad():
        predicted = torch.cat([net(to_pixels(chunk)).argmax(1) for chunk in images.split(FEATURE_BATCH)])
    return float((predicted == labels).float().mean())
