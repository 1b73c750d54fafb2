"""Run the reproductions a CPU can run and rewrite the table of docs/reproductions.md from them.

    python scripts/reproduce.py                        # every CPU row (about 63 min on two idle cores)
    python scripts/reproduce.py iwae_vs_vae            # one sweep
    python scripts/reproduce.py --table-only           # rewrite the table from the sweeps in --out
    python scripts/reproduce.py disentangle_paper --dsprites /path/to/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz
                                                       # the GPU row, on a machine with a GPU

Each sweep goes to <out>/<sweep>/ (default outputs/reproduce/); beside it `reproduce.json` keeps
the command, its wall time, the load averages (`uptime`'s) before and after, and the machine. The
table's rows whose sweep is not there keep their line as it is. Not run in CI (it trains for over
an hour); CI composes each experiment and trains it a few steps (tests/training/test_reproductions.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from autoencoders.compare.collect import Run, load_runs
from autoencoders.compare.paired import PairedDifference, paired_difference
from autoencoders.rundir.per_image import read_per_image

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reproductions.md"
BEGIN, END = "<!-- reproduce.py: table begins -->", "<!-- reproduce.py: table ends -->"
AE_TRAIN = str(Path(sys.executable).parent / "ae-train")

# Each sweep: its ae-train arguments, and whether it needs a GPU (and the dSprites file).
SWEEPS = {
    "diaz": ["-m", "model=mlp,conv"],
    "disentangle": ["experiment=disentangle"],
    "iwae_vs_vae": ["experiment=iwae_vs_vae"],
    "disentangle_paper": ["experiment=disentangle_paper"],
}
GPU_SWEEPS = {"disentangle_paper"}


def run_sweep(name: str, out: Path, dsprites: str | None) -> None:
    """Train one sweep into out/<name>/ and record how long it took, under what load, where."""
    args = [*SWEEPS[name], f"hydra.sweep.dir={out / name}"]
    if name in GPU_SWEEPS:
        if not dsprites:
            raise SystemExit(f"{name} needs --dsprites PATH, the published dSprites .npz file")
        args.append(f"data.path={dsprites}")
    load_before, started, cpu_before = os.getloadavg(), time.perf_counter(), children_cpu_seconds()
    done = subprocess.run([AE_TRAIN, *args], cwd=ROOT)
    seconds = time.perf_counter() - started
    note = {
        "command": " ".join(["ae-train", *args[:-1]]),
        "returncode": done.returncode,
        "wall_seconds": round(seconds, 1),
        "cpu_seconds": round(children_cpu_seconds() - cpu_before),
        "load_before": [round(value, 2) for value in load_before],
        "load_after": [round(value, 2) for value in os.getloadavg()],
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
    }
    (out / name / "reproduce.json").write_text(json.dumps(note, indent=2) + "\n")


def children_cpu_seconds() -> float:
    """User and system CPU seconds of the finished child processes (ae-train and the jobs it waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine() -> str:
    """The CPU model and core count (and the GPU, if torch sees one)."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        model = names[0] if names else model
    text = f"{os.cpu_count()} cores, {model}"
    import torch

    return text + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "")


def mean_std(values: list[float], digits: int = 2) -> str:
    """'mean ± sample std' (std left out for one value, which is said)."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f} (one seed)"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def by(runs: list[Run], key: str) -> dict[str, list[Run]]:
    """The completed runs grouped by one override key's value."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        if run.status == "completed":
            groups.setdefault(run.overrides.get(key, ""), []).append(run)
    return groups


def diaz(sweep: Path, network: str, theirs: float) -> tuple[str, str]:
    """test/mse of the 20-epoch default recipe beside Diaz 2026's figure."""
    values = [run.metrics["test/mse"] for run in by(load_runs(sweep), "model").get(network, [])]
    if not values:
        return "no completed run", "not run"
    off = abs(statistics.mean(values) - theirs) / theirs
    verdict = "reproduced" if off <= 0.1 else "not"
    return (
        f"test/mse {mean_std(values, 5)}",
        f"{verdict}: {off:.0%} from theirs (theirs: one batch of 256 test images, ours: all 10,000)",
    )


def pairs(sweep: Path, groups: dict[str, list[Run]], arm: str, baseline: str) -> list[PairedDifference]:
    """Per seed, the paired test/nll difference arm - baseline on the same 500 images."""
    found = []
    for run in groups.get(arm, []):
        other = [b for b in groups.get(baseline, []) if b.overrides.get("seed") == run.overrides.get("seed")]
        if other:
            values, base = (read_per_image(sweep / r.label, "test/nll") for r in (run, other[0]))
            found.append(paired_difference(values, base))
    return found


def iwae_vs_vae(sweep: Path) -> tuple[str, str]:
    """NLL per arm over seeds, the paired differences per seed, the active units, and the verdict."""
    groups = by(load_runs(sweep), "iwae_vs_vae")
    names = {"vae": "VAE", "iwae_k1": "IWAE k=1", "iwae_k5": "IWAE k=5", "iwae_k50": "IWAE k=50"}
    figures = []
    for arm, name in names.items():
        runs = groups.get(arm, [])
        if runs:
            nll = mean_std([run.metrics["test/nll"] for run in runs])
            units = mean_std([run.metrics["test/active_units"] for run in runs], 1)
            figures.append(f"{name} {nll} nats, {units} active units")
    steps = {("iwae_k5", "vae"): "k=5 − VAE", ("iwae_k50", "iwae_k5"): "k=50 − k=5", ("iwae_k1", "vae"): "k=1 − VAE"}
    found = {step: pairs(sweep, groups, *step) for step in steps}
    for step, label in steps.items():
        if found[step]:
            shown = "; ".join(f"{pair.difference:+.2f} ± {pair.standard_error:.2f}" for pair in found[step])
            figures.append(f"paired {label} per seed: {shown}")
    ordering = found[("iwae_k5", "vae")] + found[("iwae_k50", "iwae_k5")]
    lower = [pair.verdict() == "lower" for pair in ordering]
    if not (found[("iwae_k5", "vae")] and found[("iwae_k50", "iwae_k5")]):
        verdict = "not run: the sweep lacks an arm of the ordering" if ordering else "not run"
    elif all(lower):
        verdict = "reproduced: k=50 < k=5 < VAE beyond 2 SE in every seed"
    elif any(lower):
        verdict = f"in part: {sum(lower)} of {len(lower)} per-seed steps lower beyond 2 SE"
    else:
        verdict = "not: no step of the ordering is lower beyond 2 SE"
    return "; ".join(figures) or "no completed run", verdict


def disentangle(sweep: Path, paper: bool = False) -> tuple[str, str]:
    """MIG per arm over seeds (for the paper's protocol, per grid point), with the spreads."""
    groups = by(load_runs(sweep), "disentangle_paper" if paper else "disentangle")
    figures = [
        f"{arm} MIG {mean_std([run.metrics['test/mig'] for run in runs])}"
        for arm, runs in groups.items()
        if all("test/mig" in run.metrics for run in runs)
    ]
    if paper or not {"vae", "tcvae"} <= set(groups):
        return "; ".join(figures) or "no completed run", "see the text"
    mig = {arm: [run.metrics["test/mig"] for run in groups[arm]] for arm in ("vae", "tcvae")}
    spread = {arm: (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0) for arm, v in mig.items()}
    apart = spread["tcvae"][0] - spread["tcvae"][1] > spread["vae"][0] + spread["vae"][1]
    verdict = "in part: β-TCVAE above the VAE with the spreads apart" if apart else "not: the spreads overlap"
    return "; ".join(figures), verdict


# The table's rows: id, sweep, the paper's cells, how ours is measured, and the why of the verdict.
ROWS: list[tuple[str, str, list[str], Callable[[Path], tuple[str, str]], str]] = [
    (
        "diaz_mlp",
        "diaz",
        [
            "Diaz 2026 (tutorial)",
            "the mlp autoencoder reconstructs FashionMNIST",
            "test MSE 0.010985",
            "`ae-train model=mlp`",
        ],
        lambda sweep: diaz(sweep, "mlp", 0.010985),
        "",
    ),
    (
        "diaz_conv",
        "diaz",
        [
            "Diaz 2026 (tutorial)",
            "the conv autoencoder reconstructs better than the mlp",
            "test MSE 0.007925",
            "`ae-train model=conv`",
        ],
        lambda sweep: diaz(sweep, "conv", 0.007925),
        "",
    ),
    (
        "iwae_vs_vae",
        "iwae_vs_vae",
        [
            "Burda et al. 2016, Table 1 (MNIST, one stochastic layer)",
            "IWAE k=50 < IWAE k=5 < VAE in test NLL",
            "VAE 86.76, IWAE k=5 85.54, k=50 84.78 nats (as github.com/nbip/IWAE quotes Table 1; the PDF was not readable here)",
            "`ae-train experiment=iwae_vs_vae`",
        ],
        iwae_vs_vae,
        "data: 7,600 training digits (theirs 59,600); budget: 60 epochs (theirs 3,280), so NLLs are higher",
    ),
    (
        "disentangle",
        "disentangle",
        [
            "Chen et al. 2018; Locatello et al. 2019",
            "β-TCVAE (β = 6) disentangles more than the VAE (MIG)",
            "see docs/disentanglement.md",
            "`ae-train experiment=disentangle`",
        ],
        disentangle,
        "data: shapes at 64 × 64 (not dSprites); architecture: the MLP; budget: 20 epochs (the FactorVAE 10)",
    ),
    (
        "disentangle_paper",
        "disentangle_paper",
        [
            "Locatello et al. 2019",
            "their protocol on dSprites: scores per model and grid point",
            "their per-model score distributions (not checked offline)",
            "`ae-train experiment=disentangle_paper data.path=...`",
        ],
        lambda sweep: disentangle(sweep, paper=True),
        "",
    ),
]


def row_line(row_id: str, sweep_name: str, cells: list[str], measure: Callable, why: str, out: Path) -> str | None:
    """The table line of one row from its sweep, or None when the sweep is not there."""
    sweep = out / sweep_name
    if not (sweep / "reproduce.json").is_file():
        return None
    note = json.loads((sweep / "reproduce.json").read_text())
    ours, verdict = measure(sweep)
    load = f"load {note['load_before'][0]:.1f} → {note['load_after'][0]:.1f}"
    cpu = f" ({note['cpu_seconds']:,} CPU s)" if note.get("cpu_seconds") else ""
    wall = f"{note['wall_seconds'] / 60:.1f} min for the sweep{cpu}, {note['date']}, {note['machine']}, {load}"
    verdict = f"{verdict}; {why}" if why else verdict
    return "| " + " | ".join([*cells, ours, wall, verdict]) + f" <!-- row: {row_id} --> |"


def rewrite_table(out: Path) -> None:
    """Replace the rows measured in `out`; keep the others' lines as they are."""
    text = DOC.read_text()
    head, rest = text.split(BEGIN)
    table, tail = rest.split(END)
    lines = table.strip().splitlines()
    kept = {line.rsplit("<!-- row: ", 1)[1].split(" -->")[0]: line for line in lines if "<!-- row: " in line}
    header = [line for line in lines if "<!-- row: " not in line]
    body = []
    for row in ROWS:
        line = row_line(*row, out)
        if line is not None or row[0] in kept:
            body.append(line or kept[row[0]])
    DOC.write_text(head + BEGIN + "\n" + "\n".join(header + body) + "\n" + END + tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweeps", nargs="*", help=f"of {', '.join(SWEEPS)} (default: every CPU sweep)")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "reproduce")
    parser.add_argument("--table-only", action="store_true", help="rewrite the table from the sweeps in --out")
    parser.add_argument("--dsprites", help="the published dSprites .npz file (the GPU sweep)")
    args = parser.parse_args()
    unknown = [name for name in args.sweeps if name not in SWEEPS]
    if unknown:
        parser.error(f"no sweep {unknown[0]!r}; the sweeps are {', '.join(SWEEPS)}")
    if not args.table_only:
        for name in args.sweeps or [name for name in SWEEPS if name not in GPU_SWEEPS]:
            run_sweep(name, args.out.resolve(), args.dsprites)
    rewrite_table(args.out.resolve())
    print(f"rewrote the table of {DOC}")


if __name__ == "__main__":
    main()
