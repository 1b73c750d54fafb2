"""The fixed cost around a run's epochs, whole-process (`make bench` runs it after bench.py).

A 1-epoch `ae-train model=mlp` in a fresh interpreter, split into phases (interpreter and
imports, config and data, set-up with the sanity check, the epoch, checkpoints, test, the views
after testing, evaluations, the rest of the run, the interpreter's shutdown); beside it
`python -c "import lightning"` alone, in the same sitting. Then a 4-job multirun of 1-epoch
jobs in one process, as Hydra's basic launcher runs it: each job's wall time beyond its epoch.
Then the peak RSS of a 1-epoch FashionMNIST run and of a 1-epoch data=shapes run.

With `--before PYTHON` (another checkout's venv, e.g. main's) every measurement is taken for
both, taking turns, so that the machine's load falls on both alike; the tables show medians,
ranges (lowest-highest of --repeats) and after/before ratios. The machine may be shared: read
the columns side by side, not against another day's.

    .venv/bin/python scripts/bench_startup.py                      # -> bench/results.md, section "startup"
    .venv/bin/python scripts/bench_startup.py --before ../main/.venv/bin/python --repeats 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = ["model=mlp", "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "torch_threads=2"]
THREADS = "torch_threads=2"  # --threads changes it everywhere
MEMORY_RUNS = {  # peak RSS of whole ae-train processes
    "FashionMNIST, 1 epoch": ["trainer.max_epochs=1", "torch_threads=2"],
    # Without sample quality's reference network (minutes to train the first time) and the factor metrics.
    "data=shapes (11,000 + 1,000 + 2,000 images of 64 × 64), 1 epoch": [
        "data=shapes",
        "trainer.max_epochs=1",
        "torch_threads=2",
        "eval.sample_quality=false",
        "eval.disentanglement=false",
    ],
}

NOTES = (
    "The phases are marks taken inside the measured process (CHILD in scripts/bench_startup.py): "
    "'views after testing' are the latent views drawn when testing ends (projector, scatter plot, "
    "interpolation, traversal), 'evaluations' is `evaluate_model` (the linear probe on FashionMNIST), "
    "'interpreter shutdown' runs from the end of `train()` to the process's exit. `ae-train` freezes "
    'its objects at exit (`quick_exit`, autoencoders/cli/__init__.py) and `python -c "import '
    "lightning\"` does not, so 'whole process − import lightning − the epoch' gains the difference "
    "of the two shutdowns; 'the same, both shutdowns left out' compares both processes up to their "
    "last line of Python. Both differences inherit the noise of a separate `import lightning` "
    "process; the phases measured inside one process are steadier. A later job of the multirun "
    "pays its config's composition too, as under Hydra's basic launcher."
)

# Runs in the measured process: times each phase with a callback and wrappers, prints JSON.
CHILD = r"""
import json, sys, time
born = float(sys.argv[1]); jobs = int(sys.argv[2]); output = sys.argv[3]; overrides = sys.argv[4:]
start = time.time()
import lightning as L
from hydra import compose, initialize_config_module
from autoencoders.training import building, pipeline
try:  # what ae-train's entry point does first, where the code has it
    from autoencoders.cli import quick_exit
    quick_exit()
except ImportError:
    pass
from autoencoders.evaluation import suite
imported = time.time()
marks = {}
class Marks(L.Callback):
    def on_train_epoch_start(self, trainer, module): marks.setdefault("epoch_start", time.time())
    def on_validation_epoch_end(self, trainer, module):
        if not trainer.sanity_checking: marks["epoch_end"] = time.time()
    def on_test_start(self, trainer, module): marks["test_start"] = time.time()
    def on_test_epoch_end(self, trainer, module): marks["test_end"] = time.time()
build_data, build_trainer, evaluate_model = building.build_data, pipeline.build_trainer, suite.evaluate_model
def timed_data(*args, **kwargs):
    data = build_data(*args, **kwargs); marks["data"] = time.time(); return data
def with_marks(cfg, *args, **kwargs):
    trainer, best = build_trainer(cfg, *args, **kwargs); trainer.callbacks.append(Marks()); return trainer, best
def timed_evaluation(*args, **kwargs):
    marks["evaluation_start"] = time.time(); metrics = evaluate_model(*args, **kwargs)
    marks["evaluation_end"] = time.time(); return metrics
building.build_data, pipeline.build_trainer, suite.evaluate_model = timed_data, with_marks, timed_evaluation
rows = []
for job in range(jobs):
    marks.clear(); began = time.time()
    with initialize_config_module("autoencoders.conf", version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"model.latent_dim={31 + job}"])
    marks["config"] = time.time()
    pipeline.train(cfg, run_dir=f"{output}/job{job}")
    done = time.time()
    rows.append({"began": began, "done": done, **marks})
