"""Training speed of `ae-train` beside a minimal PyTorch loop and tutorial 000 (`make bench`).

Four paths train the same network (autoencoders.nets.build_nets, latent 32) with Adam, MSE,
batch 256, the same torch thread count and flushed denormals (autoencoders.train.set_up_torch,
set before any thread starts) on FashionMNIST:

  (a) minimal: the train split as one float tensor in memory; per epoch one randperm, then
      batches are slices of the shuffled copy; Adam lr 1e-3, built as ae-train builds it
      (fused kernel, autoencoders.models.base.adam). The reference limit on a CPU.
  (a') the same loop with torch.optim.Adam's defaults (one small op per tensor per update),
      as a loop written by hand usually has it: what users compare ae-train with.
  (b) tutorial 000: torchvision FashionMNIST + ToTensor + DataLoader(shuffle=True) and the
      tutorial's loop (with its loss.item() per step and its plain torch.optim.Adam).
  (c) ours as users run it: autoencoders.train.train() on the default config (overrides: only
      the model, trainer.max_epochs, torch_threads, output_root), so validation, checkpoints,
      TensorBoard scalars and images and the progress bar are all on, as `ae-train` has them.
      Its optimizer settings are the config's (lr, schedule): the same work per step.

How they are interleaved and timed. This 2-core machine is shared: the same step takes 9 ms or
480 ms depending on other jobs, and the load changes within seconds, so whole epochs taken in
turn gave per-epoch ratios anywhere from 0.06 to 21. So the paths take turns every `--chunk`
(10) training steps instead: train() accepts no callbacks, so while it runs `lightning.Trainer`
is replaced by a subclass that appends one callback, Interleave, which after every 10th
training step of (c) runs 10 steps of (a), (a') and (b) in turn, each timed on its own (turns of
50 steps gave the same ratios, so switching models costs no measurable cache warm-up). Each epoch
of (c) is one repetition: its time runs from one `on_train_epoch_start` to the next (or to
`on_train_end`) minus the time spent in the others, so it holds everything users pay per epoch:
training steps, progress bar, logging, validation of 5,000 images, image grids, checkpoint
writes. Images/s count training images (55,000 per epoch for (c); its validation split is held
out), so validation time is paid, not credited. The other paths' steps done during that epoch form
their figures of the repetition (their epoch boundaries, reshuffles included, fall inside).
Repetition 0 is the warm-up; figures are medians over the rest, ratios medians of the
per-repetition ratios. What happens once per run (data loading, sanity check, test,
metrics.json) is reported separately as (c)'s fixed cost.

Peak RSS is that of a separate `ae-train trainer.max_epochs=1` process (ru_maxrss, taken by a
small launcher process; see RSS_LAUNCHER); `ae-train --help` is timed as a subprocess, median
of five.

  .venv/bin/python scripts/bench.py                       # speed table -> bench/results.md
  .venv/bin/python scripts/bench.py --epochs 3 --models mlp --threads 1
  .venv/bin/python scripts/bench.py --quality             # 20-epoch test/mse vs tutorial 000
  .venv/bin/python scripts/bench.py --profile             # where (c)'s milliseconds go vs (a)
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import gzip
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

from autoencoders.datasets import DEBIAN_FASHION_MNIST, IDX_FILES
from autoencoders.models.base import adam
from autoencoders.train import set_up_torch
from autoencoders.nets import build_nets

ROOT = Path(__file__).resolve().parents[1]
PATHS = ("a", "a'", "b", "c")
TARGETS = {"mlp": {"c/a": 0.90, "c/b": 5.0}, "conv": {"c/a": 0.95}}
HELP_SECONDS, PEAK_RSS_MB = 3.0, 2048
TUTORIAL_TEST_MSE = {"mlp": 0.010985, "conv": 0.007925}  # tutorial 000, one test batch of 256


# --- (a) and (b) ----------------------------------------------------------------------------
def make_network(net: str, latent_dim: int = 32) -> nn.Module:
    encoder, decoder = build_nets(net, (1, 28, 28), latent_dim, latent_dim)
    return nn.Sequential(encoder, decoder)


class MinimalLoop:
    """(a): one in-memory float tensor, a randperm per epoch, batches sliced from the shuffled copy.
    With plain_adam, (a'): the same loop with torch.optim.Adam's defaults, as loops are written by hand."""

    def __init__(self, images: Tensor, net: str, latent_dim: int = 32, batch_size: int = 256, plain_adam: bool = False) -> None:
        self.images, self.batch_size = images, batch_size
        self.model = make_network(net, latent_dim).train()
        if plain_adam:
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        else:
            self.optimizer = adam(self.model.parameters(), lr=1e-3, device=torch.device("cpu"))  # ae-train's Adam
        self.batches = self._batches()
        self.parts: dict[str, float] = defaultdict(float)  # seconds per part of a step, when timed

    def _batches(self) -> Iterator[Tensor]:
        while True:  # epoch after epoch
            shuffled = self.images[torch.randperm(len(self.images))]
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
                for part, seconds in (("data", t1 - t0), ("forward", t2 - t1), ("backward", t3 - t2), ("optimizer", t4 - t3)):
                    self.parts[part] += seconds
            seen += len(x)
        return seen


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
    """(b): tutorial 000's pipeline and loop."""

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
class Interleave(Callback):
    """Runs `work(epoch)` after every `every` training steps and times each epoch without it.

    `marks[k]` holds epoch k's start, validation start and end, and end. This callback comes
    after train()'s own, so its hooks run after the progress bar and loggers but before the
    checkpoints (Lightning moves ModelCheckpoint last): checkpoint writes fall in the epoch end.
    """

    def __init__(self, work: Callable[[int], None] = lambda epoch: None, every: int = 10,
                 at_epoch_start: Callable[[int], None] = lambda epoch: None, at_end: Callable[[], None] = lambda: None) -> None:  # fmt: skip
        self.work, self.every, self.at_epoch_start, self.at_end = work, every, at_epoch_start, at_end
        self.marks: list[dict[str, float]] = []
        self.images_per_epoch = 0

    def on_train_epoch_start(self, trainer, module) -> None:
        now = time.perf_counter()
        if self.marks:
            self.marks[-1]["end"] = now
        self.images_per_epoch = len(trainer.train_dataloader.dataset)
        self.at_epoch_start(trainer.current_epoch)
        self.marks.append({"start": time.perf_counter(), "paused": 0.0})

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if (batch_idx + 1) % self.every == 0:
            start = time.perf_counter()
            self.work(trainer.current_epoch)
            self.marks[-1]["paused"] += time.perf_counter() - start

    def on_validation_start(self, trainer, module) -> None:
        if not trainer.sanity_checking and self.marks:
            self.marks[-1]["val_start"] = time.perf_counter()

    def on_validation_end(self, trainer, module) -> None:
        if not trainer.sanity_checking and self.marks:
            self.marks[-1]["val_end"] = time.perf_counter()

    def on_train_end(self, trainer, module) -> None:
        self.marks[-1]["end"] = time.perf_counter()
        self.at_end()

    @property
    def seconds(self) -> list[float]:
        """Each epoch's own wall time (without the interleaved work)."""
        return [mark["end"] - mark["start"] - mark["paused"] for mark in self.marks]

    def phase_seconds(self, epochs: slice) -> dict[str, float]:
        """Seconds in training steps, validation and epoch end, summed over the epochs."""
        marks = self.marks[epochs]
        return {
            "train": sum(m.get("val_start", m["end"]) - m["start"] - m["paused"] for m in marks),
            "validation": sum(m.get("val_end", 0.0) - m.get("val_start", 0.0) for m in marks),
            "epoch end": sum(m["end"] - m.get("val_end", m["end"]) for m in marks),
        }


@contextmanager
def trainer_with(callbacks: list[Callback], **trainer_args) -> Iterator[None]:
    """Within the block, every lightning.Trainer that train() builds also gets these callbacks."""
    original, extra = lightning.Trainer, list(callbacks)

    class BenchTrainer(original):
        def __init__(self, *args, callbacks=None, **kwargs) -> None:
            given = [callbacks] if isinstance(callbacks, Callback) else list(callbacks or [])
            super().__init__(*args, callbacks=[*given, *extra], **kwargs, **trainer_args)

    lightning.Trainer = BenchTrainer
    try:
        yield
    finally:
        lightning.Trainer = original


def compose_config(model: str, epochs: int, threads: int, output_root: Path):
    from hydra import compose, initialize_config_module

    with initialize_config_module("autoencoders.conf", version_base="1.3"):
        overrides = [f"model={model}", f"trainer.max_epochs={epochs}", f"torch_threads={threads}", f"output_root={output_root}"]
        return compose("train", overrides=overrides)


def run_ours(cfg, run_dir: Path, clock: Interleave, **trainer_args) -> tuple[dict[str, float], float]:
    """(c): train() as users get it, plus the clock; returns its metrics and its own wall time."""
    from autoencoders.train import train

    start = time.perf_counter()
    with trainer_with([clock], **trainer_args):
        metrics = train(cfg, run_dir=run_dir, overrides=[])
    return metrics, time.perf_counter() - start - sum(mark["paused"] for mark in clock.marks)


# --- the speed table --------------------------------------------------------------------------
def speed(model: str, args: argparse.Namespace, images: Tensor, root: Path, tmp: Path) -> dict:
    """(a), (b), (c) of one model, interleaved; images/s of each per epoch of (c)."""
    cfg = compose_config(model, args.epochs + 1, args.threads, tmp)
    loops = {"a": MinimalLoop(images, cfg.model.net, cfg.model.latent_dim, cfg.data.batch_size),
             "a'": MinimalLoop(images, cfg.model.net, cfg.model.latent_dim, cfg.data.batch_size, plain_adam=True),
             "b": TutorialLoop(root, cfg.model.net, cfg.model.latent_dim, cfg.data.batch_size)}  # fmt: skip
    done = defaultdict(lambda: [0, 0.0])  # (path, epoch) -> [images, seconds]

    def work(epoch: int) -> None:
        for name, loop in loops.items():
            start = time.perf_counter()
            done[name, epoch][0] += loop.steps(args.chunk)
            done[name, epoch][1] += time.perf_counter() - start

    clock = Interleave(work, args.chunk)
    _, total = run_ours(cfg, tmp / f"run-{model}", clock)
    rates = {name: [done[name, epoch][0] / done[name, epoch][1] for epoch in range(args.epochs + 1)] for name in loops}
    rates["c"] = [clock.images_per_epoch / seconds for seconds in clock.seconds]
    for epoch in range(args.epochs + 1):
        print(f"  {model} epoch {epoch}{' (warm-up)' if epoch == 0 else ''}: "
              + "  ".join(f"({name}) {rates[name][epoch]:8,.0f} img/s" for name in PATHS), flush=True)  # fmt: skip
    measured = {name: values[1:] for name, values in rates.items()}  # epoch 0 is the warm-up
    ratios = {f"c/{ref}": [c / r for c, r in zip(measured["c"], measured[ref])] for ref in ("a", "a'", "b")}
    return {
        "rates": {name: statistics.median(values) for name, values in measured.items()},
        **{key: statistics.median(values) for key, values in ratios.items()},
        "spread": {key: (min(values), max(values)) for key, values in ratios.items()},
        "fixed": total - sum(clock.seconds),
    }


def time_help(repeats: int = 5) -> float:
    command = [str(Path(sys.executable).with_name("ae-train")), "--help"]
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        durations.append(time.perf_counter() - start)
    return statistics.median(durations)


# Runs a command and prints its peak RSS. A small process of its own: a child's ru_maxrss
# starts from the RSS of the process it was forked from (Linux keeps the pre-exec high-water
# mark), so measured from this bench, with gigabytes of its own, it would report ours.
RSS_LAUNCHER = """import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)"""


def peak_rss_mb(threads: int, output_root: Path) -> float:
    """Peak RSS of a separate default run (one epoch: data and model set the peak, not epochs)."""
    command = [str(Path(sys.executable).with_name("ae-train")), "trainer.max_epochs=1", f"torch_threads={threads}",
               f"output_root={output_root}"]  # fmt: skip
    done = subprocess.run([sys.executable, "-c", RSS_LAUNCHER, *command], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench: `{' '.join(command)}` failed with exit code {done.returncode}")
    return int(done.stdout) / 1024  # kilobytes on Linux


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    return "met" if (value >= target if higher_is_better else value < target) else "**not met**"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    git = lambda *args: subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: E731
    commit = git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, torch {torch.__version__}, "
            f"lightning {lightning.__version__}, code at {commit}")  # fmt: skip


def speed_markdown(results: dict[str, dict], help_s: float, rss_mb: float, args: argparse.Namespace, loads: tuple) -> str:
    lines = [
        "## Speed", "",
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}; {machine()}; torch threads {args.threads} and flushed denormals in all paths; "
        f"load average (1 min) {loads[0]:.1f} at start, {loads[1]:.1f} at end. FashionMNIST, batch 256; the paths take "
        f"turns every {args.chunk} steps; medians of {args.epochs} epochs of (c) after 1 warm-up (method: the docstring "
        "of `scripts/bench.py`).", "",
        "| model | (a) minimal loop, img/s | (a′) plain Adam, img/s | (b) tutorial 000, img/s | (c) ae-train, img/s "
        "| (c)/(a) (range) | target | (c)/(a′) (range) | | (c)/(b) (range) | target | (c) fixed cost per run |",
        "|---|---:|---:|---:|---:|---:|---|---:|---|---:|---|---:|",
    ]  # fmt: skip
    for model, result in results.items():
        rate, targets = result["rates"], TARGETS.get(model, {})
        cells = [model, *(f"{rate[k]:,.0f}" for k in PATHS)]
        for key in ("c/a", "c/a'", "c/b"):
            target, (low, high) = targets.get(key), result["spread"][key]
            cells += [f"{result[key]:.2f} ({low:.2f}–{high:.2f})", f"≥ {target:g}: {verdict(result[key], target)}" if target else "—"]
        lines.append("| " + " | ".join([*cells, f"{result['fixed']:.1f} s"]) + " |")
    lines += [
        "", "| check | measured | target | |", "|---|---:|---|---|",
        f"| `ae-train --help` (median of 5) | {help_s:.2f} s | < {HELP_SECONDS:.0f} s | {verdict(help_s, HELP_SECONDS, False)} |",
        f"| peak RSS of `ae-train trainer.max_epochs=1` | {rss_mb:,.0f} MB | < 2 GB | {verdict(rss_mb, PEAK_RSS_MB, False)} |",
        "", "(a) builds Adam as ae-train does (PyTorch's fused kernel), so (c)/(a) is the cost of the framework alone; "
        "(a′) is the same loop with `torch.optim.Adam`'s defaults, as hand-written loops and tutorial 000 have it.",
        "", "(c) counts the 55,000 training images of an epoch, and its epoch time includes validation, checkpoints, "
        "logging, TensorBoard images and the progress bar. Its fixed cost (data loading, sanity check, test, files) "
        "is paid once per run and is not in the per-epoch figures. Ratios are medians of the per-epoch ratios "
        "(range: lowest to highest epoch). Targets are benchmark figures, not tests.", "",
    ]  # fmt: skip
    return "\n".join(lines)


