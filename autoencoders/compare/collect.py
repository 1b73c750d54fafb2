"""The runs ae-compare reads: one `Run` per metrics.json below a directory.

Reads only metrics.json files (see rundir/record.py), so it works on running, failed and finished
sweeps alike, and never imports torch. A run whose record says running while the process it names
is gone from this machine is shown `killed` (rundir/leftovers.py).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoencoders.errors import UnsupportedVersion
from autoencoders.rundir.leftovers import seen_status
from autoencoders.rundir.record import METRICS_FILE, check_schema_version
from autoencoders.schema import run_name_excluded_keys

SEED_KEY = "seed"
ERROR_WIDTH = 70


class CompareError(Exception):
    """A problem with the user's request; `code` is the exit status (1: no runs, 2: bad option)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Run:
    """What ae-compare needs from one metrics.json."""

    label: str  # run directory relative to the directory being compared
    status: str
    metrics: dict[str, float]
    overrides: dict[str, str]
    error: str
    evaluation: str = ""  # what the evaluations used (sample sizes, reference network), as sorted JSON
    data: str = ""  # the record's data entry (name, source, sizes, binarize), as sorted JSON


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """["model.beta=4", "+trainer.x=1", "model/net=conv"] -> {"model.beta": "4", "trainer.x": "1",
    "model.net": "conv"}: a nested group's choice is keyed like the setting it makes (model/net=conv
    and model.net=conv both choose the conv network)."""
    parsed: dict[str, str] = {}
    for item in overrides:
        key, _, value = item.partition("=")
        parsed[key.lstrip("+").replace("/", ".")] = value  # `+key` / `++key` set the same key as `key`
    return parsed


# The model's size from the record (rundir/record.py `model`), shown beside the metrics.
SIZE_METRICS = {"model/parameters": "parameters", "model/multiply_adds": "multiply_adds"}


def _size(record: dict[str, Any]) -> dict[str, float]:
    """The size of a run's model, from records that measured its multiply-adds (networks as configs on)."""
    model = record.get("model") if isinstance(record.get("model"), dict) else {}
    if not isinstance(model.get("multiply_adds"), (int, float)):
        return {}
    return {name: float(model[key]) for name, key in SIZE_METRICS.items() if isinstance(model.get(key), (int, float))}


def natural_key(text: str) -> list[Any]:
    # Sweep jobs are named 0_..., 1_..., 10_...; sort them as numbers, not as strings.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _short_error(error: Any) -> str:
    if not isinstance(error, dict):
        return ""
    message = str(error.get("message") or "").strip().splitlines()
    text = f"{error.get('type') or 'Error'}: {message[0] if message else ''}".rstrip(": ")
    return text if len(text) <= ERROR_WIDTH else text[: ERROR_WIDTH - 1] + "…"


def _read_run(path: Path, root: Path) -> Run:
    """Parse one metrics.json; raise ValueError saying what is wrong with it."""
    try:
        record = check_schema_version(json.loads(path.read_text()), path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, UnsupportedVersion) as error:
        raise ValueError(f"cannot read it ({error})") from error
    if not isinstance(record, dict) or not isinstance(record.get("status"), str):
        raise ValueError("not a run record (no 'status')")
    metrics, overrides = record.get("metrics") or {}, record.get("overrides") or []
    if not isinstance(metrics, dict) or not isinstance(overrides, list):
        raise ValueError("'metrics' must be an object and 'overrides' a list")
    try:
        floats = {str(name): float(value) for name, value in metrics.items()}
    except (TypeError, ValueError) as error:
        raise ValueError(f"a metric is not a number ({error})") from error
    label = path.parent.relative_to(root).as_posix()
    return Run(
        label,
        seen_status(record),  # `killed` for a run whose recorded process is gone
        {**floats, **_size(record)},
        effective_overrides(record, [str(item) for item in overrides]),
        _short_error(record.get("error")),
        _evaluation_settings(record.get("evaluation")),
        json.dumps(record.get("data"), sort_keys=True),
    )