ended = time.time()
print("BENCH" + json.dumps({"born": born, "start": start, "imported": imported, "ended": ended, "jobs": rows}), flush=True)
"""


def run_child(jobs: int, output: Path, python: str) -> dict:
    born = time.time()
    done = subprocess.run(
        [python, "-c", CHILD, str(born), str(jobs), str(output), *OVERRIDES],
        capture_output=True,
        text=True,
        cwd=output,
        timeout=1800,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    line = next(line for line in done.stdout.splitlines() if line.startswith("BENCH"))
    measured = json.loads(line[5:])
    measured["exited"] = time.time()
    return measured


def phases(measured: dict) -> dict[str, float]:
    job = measured["jobs"][0]
    return {
        "interpreter and imports": measured["imported"] - measured["born"],
        "config and data": job["data"] - job["began"],
        "set-up (model, trainer, sanity check)": job["epoch_start"] - job["data"],
        "the epoch (training and validation)": job["epoch_end"] - job["epoch_start"],
        "checkpoints and the fit's end": job["test_start"] - job["epoch_end"],
        "test loop": job["test_end"] - job["test_start"],
        "views after testing (latents)": job["evaluation_start"] - job["test_end"],
        "evaluations (probe)": job["evaluation_end"] - job["evaluation_start"],
        "record and the rest of the run": job["done"] - job["evaluation_end"],
        "interpreter shutdown": measured["exited"] - job["done"],
        "whole process": measured["exited"] - measured["born"],
    }


def import_lightning(python: str) -> dict[str, float]:
    """`python -c "import lightning"` alone: the whole process, and the part after the import."""
    born = time.time()
    done = subprocess.run(
        [python, "-c", "import lightning, time; print(time.time(), flush=True)"],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    exited = time.time()
    return {"whole": exited - born, "shutdown": exited - float(done.stdout.strip().splitlines()[-1])}


def later_jobs(measured: dict) -> list[float]:
    """Each job after the first: its wall time beyond its epoch."""
    return [job["done"] - job["began"] - (job["epoch_end"] - job["epoch_start"]) for job in measured["jobs"][1:]]


def peak_memory_mb(python: str, overrides: list[str], output: Path) -> dict[str, float]:
    """Peak RSS of a whole ae-train process (ru_maxrss), and the peak of its private memory
    (RssAnon, read every 20 ms): the RSS also counts pages of shared libraries, and the
    interpreter's shutdown touches about 100 MB more of them, after the run's data are gone."""
    command = [python, "-m", "autoencoders.cli.train", *overrides, f"output_root={output}"]
    # cwd: not this checkout, whose autoencoders/ would shadow the measured interpreter's (-m puts cwd first).
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=output)
    status, anon = Path(f"/proc/{child.pid}/status"), 0
    while True:
        pid, code, usage = os.wait4(child.pid, os.WNOHANG)  # not poll(): wait4 keeps the child's rusage
        if pid:
            break
        with contextlib.suppress(OSError):  # it ended between the two calls
            lines = status.read_text().splitlines()
            anon = max([anon] + [int(line.split()[1]) for line in lines if line.startswith("RssAnon:")])
        time.sleep(0.02)
    child.returncode = os.waitstatus_to_exitcode(code)
    if child.returncode != 0:
        raise SystemExit(f"bench_startup: `{' '.join(command)}` failed with exit code {child.returncode}")
    return {"rss": usage.ru_maxrss / 1024, "private": anon / 1024}  # kilobytes on Linux


def one_repeat(python: str, tmp: Path, memory: bool) -> dict:
    """Every figure of one interpreter, once."""
    figures = {
        "lightning": import_lightning(python),
        "phases": phases(run_child(1, Path(tempfile.mkdtemp(dir=tmp)), python)),
        "later": later_jobs(run_child(4, Path(tempfile.mkdtemp(dir=tmp)), python)),
    }
    if memory:
        figures["rss"] = {
            name: peak_memory_mb(python, overrides, Path(tempfile.mkdtemp(dir=tmp)))
            for name, overrides in MEMORY_RUNS.items()
        }
    return figures


def spread(values: list[float], digits: int = 2) -> str:
    """median (lowest-highest)"""
    values = sorted(values)
    middle = statistics.median(values)
    return (
        f"{middle:.{digits}f}"
        if len(values) == 1
        else f"{middle:.{digits}f} ({values[0]:.{digits}f}-{values[-1]:.{digits}f})"
    )


def fixed_costs(repeats: list[dict]) -> dict[str, list[float]]:
    """The two targets' figures, per repeat: whole process − import lightning − the epoch (as
    defined), the same with both shutdowns left out, and each later job of the multirun."""
    epoch = "the epoch (training and validation)"
    return {
        "defined": [r["phases"]["whole process"] - r["lightning"]["whole"] - r["phases"][epoch] for r in repeats],
        "no_shutdown": [
            (r["phases"]["whole process"] - r["phases"]["interpreter shutdown"])
            - (r["lightning"]["whole"] - r["lightning"]["shutdown"])
            - r["phases"][epoch]
            for r in repeats
        ],
        "later": [value for r in repeats for value in r["later"]],
        "worst_later": [max(r["later"]) for r in repeats],
    }


def markdown(results: dict[str, list[dict]], machine: str, loads: tuple[str, str], label: str) -> str:
    names = list(results)  # "before" (if measured) then "after"
    n = len(results[names[-1]])
    head = " | ".join(f"{name}: median (range)" for name in names) + (" | after/before" if len(names) == 2 else "")
    ratio = lambda values: (  # noqa: E731
        f" | {statistics.median(values[-1]) / statistics.median(values[0]):.2f}" if len(values) == 2 else ""
    )
    lines = [
        f"### Fixed cost of a 1-epoch run{label} ({time.strftime('%Y-%m-%d %H:%M')}; {machine})",
        "",
        f"`ae-train {' '.join(OVERRIDES)}`, whole process, {n} fresh processes each"
        + (", before and after taking turns" if len(names) == 2 else "")
        + f"; load average (1 min) {loads[0]} at start, {loads[1]} at end. Seconds.",
        "",
        f"| phase | {head} |",
        "|---|" + "---:|" * (len(names) + (len(names) == 2)),
    ]
    rows = {
        phase: [[r["phases"][phase] for r in results[name]] for name in names]
        for phase in results[names[-1]][0]["phases"]
    }
    rows['`python -c "import lightning"` alone'] = [[r["lightning"]["whole"] for r in results[name]] for name in names]
    rows["... of which its shutdown"] = [[r["lightning"]["shutdown"] for r in results[name]] for name in names]
    costs = {name: fixed_costs(results[name]) for name in names}
    rows["**whole process − import lightning − the epoch** (target ≤ 2.5)"] = [costs[name]["defined"] for name in names]
    rows["the same, both shutdowns left out"] = [costs[name]["no_shutdown"] for name in names]
    rows["4-job multirun in one process: each later job beyond its epoch (target ≤ 1.5)"] = [
        costs[name]["later"] for name in names
    ]
    rows["... the slowest later job of each multirun"] = [costs[name]["worst_later"] for name in names]
    lines += [
        f"| {phase} | " + " | ".join(spread(v) for v in values) + ratio(values) + " |" for phase, values in rows.items()
    ]
    lines += ["", NOTES]
    if "rss" in results[names[-1]][0]:
        lines += [
            "",
            f"| memory of a whole `ae-train` process, MB | {head} |",
            "|---|" + "---:|" * (len(names) + (len(names) == 2)),
        ]
        for run, overrides in MEMORY_RUNS.items():
            for kind, words in (("rss", "peak RSS"), ("private", "peak private memory (RssAnon)")):
                values = [[r["rss"][run][kind] for r in results[name] if "rss" in r] for name in names]
                row = " | ".join(spread(v, 0) for v in values) + ratio(values)
                lines.append(f"| {run}: {words} (`{' '.join(overrides)}`) | {row} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    parser.add_argument("--print-only", action="store_true")
    parser.add_argument("--label", default="", help="words after the table's title, e.g. ': before and after issue 25'")
    parser.add_argument(
        "--python", default=sys.executable, help="the interpreter (venv) whose autoencoders is measured"
    )
    parser.add_argument("--before", help="another interpreter (venv) measured in turn with --python, e.g. main's")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-RSS runs")
    parser.add_argument("--threads", type=int, default=2, help="torch_threads of every run (1 on a busy machine)")
    args = parser.parse_args()
    for overrides in (OVERRIDES, *MEMORY_RUNS.values()):
        overrides[overrides.index(THREADS)] = f"torch_threads={args.threads}"
    sys.path.insert(0, str(Path(__file__).parent))
    from bench import machine, write_section

    # Absolute (abspath, not resolve: a venv's python is a link whose target knows no venv), as the
    # runs start in folders of their own.
    after, before = os.path.abspath(args.python), args.before and os.path.abspath(args.before)
    interpreters = {"before": before, "after": after} if before else {"after": after}
    results: dict[str, list[dict]] = {name: [] for name in interpreters}
    loads = (f"{os.getloadavg()[0]:.1f}", "")
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            order = list(interpreters) if repeat % 2 == 0 else list(interpreters)[::-1]  # taking turns
            for name in order:
                memory = not args.no_memory and repeat == 0  # peak RSS barely moves: once each
                results[name].append(one_repeat(interpreters[name], Path(tmp), memory))
    loads = (loads[0], f"{os.getloadavg()[0]:.1f}")
    text = markdown(results, machine() + (f"; before: {args.before}" if args.before else ""), loads, args.label)
    print(text)
    if not args.print_only:
        write_section(args.out, "startup", text)


if __name__ == "__main__":
    main()
