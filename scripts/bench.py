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
import json
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
from bench_floor import lightning_floor
from bench_paths import (
    EqualSteps,
    Interleave,
    MinimalLoop,
    SameWorkLoop,
    TutorialLoop,
    compose_config,
    run_ours,
    splits,
    tutorial_images,
    tutorial_root,
)
from bench_profile import profile
from torch import Tensor

from autoencoders.distributed.torch_setup import set_up_torch

ROOT = Path(__file__).resolve().parents[1]
PATHS = ("a", "a'", "a+", "b", "c")
REFERENCES = ("a", "a'", "a+", "b")  # (c)/(ref) for each
TARGETS = {"mlp": {"c/a": 0.90, "c/b": 5.0, "beyond": 0.6}, "conv": {"c/a": 0.95}}
HELP_SECONDS, PEAK_RSS_MB = 3.0, 2048
TUTORIAL_TEST_MSE = {"mlp": 0.010985, "conv": 0.007925}  # Diaz 2026's tutorial, one test batch of 256


# --- the speed table --------------------------------------------------------------------------
def speed(model: str, args: argparse.Namespace, images: Tensor, root: Path, tmp: Path) -> dict:
    """(a), (a'), (a+), (b), (c) of one model, taking turns; images/s of each per epoch of (c)."""
    cfg = compose_config(model, args.epochs + 1, args.threads, tmp)
    net, latent, batch = cfg.model.net, cfg.model.latent_dim, cfg.data.batch_size
    train_images, val_images = splits(cfg)  # (c)'s own: (a+) trains and validates on the same images
    loops = {
        "a": MinimalLoop(images, net, latent, batch),
        "a'": MinimalLoop(images, net, latent, batch, plain_adam=True),
        "a+": SameWorkLoop.for_config(cfg, train_images, val_images, args.epochs + 1, tmp / f"a-plus-{model}"),
        "b": TutorialLoop(root, net, latent, batch),
    }
    done = defaultdict(lambda: [0, 0.0, 0])  # (path, epoch) -> [images, seconds, steps]

    def work(epoch: int, steps: int) -> None:
        for name, loop in loops.items():
            start = time.perf_counter()
            done[name, epoch][0] += loop.steps(steps)
            done[name, epoch][1] += time.perf_counter() - start
            done[name, epoch][2] += steps

    clock = EqualSteps(work, args.chunk)
    _, total = run_ours(cfg, tmp / f"run-{model}", clock)
    epochs = range(args.epochs + 1)
    rates = {name: [done[name, epoch][0] / done[name, epoch][1] for epoch in epochs] for name in loops}
    rates["c"] = [clock.images_per_epoch / seconds for seconds in clock.seconds]
    steps_c = clock.trainer.num_training_batches
    beyond = [  # ms per training step that (c) takes beyond (a+), each epoch
        1000 * (clock.seconds[epoch] / steps_c - done["a+", epoch][1] / done["a+", epoch][2]) for epoch in epochs
    ]
    for epoch in epochs:
        print(
            f"  {model} epoch {epoch}{' (warm-up)' if epoch == 0 else ''}: "
            + "  ".join(f"({name}) {rates[name][epoch]:8,.0f} img/s" for name in PATHS)
            + f"  (c)-(a+) {beyond[epoch]:.3f} ms/step",
            flush=True,
        )
    measured = {name: values[1:] for name, values in rates.items()}  # epoch 0 is the warm-up
    ratios = {f"c/{ref}": [c / r for c, r in zip(measured["c"], measured[ref])] for ref in REFERENCES}
    ratios["beyond"] = beyond[1:]
    return {
        "rates": {name: statistics.median(values) for name, values in measured.items()},
        **{key: statistics.median(values) for key, values in ratios.items()},
        "spread": {key: (min(values), max(values)) for key, values in ratios.items()},
        "fixed": total - sum(clock.seconds),
        "a+ validations": loops["a+"].epoch_ends,
    }


def floor(args: argparse.Namespace) -> dict[str, float]:
    """Lightning's floor (scripts/bench_floor.py): ms per step, medians over the turns."""
    result = {}
    for name, manual in (("automatic", False), ("manual", True)):
        lightning_s, plain_s = lightning_floor(args.floor_steps, args.chunk, manual)
        result[name] = 1000 * statistics.median(lightning_s)
        result[f"{name} beyond plain"] = 1000 * statistics.median(a - b for a, b in zip(lightning_s, plain_s))
        result[f"plain ({name})"] = 1000 * statistics.median(plain_s)
    return result


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


def machine(root: Path = ROOT) -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, torch {torch.__version__}, "
        f"lightning {lightning.__version__}, code at {code_at(root)}"
    )