def write_section(path: Path, name: str, text: str) -> None:
    """Replace (or add) one `<!-- bench:name -->` section of the results file, keeping the others."""
    header = "# Benchmarks\n\nWritten by `make bench` (`scripts/bench.py`); `--quality` adds the second table.\n\n"
    old = path.read_text() if path.exists() else header
    parts = re.split(r"^<!-- bench:(\w+) -->\n", old, flags=re.M)
    sections = dict(zip(parts[1::2], parts[2::2]))
    sections[name] = text.rstrip("\n") + "\n\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f"<!-- bench:{key} -->\n{sections[key]}" for key in ("speed", "quality") if key in sections)
    path.write_text(parts[0] + body.rstrip("\n") + "\n")


# --- --quality and --profile ------------------------------------------------------------------
def quality(args: argparse.Namespace, tmp: Path) -> str:
    lines = ["## Quality", "",
             f"{datetime.datetime.now():%Y-%m-%d %H:%M}; `ae-train model=<model> trainer.max_epochs={args.quality_epochs}` "
             f"(default config otherwise), torch threads {args.threads}; {machine()}. Tutorial 000's figure is the MSE of "
             "one test batch of 256 images after 20 epochs; ours is over all 10,000 test images, with the checkpoint of "
             "lowest val/loss.", "",
             "| model | epochs | test/mse (ours) | tutorial 000 | wall time |", "|---|---:|---:|---:|---:|"]  # fmt: skip
    for model in args.models:
        start = time.perf_counter()
        metrics, _ = run_ours(compose_config(model, args.quality_epochs, args.threads, tmp), tmp / f"quality-{model}", Interleave())
        seconds = time.perf_counter() - start
        print(f"{model}: test/mse {metrics['test/mse']:.6f} (tutorial 000: {TUTORIAL_TEST_MSE[model]}) in {seconds:.0f} s", flush=True)
        lines.append(f"| {model} | {args.quality_epochs} | {metrics['test/mse']:.6f} | {TUTORIAL_TEST_MSE[model]} | {seconds:.0f} s |")
    return "\n".join(lines) + "\n"


