"""The code passes the linter configured in pyproject.toml ([tool.ruff]), and the check fails on a
planted defect, so a silent linter cannot pass for a clean codebase."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUFF = Path(sys.executable).parent / "ruff"


def ruff_check(*paths: Path) -> subprocess.CompletedProcess:
    command = [RUFF, "check", "--config", ROOT / "pyproject.toml", "--no-cache", *paths]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_the_package_tests_and_scripts_pass_ruff():
    done = ruff_check(ROOT / "autoencoders", ROOT / "tests", ROOT / "scripts")
    assert done.returncode == 0, done.stdout[-3000:]


def test_the_code_is_formatted_and_nothing_opts_out():
    paths = [ROOT / "autoencoders", ROOT / "tests", ROOT / "scripts"]
    done = subprocess.run(
        [RUFF, "format", "--check", "--config", ROOT / "pyproject.toml", "--no-cache", *paths],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    marker = "fmt: " + "skip"  # spelled apart, so this file does not count itself
    assert not [str(path) for folder in paths for path in folder.rglob("*.py") if marker in path.read_text()]


def test_ruff_reports_a_planted_defect(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("import os\n\n\ndef f(x):\n    return undefined_name + x\n")
    done = ruff_check(planted)
    assert done.returncode == 1 and "F401" in done.stdout and "F821" in done.stdout
