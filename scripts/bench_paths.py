"""The paths scripts/bench.py times: (a) and (a') the minimal loop, (b) the pipeline of
Diaz 2026, "Autoencoder Architecture: From Pixel Space to Latent Space",
and (c) autoencoders.training.pipeline.train() with the Interleave clock that lets the others take turns.
How they are interleaved and timed: the docstring of scripts/bench.py.
"""

from __future__ import annotations

import gzip
import shutil
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoencoders.atomic import atomic_write
from autoencoders.data.sources import DEBIAN_FASHION_MNIST, IDX_FILES
from autoencoders.machinery.optim import LR_SCHEDULES, adam
from autoencoders.nets.families import build_nets
from autoencoders.training.timing import EpochTimes


# --- (a) and (b) ----------------------------------------------------------------------------
def make_network(net: str, latent_dim: int = 32, input_shape: tuple[int, ...] = (1, 28, 28)) -> nn.Module:
    encoder, decoder = build_nets(net, input_shape, latent_dim, latent_dim)
    return nn.Sequential(encoder, decoder)


class MinimalLoop:
    """(a): one in-memory float tensor, a randperm per epoch, batches sliced from the shuffled copy.
    With plain_adam, (a'): the same loop with torch.optim.Adam's defaults, as loops are written by hand.
    `device`: where the images, the network and the optimizer live (the CPU when not given)."""

    def __init__(
        self,
        images: Tensor,
        net: str,
        latent_dim: int = 32,
        batch_size: int = 256,
        plain_adam: bool = False,
        device: torch.device | None = None,
    ) -> None:
        device = device or torch.device("cpu")
        self.images, self.batch_size = images.to(device), batch_size
        self.model = make_network(net, latent_dim, tuple(images.shape[1:])).to(device).train()
        if plain_adam:
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        else:
            self.optimizer = adam(self.model.parameters(), lr=1e-3, device=device)  # ae-train's Adam
        self.batches = self._batches()
        self.parts: dict[str, float] = defaultdict(float)  # seconds per part of a step, when timed

    def _batches(self) -> Iterator[Tensor]:
        while True:  # epoch after epoch
            shuffled = self.images[torch.randperm(len(self.images), device=self.images.device)]
            for start in range(0, len(shuffled), self.batch_size):
                yield shuffled[start : start + self.batch_size]

    def steps(self, n: int, timed: bool = False) -> int:
        """Train n steps, continuing the current epoch; returns the number of images seen."""
        seen = 0
        for _ in range(n):
            if not timed:
                x = next(self.batches)
                loss = F.mse_loss(self.model(x), x)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
            else:  # the same step with a clock between its parts (--profile)
                t0 = time.perf_counter()
                x = next(self.batches)
                t1 = time.perf_counter()
                loss = F.mse_loss(self.model(x), x)
                t2 = time.perf_counter()
                self.optimizer.zero_grad()
                loss.backward()
                t3 = time.perf_counter()
                self.optimizer.step()
                t4 = time.perf_counter()
                for part, seconds in (
                    ("data", t1 - t0),
                    ("forward", t2 - t1),
                    ("backward", t3 - t2),
                    ("optimizer", t4 - t3),
                ):
                    self.parts[part] += seconds
            seen += len(x)
        return seen