def profile(args: argparse.Namespace, images: Tensor, tmp: Path) -> None:
    """Per-step milliseconds of (c) by Lightning's SimpleProfiler beside a timed (a), interleaved
    as in the speed table; then a cProfile of one more (c) epoch."""
    from lightning.pytorch.profilers import SimpleProfiler

    epochs = args.profile_epochs
    cfg = compose_config(args.profile_model, epochs + 1, args.threads, tmp)
    minimal = MinimalLoop(images, cfg.model.net, cfg.model.latent_dim, cfg.data.batch_size)
    simple = SimpleProfiler()
    first: dict[str, int] = {}  # per action: index of its first call after the warm-up epoch
    last: dict[str, int] = {}  # ... and after the last training epoch (test and teardown follow)
    a_done = defaultdict(lambda: [0, 0.0])  # epoch -> [images, seconds]

    def work(epoch: int) -> None:
        start = time.perf_counter()
        a_done[epoch][0] += minimal.steps(args.chunk, timed=True)
        a_done[epoch][1] += time.perf_counter() - start

    def at_epoch_start(epoch: int) -> None:
        if epoch == 1:  # drop the warm-up epoch from both
            minimal.parts.clear()
            first.update({action: len(durations) for action, durations in simple.recorded_durations.items()})

    def at_end() -> None:
        last.update({action: len(durations) for action, durations in simple.recorded_durations.items()})

    clock = Interleave(work, args.chunk, at_epoch_start, at_end)
    run_ours(cfg, tmp / "profile-simple", clock, profiler=simple)
    steps_c = epochs * -(-clock.images_per_epoch // cfg.data.batch_size)
    steps_a = sum(a_done[epoch][0] for epoch in range(1, epochs + 1)) / cfg.data.batch_size
    measured = {action: durations[first.get(action, 0) : last.get(action, 0)] for action, durations in simple.recorded_durations.items()}
    ms = {action: 1000 * sum(durations) / steps_c for action, durations in measured.items() if durations and "Interleave" not in action}

    def total(*patterns: str) -> float:
        return sum(value for action, value in ms.items() if any(re.search(pattern, action) for pattern in patterns))

    phases = {name: 1000 * seconds / steps_c for name, seconds in clock.phase_seconds(slice(1, None)).items()}
    data = total(r"train_dataloader_next$", r"\.batch_to_device$", r"batch_transfer$")
    forward, backward = total(r"Strategy\].*\.training_step$"), total(r"Strategy\].*\.backward$")
    step, batch = total(r"\]\w+\.optimizer_step$"), total(r"^run_training_batch$")
    hooks = total(r"on_train_batch_(start|end)$")
    a_ms = {part: 1000 * seconds / steps_a for part, seconds in minimal.parts.items()}
    rows = [
        ("data: fetch the batch (c: and move it to the device)", a_ms["data"], data),
        ("forward + loss (c: training_step, with its logging)", a_ms["forward"], forward),
        ("backward (a: with zero_grad)", a_ms["backward"], backward),
        ("optimizer step (c: + zero_grad and hooks in the closure)", a_ms["optimizer"], step - forward - backward),
        ("automatic optimization around the step", 0.0, batch - step),
        ("on_train_batch_start/end hooks (progress bar, callbacks)", 0.0, hooks),
        ("rest of Lightning's training loop (and the profiler)", 0.0, phases["train"] - data - batch - hooks),
        ("validation of 5,000 images, image grids (per training step)", 0.0, phases["validation"]),
        ("epoch end: checkpoints, epoch logging (per training step)", 0.0, phases["epoch end"]),
    ]  # fmt: skip
    print(f"\n{args.profile_model}, {args.threads} threads, {epochs} epochs after a warm-up, paths alternating every {args.chunk} steps; "
          f"ms per training step ((a) {steps_a:.0f} steps; (c) {steps_c} steps and its validation):")  # fmt: skip
    print(f"  {'':<60} {'(a)':>8} {'(c)':>8} {'(c)-(a)':>8}")
    for name, a_value, c_value in rows:
        print(f"  {name:<60} {a_value:8.3f} {c_value:8.3f} {c_value - a_value:8.3f}")
    a_total = 1000 * sum(a_done[epoch][1] for epoch in range(1, epochs + 1)) / steps_a
    c_total = 1000 * sum(clock.seconds[1:]) / steps_c
    print(f"  {'total (wall clock)':<60} {a_total:8.3f} {c_total:8.3f} {c_total - a_total:8.3f}")
    print(f"\nSimpleProfiler actions of (c), ms per training step (nested actions overlap), top {args.profile_top}:")
    for action, value in sorted(ms.items(), key=lambda item: -item[1])[: args.profile_top]:
        print(f"  {action[:90]:<90} {value:8.3f}  ({len(measured[action])} calls)")

    profiler = cProfile.Profile()
    clock = Interleave(at_epoch_start=lambda epoch: profiler.enable() if epoch == 1 else None, at_end=profiler.disable)
    run_ours(compose_config(args.profile_model, 2, args.threads, tmp), tmp / "profile-cprofile", clock)
    print(f"\ncProfile of one (c) epoch after a warm-up ({1000 * clock.seconds[1] / (steps_c / epochs):.2f} ms per step "
          "under cProfile, which inflates Python-heavy code), by own time:")  # fmt: skip
    pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile_top)
    print("by cumulative time:")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile_top)


