#!/usr/bin/env bash
# One command for a machine with a GPU (issue 37): (a), (a+) and (c) images/s for mlp and conv at
# batch 256 and 1,024, host syncs per step and a 1-GPU DDP run, into bench/results.md (section
# "device", the device named). At most 5 minutes. `--dry` checks it on a CPU (no GPU claims).
# Method: the docstring of scripts/bench_device.py.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3
exec timeout 300 "$python" scripts/bench_device.py "$@"
