"""The fixed cost around a run's epochs, whole-process (`make bench` runs it after bench.py).

A 1-epoch `ae-train model=mlp` in a fresh interpreter, split into: interpreter and imports,
config and data, set-up (model, trainer, sanity check), the epoch (training and validation),
test and evaluations, files (records, checkpoints, event files: the rest of the process);
beside it, `python -c "import lightning"` alone in a fresh interpreter, in the same sitting.
Then a 4-job multirun of 1-epoch jobs in one process, as Hydra's basic launcher runs it: each
job's wall time beyond its epoch. Medians over --repeats fresh processes; the machine is
shared, so read the two columns side by side, not against another day's.

    .venv/bin/python scripts/bench_startup.py            # -> bench/results.md, section "startup"
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = ["model=mlp", "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "torch_threads=2"]

# Runs in the measured process: times each phase with a callback and wrappers, prints JSON.
CHILD = r"""
import json, sys, time
born = float(sys.argv[1]); jobs = int(sys.argv[2]); output = sys.argv[3]; overrides = sys.argv[4:]
start = time.time()
import lightning as L
from hydra import compose, initialize_config_module
try:
    from autoencoders.training import pipeline
except ImportError:  # code from before the runs wing was split (bench_startup.py --python <its venv>)
    from autoencoders.runs import train as pipeline
imported = time.time()
marks = {}
class Marks(L.Callback):
    def on_train_epoch_start(self, trainer, module): marks.setdefault("epoch_start", time.time())
    def on_validation_epoch_end(self, trainer, module):
        if not trainer.sanity_checking: marks["epoch_end"] = time.time()
    def on_test_start(self, trainer, module): marks["test_start"] = time.time()
build_data, build_trainer = pipeline.build_data, pipeline.build_trainer
def timed_data(*args, **kwargs):
    data = build_data(*args, **kwargs); marks["data"] = time.time(); return data
def with_marks(cfg, *args, **kwargs):
    trainer, best = build_trainer(cfg, *args, **kwargs); trainer.callbacks.append(Marks()); return trainer, best
pipeline.build_data, pipeline.build_trainer = timed_data, with_marks
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
print("BENCH" + json.dumps({"born": born, "start": start, "imported": imported, "ended": ended, "jobs": rows}))
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
        "test and evaluations": job["done"] - job["test_start"],
        "files and the rest": (job["test_start"] - job["epoch_end"]) + (measured["exited"] - job["done"]),
        "whole process": measured["exited"] - measured["born"],
    }


def import_lightning(python: str) -> float:
    born = time.time()
    subprocess.run([python, "-c", "import lightning"], check=True, timeout=300)
    return time.time() - born


def markdown(
    rows: list[dict[str, float]], lightning_s: list[float], later: list[float], machine: str, label: str = ""
) -> str:
    median = {name: statistics.median(row[name] for row in rows) for name in rows[0]}
    bare = statistics.median(lightning_s)
    fixed = median["whole process"] - bare - median["the epoch (training and validation)"]
    lines = [
        f"### Fixed cost of a 1-epoch run{label} ({time.strftime('%Y-%m-%d')}; {machine})",
        "",
        f"`ae-train {' '.join(OVERRIDES)}`, whole process, median of {len(rows)} fresh processes.",
        "",
        "| phase | seconds |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value:.2f} |" for name, value in median.items()]
    lines += [
        f'| `python -c "import lightning"` alone, same sitting | {bare:.2f} |',
        f"| **whole process − import lightning − the epoch** (target ≤ 2.5) | **{fixed:.2f}** |",
        "",
        f"4-job multirun in one process (basic launcher): each later job's wall time beyond its epoch, "
        f"median {statistics.median(later):.2f} s (target ≤ 1.5; jobs 2-4: "
        + ", ".join(f"{value:.2f}" for value in later)
        + " s).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    parser.add_argument("--print-only", action="store_true")
    parser.add_argument("--label", default="", help="words after the table's title, e.g. ': before, at 6a2f30c'")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter (venv) whose autoencoders is measured, e.g. an older checkout's",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from bench import machine, write_section

    with tempfile.TemporaryDirectory() as tmp:
        rows, bare = [], []
        for repeat in range(args.repeats):
            bare.append(import_lightning(args.python))
            folder = Path(tmp) / f"single{repeat}"
            folder.mkdir()
            rows.append(phases(run_child(1, folder, args.python)))
        folder = Path(tmp) / "multirun"
        folder.mkdir()
        multi = run_child(4, folder, args.python)
        later = [job["done"] - job["began"] - (job["epoch_end"] - job["epoch_start"]) for job in multi["jobs"][1:]]
    text = markdown(rows, bare, later, machine(), args.label)
    print(text)
    if not args.print_only:
        write_section(args.out, "startup", text)


if __name__ == "__main__":
    main()