def code_at(root: Path) -> str:
    """The commit a checkout is at, and whether it has changes beyond it."""
    git = lambda *args: subprocess.run(["git", *args], cwd=root, capture_output=True, text=True).stdout.strip()  # noqa: E731
    return git("rev-parse", "--short", "HEAD") + (
        " + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    )


def checkout_of(python: str) -> Path:
    """The checkout whose autoencoders package an interpreter imports (its editable install)."""
    found = subprocess.run(
        [python, "-c", "import autoencoders, pathlib; print(pathlib.Path(autoencoders.__file__).parents[1])"],
        cwd=tempfile.gettempdir(),  # not this checkout: `python -c` would import the package found in its cwd
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(found.stdout.strip())


def _cell(value: float, spread: tuple[float, float], digits: int = 2) -> str:
    return f"{value:.{digits}f} ({spread[0]:.{digits}f}–{spread[1]:.{digits}f})"


def speed_markdown(
    runs: dict[str, dict[str, dict]],
    floor_ms: dict,
    help_s: float,
    rss_mb: float,
    args: argparse.Namespace,
    loads: dict,
) -> str:
    """`runs`: label ("before: <commit>" / "after" / "") -> model -> speed(); `loads`: label -> (start, end)."""
    load_text = "; ".join(
        f"{label or 'this run'} {start:.1f} at start, {end:.1f} at end" for label, (start, end) in loads.items()
    )
    lines = [
        "## Speed",
        "",
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}; {machine()}; torch threads {args.threads} and flushed denormals in all paths; "
        f"load average (1 min): {load_text}. FashionMNIST, batch 256; the paths take "
        f"turns every {args.chunk} steps and at the end of each epoch of (c); medians of {args.epochs} epochs of (c) after "
        "1 warm-up, with the lowest and highest epoch in brackets (method: the docstring of `scripts/bench.py`).",
        "",
        "| model | code | (a) minimal loop | (a′) plain Adam | (a+) (a) + the same work | (b) Diaz 2026's tutorial | (c) ae-train "
        "| (c)/(a) | (c)/(a′) | (c)/(a+) | (c) − (a+), ms per step | target | (c)/(b) | (c) fixed cost per run |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for label, results in runs.items():
        for model, result in results.items():
            rate, spread, target = result["rates"], result["spread"], TARGETS.get(model, {}).get("beyond")
            cells = [model, label or code_at(ROOT), *(f"{rate[k]:,.0f} img/s" for k in PATHS)]
            cells += [_cell(result[key], spread[key]) for key in ("c/a", "c/a'", "c/a+")]
            cells.append(_cell(result["beyond"], spread["beyond"], 3))
            cells.append(f"≤ {target:g}: {verdict(result['beyond'], target, False)}" if target else "—")
            cells += [_cell(result["c/b"], spread["c/b"]), f"{result['fixed']:.1f} s"]
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "(a) builds Adam as ae-train does (PyTorch's fused kernel); (a′) is the same loop with `torch.optim.Adam`'s "
        "defaults, as hand-written loops and Diaz 2026's tutorial have it. (a+) is (a) doing the work (c) does "
        "around its steps: the config's learning rate and schedule (the mlp's and conv's cosine decay, stepped every "
        "step), 55,000 training images, and at each epoch's end the validation of the 5,000 held-out images (batches "
        "of 1,024) and two checkpoints written atomically. So (c)/(a+) and (c) − (a+) are the framework's cost for the "
        "same work: Lightning's loop and hooks, the progress bar, logging, TensorBoard images, the loss watch.",
        "",
        "(c) counts the 55,000 training images of an epoch, and its epoch time includes validation, checkpoints, "
        "logging, TensorBoard images and the progress bar. Its fixed cost (data loading, sanity check, test, files) "
        "is paid once per run and is not in the per-epoch figures. Targets are benchmark figures, not tests.",
        "",
    ]
    if floor_ms:
        lines += [
            "Lightning's floor (`scripts/bench_floor.py`): `Trainer(barebones=True)` on one `Linear(16, 16)`, a batch of "
            "16 in memory, fused Adam, taking turns with a plain loop over the same model every "
            f"{args.chunk} steps: automatic optimisation {floor_ms['automatic']:.3f} ms per step "
            f"({floor_ms['automatic beyond plain']:.3f} beyond the plain loop's {floor_ms['plain (automatic)']:.3f}), "
            f"manual {floor_ms['manual']:.3f} ms ({floor_ms['manual beyond plain']:.3f} beyond "
            f"{floor_ms['plain (manual)']:.3f}). No configuration of Lightning's loop goes below it.",
            "",
        ]
    if help_s:
        lines += [
            "| check | measured | target | |",
            "|---|---:|---|---|",
            f"| `ae-train --help` (median of 5) | {help_s:.2f} s | < {HELP_SECONDS:.0f} s | {verdict(help_s, HELP_SECONDS, False)} |",
            f"| peak RSS of `ae-train trainer.max_epochs=1` | {rss_mb:,.0f} MB | < 2 GB | {verdict(rss_mb, PEAK_RSS_MB, False)} |",
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
        for key in ("speed", "device", "quality", "startup", "fixedcost")
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
def measure(args: argparse.Namespace, tmp: Path) -> dict[str, dict]:
    """speed() of each model, in this process."""
    root = tutorial_root(tmp / "torchvision")
    images, results = tutorial_images(root), {}
    for model in args.models:
        print(f"{model}: (a), (a'), (a+), (b) and (c) ae-train, taking turns every {args.chunk} steps", flush=True)
        results[model] = speed(model, args, images, root, tmp)
    return results


def before_and_after(args: argparse.Namespace, tmp: Path) -> tuple[dict[str, dict], dict]:
    """Each model measured by `--before`'s interpreter (another checkout's code, with these
    benchmark scripts), then by this one, in turn, each in a process of its own (--json)."""
    labels = {args.before: f"before: {code_at(checkout_of(args.before))}", sys.executable: f"after: {code_at(ROOT)}"}
    runs: dict[str, dict] = {label: {} for label in labels.values()}
    loads = {label: [] for label in labels.values()}
    common = ["--epochs", str(args.epochs), "--threads", str(args.threads), "--chunk", str(args.chunk)]
    for model in args.models:
        for python, label in labels.items():
            out = tmp / f"{model}-{len(loads[label])}.json"
            loads[label].append(os.getloadavg()[0])
            subprocess.run([python, __file__, "--json", str(out), "--models", model, *common], check=True)
            loads[label].append(os.getloadavg()[0])
            runs[label][model] = json.loads(out.read_text())[model]
    return runs, {label: (values[0], values[-1]) for label, values in loads.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="measured epochs, after one warm-up (default 5)")
    parser.add_argument("--models", nargs="+", default=["mlp", "conv"], choices=["mlp", "conv"])
    parser.add_argument("--threads", type=int, default=2, help="torch threads, the same for all paths (default 2)")
    parser.add_argument("--chunk", type=int, default=10, help="steps each path takes per turn (default 10)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    parser.add_argument(
        "--before",
        help="another checkout's interpreter (its .venv/bin/python): its code measured in turn with this one's",
    )
    parser.add_argument("--json", type=Path, help="only measure the speed of --models, into this JSON file")
    parser.add_argument(
        "--floor-steps", type=int, default=2000, help="steps of each Lightning floor run (default 2000)"
    )
    parser.add_argument("--quality", action="store_true", help="test/mse after --quality-epochs, instead of speed")
    parser.add_argument("--quality-epochs", type=int, default=20)
    parser.add_argument("--profile", action="store_true", help="where (c)'s time goes, against (a), instead of speed")
    parser.add_argument("--profile-model", default="mlp", choices=["mlp", "conv"])
    parser.add_argument("--profile-epochs", type=int, default=2)
    parser.add_argument("--profile-top", type=int, default=25)
    args = parser.parse_args()
    if min(args.epochs, args.chunk, args.quality_epochs, args.profile_epochs, args.floor_steps) < 1:
        parser.error("--epochs, --chunk, --quality-epochs, --profile-epochs and --floor-steps must be at least 1")

    # Before torch's first parallel operation, so its worker threads inherit the setting: every
    # path runs with ae-train's threads and flushed denormals (which can only speed up (b)).
    set_up_torch(args.threads)
    with tempfile.TemporaryDirectory(prefix="ae-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if args.json:
            args.json.write_text(json.dumps(measure(args, tmp), indent=1))
            return
        if args.quality:
            write_section(args.out, "quality", quality(args, tmp))
        elif args.profile:
            profile(args, tutorial_images(tutorial_root(tmp / "torchvision")), tmp)
            return
        else:
            if args.before:
                runs, loads = before_and_after(args, tmp)
            else:
                start = os.getloadavg()[0]
                runs = {"": measure(args, tmp)}
                loads = {"": (start, os.getloadavg()[0])}
            floor_ms = floor(args)
            help_s, rss_mb = time_help(), peak_rss_mb(args.threads, tmp)
            write_section(args.out, "speed", speed_markdown(runs, floor_ms, help_s, rss_mb, args, loads))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
