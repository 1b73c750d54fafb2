"""scripts/reproduce.py: the table rows it writes from sweeps, checked on fake runs (the sweeps
themselves train for over an hour and are not run here)."""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

from autoencoders.rundir.per_image import write_per_image
from tests.compare.test_compare import write_run

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "reproduce.py"
spec = importlib.util.spec_from_file_location("reproduce", SCRIPT)
reproduce = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reproduce)

NOTE = {
    "command": "ae-train ...",
    "returncode": 0,
    "wall_seconds": 1500.0,
    "load_before": [2.5, 3.0, 3.0],
    "load_after": [2.8, 2.9, 3.0],
    "machine": "2 cores, a CPU",
    "date": "2026-12-07",
}


def iwae_sweep(out: Path, offsets: dict[str, float]) -> None:
    """Per arm, 40 images of NLL 90 + offset ± spread (alternating, so the mean is exact), both seeds alike:
    a paired difference is the offsets' with standard error |spread_a - spread_b| sqrt(40 / 39) / sqrt(40)."""
    sweep = out / "iwae_vs_vae"
    for num, (arm, offset) in enumerate(offsets.items()):
        for seed in (0, 1):
            run = sweep / f"{num}{seed}_{arm},{seed}"
            values = [90 + offset + (-1) ** i * SPREAD[arm] for i in range(40)]
            metrics = {"test/nll": sum(values) / 40, "test/active_units": UNITS[arm]}
            write_run(run, [f"iwae_vs_vae={arm}", f"seed={seed}"], metrics)
            write_per_image(run, "test/nll", range(40), values)
    (sweep / "reproduce.json").write_text(json.dumps(NOTE))


SPREAD = {"vae": 0.5, "iwae_k1": 0.4, "iwae_k5": 0.3, "iwae_k50": 0.1}
UNITS = {"vae": 19.0, "iwae_k1": 19.0, "iwae_k5": 22.0, "iwae_k50": 25.0}


def table(doc: Path) -> list[str]:
    return [line for line in doc.read_text().splitlines() if "<!-- row: " in line]


def test_measured_rows_are_rewritten_and_the_others_kept(tmp_path, monkeypatch):
    doc = tmp_path / "reproductions.md"
    kept = "| Chen et al. 2018 | ... | filled by hand | ... <!-- row: disentangle --> |"
    doc.write_text(f"# Text\n\n{reproduce.BEGIN}\n| paper | ... |\n|---|---|\n{kept}\n{reproduce.END}\n\nMore text.\n")
    monkeypatch.setattr(reproduce, "DOC", doc)
    iwae_sweep(tmp_path, {"vae": 0.0, "iwae_k1": 0.01, "iwae_k5": -1.0, "iwae_k50": -2.0})
    reproduce.rewrite_table(tmp_path)
    rows = table(doc)
    assert rows[1] == kept and doc.read_text().endswith(
        f"{reproduce.END}\n\nMore text.\n"
    )  # not measured here: as it was
    (iwae,) = [row for row in rows if "<!-- row: iwae_vs_vae -->" in row]
    assert "VAE 90.00 ± 0.00 nats, 19.0 ± 0.0 active units" in iwae and "IWAE k=50 88.00 ± 0.00 nats, 25.0" in iwae
    se = 0.2 * math.sqrt(40 / 39) / math.sqrt(40)  # k=50 against k=5: spreads 0.1 and 0.3
    assert f"paired k=50 − k=5 per seed: -1.00 ± {se:.2f}; -1.00 ± {se:.2f}" in iwae and f"{se:.2f}" == "0.03"
    assert "paired k=1 − VAE per seed: +0.01 ± 0.02" in iwae
    assert "reproduced: k=50 < k=5 < VAE beyond 2 SE in every seed" in iwae
    assert "25.0 min for the sweep, 2026-12-07, 2 cores, a CPU, load 2.5 → 2.8" in iwae
    reproduce.rewrite_table(tmp_path)
    assert table(doc) == rows  # rewriting again changes nothing
    iwae_sweep(tmp_path, {"vae": 0.0, "iwae_k1": 0.0, "iwae_k5": 0.001, "iwae_k50": -1.0})  # k=5 - VAE: 0.001 ± 0.03
    reproduce.rewrite_table(tmp_path)
    (iwae,) = [row for row in table(doc) if "<!-- row: iwae_vs_vae -->" in row]
    assert "in part: 2 of 4 per-seed steps lower beyond 2 SE" in iwae


def test_a_sweep_without_an_arm_of_the_ordering_is_not_a_reproduction(tmp_path):
    iwae_sweep(tmp_path, {"vae": 0.0, "iwae_k5": -1.0})  # no k = 50 runs
    ours, verdict = reproduce.iwae_vs_vae(tmp_path / "iwae_vs_vae")
    assert verdict == "not run: the sweep lacks an arm of the ordering" and "paired k=5 − VAE" in ours


def test_a_sweeps_cpu_seconds_join_its_wall_time(tmp_path):
    iwae_sweep(tmp_path, {"vae": 0.0, "iwae_k1": 0.0, "iwae_k5": -1.0, "iwae_k50": -2.0})
    note = tmp_path / "iwae_vs_vae" / "reproduce.json"
    note.write_text(json.dumps({**NOTE, "cpu_seconds": 2216}))
    line = reproduce.row_line(*reproduce.ROWS[2], tmp_path)
    assert "25.0 min for the sweep (2,216 CPU s), 2026-12-07, 2 cores, a CPU, load 2.5 → 2.8" in line
    # What run_sweep records: the CPU time of the children it waited for, here a child that computes.
    before = reproduce.children_cpu_seconds()
    subprocess.run([sys.executable, "-c", "sum(i * i for i in range(3_000_000))"], check=True)
    assert reproduce.children_cpu_seconds() > before
