"""Training speed of `ae-train` beside a minimal PyTorch loop and the pipeline of
Diaz 2026, "Autoencoder Architecture: From Pixel Space to Latent Space" (`make bench`).

Four paths train the same network (autoencoders.nets.families.build_nets, latent 32) with Adam, MSE,
batch 256, the same torch thread count and flushed denormals (autoencoders.distributed.torch_setup.set_up_torch,
set before any thread starts) on FashionMNIST:

  (a) minimal: the train split as one float tensor in memory; per epoch one randperm, then
      batches are slices of the shuffled copy; Adam lr 1e-3, built as ae-train builds it
      (fused kernel, autoencoders.machinery.optim.adam). The reference limit on a CPU.
  (a') the same loop with torch.optim.Adam's defaults (one small op per tensor per update),
      as a loop written by hand usually has it: what users compare ae-train with.
  (b) Diaz 2026's tutorial: torchvision FashionMNIST + ToTensor + DataLoader(shuffle=True) and the
      tutorial's loop (with its loss.item() per step and its plain torch.optim.Adam).
  (c) ours as users run it: autoencoders.training.pipeline.train() on the default config (overrides: only
      the model, trainer.max_epochs, torch_threads, output_root), so validation, checkpoints,
      TensorBoard scalars and images and the progress bar are all on, as `ae-train` has them.
      Its optimizer settings are the config's (lr, schedule): the same work per step.

How they are interleaved and timed. This 2-core machine is shared: the same step takes 9 ms or
480 ms depending on other jobs, and the load changes within seconds, so whole epochs taken in
turn gave per-epoch ratios anywhere from 0.06 to 21. So the paths take turns every `--chunk`
(10) training steps instead: train(cfg, callbacks=[...]) is given one callback, Interleave,
which after every 10th training step of (c) runs 10 steps of (a), (a') and (b) in turn, each timed on its own (turns of
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
  .venv/bin/python scripts/bench.py --quality             # 20-epoch test/mse vs Diaz 2026's tutorial
  .venv/bin/python scripts/bench.py --profile             # where (c)'s milliseconds go vs (a)
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import lightning
import torch
from bench_paths import Interleave, MinimalLoop, TutorialLoop, compose_config, run_ours, tutorial_images, tutorial_root
from bench_profile import profile
from torch import Tensor

from autoencoders.distributed.torch_setup import set_up_torch

ROOT = Path(__file__).resolve().parents[1]
PATHS = ("a", "a'", "b", "c")
TARGETS = {"mlp": {"c/a": 0.90, "c/b": 5.0}, "conv": {"c/a": 0.95}}
HELP_SECONDS, PEAK_RSS_MB = 3.0, 2048
TUTORIAL_TEST_MSE = {"mlp": 0.010985, "conv": 0.007925}  # Diaz 2026's tutorial, one test batch of 256


# --- the speed table --------------------------------------------------------------------------
def speed(model: str, args: argparse.Namespace, images: Tensor, root: Path, tmp: Path) -> dict:
    """(a), (b), (c) of one model, interleaved; images/s of each per epoch of (c)."""
    cfg = compose_config(model, args.epochs + 1, args.threads, tmp)
    loops = {
        "a": MinimalLoop(images, cfg.model.net, cfg.model.latent_dim, cfg.data.batch_size),
        "a'": MinimalLoop(images, cfg.model.net, cfg.model.latent_dim, cfg.data.batch_size, plain_adam=True),
        "b": TutorialLoop(root, cfg.model.net, cfg.model.latent_dim, cfg.data.batch_size),
    }
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
        print(
            f"  {model} epoch {epoch}{' (warm-up)' if epoch == 0 else ''}: "
            + "  ".join(f"({name}) {rates[name][epoch]:8,.0f} img/s" for name in PATHS),
            flush=True,
        )
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
    command = [
        str(Path(sys.executable).with_name("ae-train")),
        "trainer.max_epochs=1",
        f"torch_threads={threads}",
        f"output_root={output_root}",
    ]
    done = subprocess.run([sys.executable, "-c", RSS_LAUNCHER, *command], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench: `{' '.join(command)}` failed with exit code {done.returncode}")
    return int(done.stdout) / 1024  # kilobytes on Linux


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    return "met" if (value >= target if higher_is_better else value < target) else "**not met**"


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    git = lambda *args: subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: E731
    commit = git("rev-parse", "--short", "HEAD") + (
        " + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    )
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, torch {torch.__version__}, "
        f"lightning {lightning.__version__}, code at {commit}"
    )


def speed_markdown(
    results: dict[str, dict], help_s: float, rss_mb: float, args: argparse.Namespace, loads: tuple
) -> str:
    lines = [
        "## Speed",
        "",
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}; {machine()}; torch threads {args.threads} and flushed denormals in all paths; "
        f"load average (1 min) {loads[0]:.1f} at start, {loads[1]:.1f} at end. FashionMNIST, batch 256; the paths take "
        f"turns every {args.chunk} steps; medians of {args.epochs} epochs of (c) after 1 warm-up (method: the docstring "
        "of `scripts/bench.py`).",
        "",
        "| model | (a) minimal loop, img/s | (a′) plain Adam, img/s | (b) Diaz 2026's tutorial, img/s | (c) ae-train, img/s "
        "| (c)/(a) (range) | target | (c)/(a′) (range) | | (c)/(b) (range) | target | (c) fixed cost per run |",
        "|---|---:|---:|---:|---:|---:|---|---:|---|---:|---|---:|",
    ]
    for model, result in results.items():
        rate, targets = result["rates"], TARGETS.get(model, {})
        cells = [model, *(f"{rate[k]:,.0f}" for k in PATHS)]
        for key in ("c/a", "c/a'", "c/b"):
            target, (low, high) = targets.get(key), result["spread"][key]
            cells += [
                f"{result[key]:.2f} ({low:.2f}–{high:.2f})",
                f"≥ {target:g}: {verdict(result[key], target)}" if target else "—",
            ]
        lines.append("| " + " | ".join([*cells, f"{result['fixed']:.1f} s"]) + " |")
    lines += [
        "",
        "| check | measured | target | |",
        "|---|---:|---|---|",
        f"| `ae-train --help` (median of 5) | {help_s:.2f} s | < {HELP_SECONDS:.0f} s | {verdict(help_s, HELP_SECONDS, False)} |",
        f"| peak RSS of `ae-train trainer.max_epochs=1` | {rss_mb:,.0f} MB | < 2 GB | {verdict(rss_mb, PEAK_RSS_MB, False)} |",
        "",
        "(a) builds Adam as ae-train does (PyTorch's fused kernel), so (c)/(a) is the cost of the framework alone; "
        "(a′) is the same loop with `torch.optim.Adam`'s defaults, as hand-written loops and Diaz 2026's tutorial have it.",
        "",
        "(c) counts the 55,000 training images of an epoch, and its epoch time includes validation, checkpoints, "
        "logging, TensorBoard images and the progress bar. Its fixed cost (data loading, sanity check, test, files) "
        "is paid once per run and is not in the per-epoch figures. Ratios are medians of the per-epoch ratios "
        "(range: lowest to highest epoch). Targets are benchmark figures, not tests.",
        "",
    ]
    return "\n".join(lines)


def write_section(path: Path, name: str, text: str) -> None:
    """Replace (or add) one `<!-- bench:name -->` section of the results file, keeping the others."""
    header = "# Benchmarks\n\nWritten by `make bench` (`scripts/bench.py`); `--quality` adds the second table.\n\n"
    old = path.read_text() if path.exists() else header
    parts = re.split(r"^<!-- bench:(\w+) -->\n", old, flags=re.M)
    sections = dict(zip(parts[1::2], parts[2::2]))
    sections[name] = text.rstrip("\n") + "\n\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(
        f"<!-- bench:{key} -->\n{sections[key]}"
        for key in ("speed", "quality", "startup", "fixedcost")
        if key in sections
    )
    path.write_text(parts[0] + body.rstrip("\n") + "\n")


# --- --quality and --profile ------------------------------------------------------------------
def quality(args: argparse.Namespace, tmp: Path) -> str:
    lines = [
        "## Quality",
        "",
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}; `ae-train model=<model> trainer.max_epochs={args.quality_epochs}` "
        f"(default config otherwise), torch threads {args.threads}; {machine()}. Diaz 2026's tutorial's figure is the MSE of "
        "one test batch of 256 images after 20 epochs; ours is over all 10,000 test images, with the checkpoint of "
        "lowest val/loss.",
        "",
        "| model | epochs | test/mse (ours) | Diaz 2026's tutorial | wall time |",
        "|---|---:|---:|---:|---:|",
    ]
    for model in args.models:
        start = time.perf_counter()
        metrics, _ = run_ours(
            compose_config(model, args.quality_epochs, args.threads, tmp), tmp / f"quality-{model}", Interleave()
        )
        seconds = time.perf_counter() - start
        print(
            f"{model}: test/mse {metrics['test/mse']:.6f} (Diaz 2026's tutorial: {TUTORIAL_TEST_MSE[model]}) in {seconds:.0f} s",
            flush=True,
        )
        lines.append(
            f"| {model} | {args.quality_epochs} | {metrics['test/mse']:.6f} | {TUTORIAL_TEST_MSE[model]} | {seconds:.0f} s |"
        )
    return "\n".join(lines) + "\n"


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
                print(
                    f"{model}: (a) minimal loop, (b) Diaz 2026's tutorial, (c) ae-train, taking turns every {args.chunk} steps",
                    flush=True,
                )
                results[model] = speed(model, args, images, root, tmp)
            help_s, rss_mb = time_help(), peak_rss_mb(args.threads, tmp)
            write_section(
                args.out, "speed", speed_markdown(results, help_s, rss_mb, args, (load_start, os.getloadavg()[0]))
            )
    print(args.out.read_text())


if __name__ == "__main__":
    main()