def _evaluation_settings(used: Any) -> str:
    """The record's `evaluation` entry without its timings: equal strings, comparable scores."""
    if not isinstance(used, dict):
        return ""
    kept = {
        name: {key: value for key, value in part.items() if key != "seconds"} if isinstance(part, dict) else part
        for name, part in used.items()
    }
    return json.dumps(kept, sort_keys=True)


def evaluation_differences(runs: list[Run]) -> str:
    """A note naming runs whose scores came from other evaluation settings or another reference
    network than the first run's; empty when they agree."""
    settings = [run for run in runs if run.evaluation]
    others = [run.label for run in settings if run.evaluation != settings[0].evaluation] if settings else []
    if not others:
        return ""
    return (
        f"note: {len(others)} run(s) were scored with other evaluation settings or another reference network "
        f"than {settings[0].label} (metrics.json, 'evaluation'): {', '.join(others[:5])}"
        + (" ..." if len(others) > 5 else "")
    )


# A pseudo-key beside the overrides: the epochs a run trained (its own, its resumes' included).
EPOCHS_KEY = "epochs"


def effective_overrides(record: dict[str, Any], overrides: list[str]) -> dict[str, str]:
    """The run's overrides as it now stands: its own, then those of every resume that completed
    (an extended job differs from its sweep siblings by them), the edits of its config.yaml a
    resume accepted, and the epochs it trained."""
    parsed = parse_overrides(overrides)
    for entry in record.get("resumes") or []:
        if not isinstance(entry, dict) or entry.get("status", "completed") != "completed":
            continue  # a resume that failed or was stopped changed nothing
        parsed.update(parse_overrides([str(item) for item in entry.get("overrides") or []]))
        parsed.update({key: _plain(change[1]) for key, change in (entry.get("config_changes") or {}).items()})
    last = record.get("last") or {}
    if isinstance(last.get("epoch"), int):
        parsed[EPOCHS_KEY] = str(last["epoch"] + 1)
    return parsed


def _plain(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def load_runs(root: Path) -> list[Run]:
    """Every readable metrics.json below `root`, in natural path order; warns about the others."""
    if not root.is_dir():
        raise CompareError(f"ae-compare: {root} is not a directory", 1)
    paths = sorted(root.rglob(METRICS_FILE), key=lambda path: natural_key(path.as_posix()))
    if not paths:
        raise CompareError(f"ae-compare: no {METRICS_FILE} found under {root}", 1)
    runs = []
    for path in paths:
        try:
            runs.append(_read_run(path, root))
        except ValueError as error:  # a half-written or foreign file must not hide the other runs
            print(f"warning: skipping {path}: {error}", file=sys.stderr)
    if not runs:
        raise CompareError(f"ae-compare: no readable {METRICS_FILE} under {root}", 1)
    return runs


def varying_keys(runs: list[Run]) -> list[str]:
    """Override keys whose value (or presence) differs between runs, in first-seen order."""
    keys = dict.fromkeys(key for run in runs for key in run.overrides if key not in run_name_excluded_keys())
    return [key for key in keys if len({run.overrides.get(key) for run in runs}) > 1]


def number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def value_order(values: list[str]) -> list[str]:
    """Numbers by value (1e-3 < 3e-3 < 0.01), anything else in natural order."""
    if all(number(value) is not None for value in values):
        return sorted(values, key=lambda value: number(value))
    return sorted(values, key=natural_key)


def check_key(key: str | None, runs: list[Run], option: str) -> None:
    """Exit 2 (CompareError) when `key` is no override key of these runs, listing the ones there are."""
    known = sorted({name for run in runs for name in run.overrides})
    if key is not None and key not in known:
        listed = ", ".join(known) or "(none)"
        raise CompareError(
            f"ae-compare: error: unknown override key {key!r} for {option}; keys in these runs: {listed}", 2
        )


def available_metrics(runs: list[Run]) -> list[str]:
    return sorted({name for run in runs for name in run.metrics})


def check_metric(name: str, runs: list[Run], option: str) -> None:
    if name not in available_metrics(runs):
        known = ", ".join(available_metrics(runs)) or "(none)"
        raise CompareError(f"ae-compare: error: unknown metric {name!r} for {option}; available metrics: {known}", 2)