class SameWorkLoop(MinimalLoop):
    """(a+): (a) doing the work (c) does around its steps, as a careful hand loop would: the
    config's learning rate and schedule (LambdaLR stepped every step, for `total_steps`), and at
    the end of every epoch a validation pass over `val_images` in batches of 1,024 (ae-train's
    evaluation batches: forward and summed MSE on the device, one read at the end) and two
    checkpoints (weights, optimizer and schedule), best.ckpt and last.ckpt, each written as
    ae-train writes them (autoencoders.atomic.atomic_write: temp file, fsync, rename). Given
    (c)'s own splits (`ImageDataModule.pixels`), it trains and validates on (c)'s images."""

    @classmethod
    def for_config(
        cls, cfg, images: Tensor, val_images: Tensor, epochs: int, checkpoint_dir: Path, device=None
    ) -> SameWorkLoop:
        """(a+) for (c)'s composed config: its network, latent size, batch, learning rate and
        schedule, the schedule as long as `epochs` epochs of `images`."""
        batch = cfg.data.batch_size
        return cls(
            images,
            cfg.model.net,
            cfg.model.latent_dim,
            batch,
            lr=cfg.model.lr,
            schedule=cfg.model.lr_schedule,
            total_steps=epochs * -(-len(images) // batch),
            val_images=val_images,
            checkpoint_dir=checkpoint_dir,
            device=device,
        )

    def __init__(
        self,
        images: Tensor,
        net: str,
        latent_dim: int,
        batch_size: int,
        lr: float,
        schedule: str,
        total_steps: int,
        val_images: Tensor,
        checkpoint_dir: Path,
        device: torch.device | None = None,
    ) -> None:
        super().__init__(images, net, latent_dim, batch_size, device=device)
        self.val_images = val_images.to(self.images.device)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] = lr
        multiplier = LR_SCHEDULES[schedule]
        self.scheduler = (
            torch.optim.lr_scheduler.LambdaLR(self.optimizer, multiplier(total_steps)) if multiplier else None
        )
        self.checkpoint_dir = Path(checkpoint_dir)
        self.steps_per_epoch = -(-len(self.images) // batch_size)
        self.step_in_epoch = 0
        self.epoch_ends = 0  # validations (with their checkpoints) done, for tests
        self.val_loss = float("nan")

    def steps(self, n: int, timed: bool = False) -> int:
        seen = 0
        for _ in range(n):
            if timed:
                seen += super().steps(1, timed=True)
            else:  # (a)'s step, inline: a call more per step would be (a+)'s alone
                x = next(self.batches)
                loss = F.mse_loss(self.model(x), x)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                seen += len(x)
            if self.scheduler is not None:
                self.scheduler.step()
            self.step_in_epoch += 1
            if self.step_in_epoch == self.steps_per_epoch:  # the epoch's last batch: (c) validates here
                self.end_epoch()
        return seen

    def end_epoch(self) -> None:
        self.step_in_epoch = 0
        self.model.eval()
        total = torch.zeros((), device=self.images.device)
        with torch.no_grad():
            for x in self.val_images.split(1024):
                total += F.mse_loss(self.model(x), x, reduction="sum")
        self.val_loss = total.item() / self.val_images.numel()
        self.model.train()
        state = {
            "state_dict": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "val_loss": self.val_loss,
        }
        for name in ("best.ckpt", "last.ckpt"):
            with atomic_write(self.checkpoint_dir / name, "wb") as handle:
                torch.save(state, handle)
        self.epoch_ends += 1


def tutorial_root(folder: Path, source: Path = DEBIAN_FASHION_MNIST) -> Path:
    """A root that torchvision's FashionMNIST(download=False) accepts: root/FashionMNIST/raw/
    with the uncompressed idx files, unpacked from the Debian package's .gz files."""
    raw = folder / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for stem in IDX_FILES.values():
        if not (raw / stem).exists():
            if not (source / f"{stem}.gz").is_file():
                sys.exit(f"bench: {source / stem}.gz is missing; run `make data` (Debian's dataset-fashion-mnist).")
            with gzip.open(source / f"{stem}.gz", "rb") as packed, open(raw / stem, "wb") as plain:
                shutil.copyfileobj(packed, plain)
    return folder


def tutorial_images(root: Path) -> Tensor:
    """(a)'s data: the same 60,000 training images as (b), as one float tensor in [0, 1]."""
    from torchvision import datasets

    return datasets.FashionMNIST(str(root), train=True, download=False).data.unsqueeze(1).float().div_(255)


class TutorialLoop:
    """(b): the pipeline and loop of Diaz 2026's tutorial."""

    def __init__(self, root: Path, net: str, latent_dim: int = 32, batch_size: int = 256) -> None:
        from torch.utils.data import DataLoader
        from torchvision import datasets, transforms

        self.dataset = datasets.FashionMNIST(str(root), train=True, download=False, transform=transforms.ToTensor())
        self.loader = DataLoader(self.dataset, batch_size=batch_size, shuffle=True)
        self.model = make_network(net, latent_dim).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.batches = (images for _ in iter(int, 1) for images, _ in self.loader)  # epoch after epoch
        self.epoch_loss = 0.0

    def steps(self, n: int) -> int:
        seen = 0
        for _ in range(n):
            images = next(self.batches)
            loss = F.mse_loss(self.model(images), images)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.epoch_loss += loss.item() * images.size(0)
            seen += images.size(0)
        return seen


# --- (c) --------------------------------------------------------------------------------------
class Interleave(EpochTimes):
    """Runs `work(epoch)` after every `every` training steps and times each epoch without it.

    EpochTimes (callbacks=timing) keeps `marks[k]`: epoch k's start, validation start and end, and
    end. train() adds this callback after its own (its `callbacks` argument), so its hooks run
    after the progress bar and loggers but before the checkpoints (Lightning moves ModelCheckpoint
    last): checkpoint writes fall in the epoch end. `trainer` is the Trainer train() built.
    """

    def __init__(
        self,
        work: Callable[[int], None] = lambda epoch: None,
        every: int = 10,
        at_epoch_start: Callable[[int], None] = lambda epoch: None,
        at_end: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(file=None)
        self.work, self.every, self.at_epoch_start, self.at_end = work, every, at_epoch_start, at_end

    def on_train_epoch_start(self, trainer, module) -> None:
        now = time.perf_counter()  # the last epoch's end, before at_epoch_start's own work
        self.trainer = trainer
        self.at_epoch_start(trainer.current_epoch)
        super().on_train_epoch_start(trainer, module)
        if len(self.marks) > 1:
            self.marks[-2]["end"] = now

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if (batch_idx + 1) % self.every == 0:
            with self.pause():
                self.work(trainer.current_epoch)

    def on_train_end(self, trainer, module) -> None:
        super().on_train_end(trainer, module)
        self.at_end()


class EqualSteps(Interleave):
    """Interleave whose `work(epoch, steps)` also runs after the epoch's last step, and is told
    how many steps (c) took since its last turn: the other paths take as many steps as (c) in
    each of its epochs, and a path with work at its own epoch's end ((a+): 215 steps an epoch,
    as (c)) does that work in the same epoch of (c) as (c) does its own."""

    def __init__(self, work: Callable[[int, int], None], every: int = 10, **hooks: Callable) -> None:
        super().__init__(every=every, **hooks)
        self.steps_work, self.pending = work, 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.pending += 1
        if self.pending == self.every or batch_idx + 1 == trainer.num_training_batches:
            with self.pause():
                self.steps_work(trainer.current_epoch, self.pending)
            self.pending = 0


def compose_config(model: str, epochs: int, threads: int, output_root: Path):
    from hydra import compose, initialize_config_module

    with initialize_config_module("autoencoders.conf", version_base="1.3"):
        overrides = [
            f"model={model}",
            f"trainer.max_epochs={epochs}",
            f"torch_threads={threads}",
            f"output_root={output_root}",
        ]
        return compose("train", overrides=overrides)


def run_ours(cfg, run_dir: Path, clock: Interleave, **trainer_args) -> tuple[dict[str, float], float]:
    """(c): train() as users get it, plus the clock; returns its metrics and its own wall time.
    `trainer_args` are plain Trainer arguments (profiler="simple"), set in the config's free
    `trainer` mapping; the Trainer itself is `clock.trainer`."""
    from omegaconf import open_dict

    from autoencoders.training.pipeline import train

    with open_dict(cfg):
        cfg.trainer.update(trainer_args)
    start = time.perf_counter()
    metrics = train(cfg, run_dir=run_dir, overrides=[], callbacks=[clock])
    return metrics, time.perf_counter() - start - sum(mark["paused"] for mark in clock.marks)


def splits(cfg) -> tuple[Tensor, Tensor]:
    """The training and validation images of (c)'s data module, as float pixels: (a+) trains and
    validates on (c)'s own images."""
    from autoencoders.rundir.loading import instantiate

    data = instantiate(cfg.data, seed=cfg.seed)
    data.setup("fit")
    return data.pixels("train")[0], data.pixels("val")[0]
