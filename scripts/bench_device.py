"""The framework's cost per step where it matters most: on a GPU (`scripts/bench_device.sh`).

On a machine with a CUDA device, in a few minutes: for the mlp and conv networks at batch 256 and
1,024, images/s of (a) the minimal loop, (a+) the same loop doing the work (c) does around its
steps (the config's schedule, validation of the held-out images, two checkpoints an epoch) and
(c) ae-train (scripts/bench_paths.py), each on the device with its data there; the host syncs per
training step of (c); and a 1-GPU DDP run (`trainer=ddp trainer.devices=1`) beside the plain one.
The results go to the section "device" of bench/results.md, with the device named.

A GPU is not shared the way our CPUs are, and interleaving paths every few steps would add a
synchronisation to each turn, so the paths take turns by whole epochs here: each trains
`--epochs` epochs after a warm-up one, synchronised (torch.cuda.synchronize) at each epoch's
edges, and the figures are medians over them.

Host syncs are counted two ways over the training batches of one (c) epoch (mlp, batch 256,
log_every_n_steps 50): the Python-level reads that wait for a device (`item`, `tolist`, `bool` ...,
as tests/training/test_hot_path.py counts them), and on CUDA every synchronising call that
torch.cuda.set_sync_debug_mode("warn") reports.

`--dry` runs the same code on the CPU with generated data (data=synthetic) and writes a section
that says so: it checks that the script works where no GPU is (tests/test_bench_device.py) and
makes no claim about GPUs. Without a CUDA device and without --dry it stops with exit code 2.

    scripts/bench_device.sh                 # on a GPU machine: -> bench/results.md, section "device"
    scripts/bench_device.sh --dry --out /tmp/results.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import lightning
import torch
from bench_paths import MinimalLoop, SameWorkLoop, splits
from hydra import compose, initialize_config_module

from autoencoders.training.timing import EpochTimes
from bench import code_at, write_section

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (256, 1024)
SYNCING = ("item", "tolist", "__bool__", "cpu", "numpy", "__float__", "__int__")
NO_GPU = (
    "bench_device: no CUDA device on this machine, so there is nothing to measure. Run it on a machine "
    "with a GPU, or add --dry to check the script on the CPU (its figures are then no GPU's)."
)


def settings(args: argparse.Namespace, model: str, batch: int, tmp: Path) -> list[str]:
    """ae-train's overrides for one (c) run: the defaults users get, on the device, without the
    evaluations after testing (fixed costs, not per step)."""
    overrides = [
        f"model={model}",
        f"data.batch_size={batch}",
        f"trainer.max_epochs={args.epochs + 1}",
        f"trainer.accelerator={'cpu' if args.dry else 'gpu'}",
        "trainer.devices=1",
        "eval.probe=false",
        "logging.projector_points=0",
        f"output_root={tmp}",
    ]
    return overrides + (["data=synthetic", "torch_threads=1"] if args.dry else [])


def compose_config(overrides: list[str]):
    with initialize_config_module("autoencoders.conf", version_base="1.3"):
        return compose("train", overrides=overrides)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class SynchronizedEpochs(EpochTimes):
    """EpochTimes whose marks wait for the device first: an epoch's queued kernels are its own."""

    def __init__(self, device: torch.device) -> None:
        super().__init__(file=None)
        self.device = device

    def on_train_epoch_start(self, trainer, module) -> None:
        synchronize(self.device)
        super().on_train_epoch_start(trainer, module)

    def on_train_end(self, trainer, module) -> None:
        synchronize(self.device)
        super().on_train_end(trainer, module)


def ours(args: argparse.Namespace, model: str, batch: int, device: torch.device, tmp: Path) -> tuple[list, int]:
    """(c): images/s of each measured epoch, and the steps of an epoch."""
    from autoencoders.training.pipeline import train

    clock = SynchronizedEpochs(device)
    train(compose_config(settings(args, model, batch, tmp)), run_dir=tmp / f"c-{model}-{batch}", callbacks=[clock])
    return [clock.images_per_epoch / seconds for seconds in clock.seconds[1:]], clock.trainer.num_training_batches