# --- main -------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="measured epochs, after one warm-up (default 5)")
    parser.add_argument("--models", nargs="+", default=["mlp", "conv"], choices=["mlp", "conv"])
    parser.add_argument("--threads", type=int, default=2, help="torch threads, the same for all paths (default 2)")
    parser.add_argument("--chunk", type=int, default=10, help="steps each path takes per turn (default 10)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    parser.add_argument("--quality", action="store_true", help="test/mse after --quality-epochs, instead of speed")
    parser.add_argument("--quality-epochs", type=int, default=20)
    parser.add_argument("--profile", action="store_true", help="where (c)'s time goes, against (a), instead of speed")
    parser.add_argument("--profile-model", default="mlp", choices=["mlp", "conv"])
    parser.add_argument("--profile-epochs", type=int, default=2)
    parser.add_argument("--profile-top", type=int, default=25)
    args = parser.parse_args()
    if min(args.epochs, args.chunk, args.quality_epochs, args.profile_epochs) < 1:
        parser.error("--epochs, --chunk, --quality-epochs and --profile-epochs must be at least 1")

    # Before torch's first parallel operation, so its worker threads inherit the setting: every
    # path runs with ae-train's threads and flushed denormals (which can only speed up (b)).
    set_up_torch(args.threads)
    with tempfile.TemporaryDirectory(prefix="ae-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if args.quality:
            write_section(args.out, "quality", quality(args, tmp))
        elif args.profile:
            profile(args, tutorial_images(tutorial_root(tmp / "torchvision")), tmp)
            return
        else:
            root = tutorial_root(tmp / "torchvision")
            images, load_start, results = tutorial_images(root), os.getloadavg()[0], {}
            for model in args.models:
                print(f"{model}: (a) minimal loop, (b) tutorial 000, (c) ae-train, taking turns every {args.chunk} steps", flush=True)
                results[model] = speed(model, args, images, root, tmp)
            help_s, rss_mb = time_help(), peak_rss_mb(args.threads, tmp)
            write_section(args.out, "speed", speed_markdown(results, help_s, rss_mb, args, (load_start, os.getloadavg()[0])))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
