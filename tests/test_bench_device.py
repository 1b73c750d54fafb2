"""scripts/bench_device.sh: on a machine without a GPU it refuses to claim anything, and its dry run
(the same code on the CPU, generated data) measures every row and writes its section."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))  # as `python scripts/bench_device.py` has it: its bench*.py modules
spec = importlib.util.spec_from_file_location("bench_device", SCRIPTS / "bench_device.py")
bench_device = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the script would measure it")
def test_without_a_gpu_it_stops_before_measuring(tmp_path, capsys):
    out = tmp_path / "results.md"
    with pytest.raises(SystemExit) as stopped:
        bench_device.main(["--out", str(out)])
    assert stopped.value.code == 2 and "no CUDA device" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_the_dry_run_fills_every_row_and_says_it_measured_no_gpu(tmp_path):
    out = tmp_path / "results.md"
    out.write_text("# Benchmarks\n\n<!-- bench:speed -->\n## Speed\n\nkept\n")
    bench_device.main(["--dry", "--out", str(out)])
    text = out.read_text()
    assert "## Speed\n\nkept" in text  # the other sections stay
    section = text[text.index("<!-- bench:device -->") :]
    assert "## Device: dry run on the CPU (no GPU measured)" in section and "say nothing about a GPU" in section
    rows = re.findall(
        r"^\| (mlp|conv) \| ([\d,]+) \| ([\d,]+) .*\| ([\d.]+) \| ([\d.]+) \| (-?[\d.]+) \|$", section, re.M
    )
    assert [(model, batch) for model, batch, *_ in rows] == [
        ("mlp", "256"),
        ("mlp", "1,024"),
        ("conv", "256"),
        ("conv", "1,024"),
    ]
    assert all(float(rate.replace(",", "")) > 0 and float(ratio) > 0 for *_, rate, ratio, _, _ in rows)
    # 448 generated images: 2 steps of 256, the first one read by the loss watch (step 0)
    assert "over 2 steps: 0.500 Python-level reads" in section and "0.500 expected" in section
    assert re.search(r"1-device DDP \(`trainer=ddp trainer\.devices=1`\), mlp at batch 256: [\d,]+ \(", section)