def loops(args: argparse.Namespace, model: str, batch: int, device: torch.device, tmp: Path) -> dict[str, list]:
    """(a) and (a+) on the device, an epoch each in turn: images/s of each measured epoch."""
    cfg = compose_config(settings(args, model, batch, tmp))
    train_images, val_images = splits(cfg)
    steps = -(-len(train_images) // batch)
    paths = {
        "a": MinimalLoop(train_images, cfg.model.net, cfg.model.latent_dim, batch, device=device),
        "a+": SameWorkLoop.for_config(
            cfg, train_images, val_images, args.epochs + 1, tmp / f"a-plus-{model}-{batch}", device=device
        ),
    }
    rates: dict[str, list] = {name: [] for name in paths}
    for _ in range(args.epochs + 1):
        for name, loop in paths.items():
            synchronize(device)
            start = time.perf_counter()
            images = loop.steps(steps)
            synchronize(device)
            rates[name].append(images / (time.perf_counter() - start))
    return {name: values[1:] for name, values in rates.items()}


class SyncCount(lightning.Callback):
    """Counts, between each training batch's start and end, the Python-level reads that wait for
    a device, and on CUDA the synchronising calls torch.cuda.set_sync_debug_mode reports."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.counting, self.reads, self.steps = device, False, 0, 0
        self.originals = {name: getattr(torch.Tensor, name) for name in SYNCING}
        for name, original in self.originals.items():
            setattr(torch.Tensor, name, self._counted(original))

    def _counted(self, original):
        def call(tensor, *args, **kwargs):
            self.reads += self.counting
            return original(tensor, *args, **kwargs)

        return call

    def restore(self) -> None:
        for name, original in self.originals.items():
            setattr(torch.Tensor, name, original)

    def on_train_batch_start(self, *args) -> None:
        self.steps += 1
        self.counting = True
        if self.device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")

    def on_train_batch_end(self, *args) -> None:
        if self.device.type == "cuda":
            torch.cuda.set_sync_debug_mode("default")
        self.counting = False


def host_syncs(args: argparse.Namespace, device: torch.device, tmp: Path) -> dict[str, float]:
    """Per training step of one (c) epoch, mlp at batch 256: reads, and CUDA's synchronising calls."""
    from autoencoders.training.pipeline import train

    overrides = [*settings(args, "mlp", 256, tmp), "trainer.max_epochs=1", "trainer.log_every_n_steps=50"]
    counter = SyncCount(device)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train(compose_config(overrides), run_dir=tmp / "syncs", callbacks=[counter])
    finally:
        counter.restore()
    cuda = sum("synchronizing" in str(warning.message) for warning in caught)
    return {
        "steps": counter.steps,
        "reads": counter.reads / counter.steps,
        "cuda": cuda / counter.steps if device.type == "cuda" else None,
    }


def ddp(args: argparse.Namespace, tmp: Path) -> list[float]:
    """`ae-train trainer=ddp trainer.devices=1` (its own processes, as users start it), mlp at
    batch 256: images/s of each measured epoch (callbacks=timing)."""
    run = tmp / "ddp"
    overrides = [*settings(args, "mlp", 256, tmp), "trainer=ddp", "trainer.devices=1", "callbacks=timing"]
    command = [sys.executable, "-m", "autoencoders.cli.train", *overrides, f"hydra.run.dir={run}"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp)
    if done.returncode != 0:
        sys.exit(f"bench_device: the DDP run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    epochs = json.loads((run / "timing.json").read_text())
    return [epoch["images"] / epoch["seconds"] for epoch in epochs[1:]]


def _range(values: list[float], digits: int = 0) -> str:
    return f"{statistics.median(values):,.{digits}f} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"


def markdown(
    args: argparse.Namespace, name: str, rows: list[dict], syncs: dict, ddp_rates: list, seconds: float
) -> str:
    title = "## Device: dry run on the CPU (no GPU measured)" if args.dry else f"## Device: {name}"
    lines = [
        title,
        "",
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}; {name}; Python {platform.python_version()}, torch {torch.__version__}"
        f"{', CUDA ' + torch.version.cuda if torch.version.cuda and not args.dry else ''}, lightning {lightning.__version__}, "
        f"code at {code_at(ROOT)}; `scripts/bench_device.sh{' --dry' if args.dry else ''}` took {seconds:.0f} s. "
        f"Each path trains whole epochs in turn, synchronised at each epoch's edges; medians of {args.epochs} epochs "
        "after 1 warm-up, lowest and highest in brackets (method: the docstring of `scripts/bench_device.py`).",
        "",
    ]
    if args.dry:
        lines += [
            "This is a dry run: the script's code on this machine's CPU with generated data (data=synthetic, "
            "448 training images), to check that it works. Its figures say nothing about a GPU.",
            "",
        ]
    lines += [
        "| model | batch | (a) img/s | (a+) img/s | (c) ae-train img/s | (c)/(a) | (c)/(a+) | (c) − (a+), ms per step |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        a, plus, c = (statistics.median(row[key]) for key in ("a", "a+", "c"))
        beyond = 1000 * row["batch"] * (1 / c - 1 / plus)
        lines.append(
            f"| {row['model']} | {row['batch']:,} | {_range(row['a'])} | {_range(row['a+'])} | {_range(row['c'])} "
            f"| {c / a:.2f} | {c / plus:.2f} | {beyond:.3f} |"
        )
    cuda = f"{syncs['cuda']:.2f} synchronising CUDA calls" if syncs["cuda"] is not None else "no CUDA calls to count"
    plain = statistics.median(next(row["c"] for row in rows if row["model"] == "mlp" and row["batch"] == 256))
    lines += [
        "",
        f"Host syncs per training step of (c), mlp at batch 256, log_every_n_steps 50, over {syncs['steps']} steps: "
        f"{syncs['reads']:.3f} Python-level reads (the loss watch's one read every 50 steps: "
        f"{-(-syncs['steps'] // 50) / syncs['steps']:.3f} expected), {cuda}.",
        "",
        f"1-device DDP (`trainer=ddp trainer.devices=1`), mlp at batch 256: {_range(ddp_rates)} img/s, "
        f"{statistics.median(ddp_rates) / plain:.2f} of the plain run's {plain:,.0f}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry", action="store_true", help="run on the CPU with generated data, to check the script")
    parser.add_argument("--epochs", type=int, help="measured epochs after a warm-up (default 3; --dry: 1)")
    parser.add_argument("--models", nargs="+", default=["mlp", "conv"], choices=["mlp", "conv"])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    args = parser.parse_args(argv)
    args.epochs = args.epochs or (1 if args.dry else 3)
    if not args.dry and not torch.cuda.is_available():
        print(NO_GPU, file=sys.stderr)
        sys.exit(2)
    device = torch.device("cpu" if args.dry else "cuda")
    name = f"CPU ({platform.processor() or platform.machine()})" if args.dry else torch.cuda.get_device_name(device)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ae-bench-device-") as tmp_name:
        tmp, rows = Path(tmp_name), []
        for model in args.models:
            for batch in BATCHES:
                print(f"bench_device: {model} at batch {batch}", flush=True)
                measured = loops(args, model, batch, device, tmp)
                measured["c"], _ = ours(args, model, batch, device, tmp)
                rows.append({"model": model, "batch": batch, **measured})
        syncs = host_syncs(args, device, tmp)
        ddp_rates = ddp(args, tmp)
    text = markdown(args, name, rows, syncs, ddp_rates, time.perf_counter() - began)
    write_section(args.out, "device", text)
    print(text)


if __name__ == "__main__":
    main()
