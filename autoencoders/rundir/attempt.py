"""Where a resume writes its files until it completes: `<run>/attempt/`, promoted into the run
directory only when the resume completes.

A run's last finished state is metrics.json (rundir/record.py), the checkpoints it names and the
TensorBoard points and images it describes. A first run writes them in place. A resume writes
its checkpoints, event files, hparams.yaml, projector files, csv/ and timing.json into
`<run>/attempt/` instead, with the same layout; when it completes, `promote` moves each file to
the same place in the run directory (one rename each, in one file system), and only then does
the record take the attempt's results. A resume that fails or is stopped leaves the run's own
files as they were. Its folder stays while it holds a checkpoint, and the next resume continues
from there (its checkpoints are the newest): an interrupted resume loses no training. A resume
that starts from any other checkpoint clears the folder first.

TensorBoard reads a run directory's event files in name order, and the first event of every
session is a restart marker at the step it starts from (views/tensorboard.SessionLogger's
purge_step), which drops the points at and after that step from the files read before it. In
`<run>/attempt/` that marker drops nothing of the run's; once promoted, the attempt's files come
after the run's own, and its marker replaces the points it logged again, as an in-place resume's did.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger("autoencoders")

ATTEMPT_DIR = "attempt"
EVENTS = "events.out.tfevents."


def attempt_dir(run_dir: Path) -> Path:
    """The folder a resume of `run_dir` writes into until it completes."""
    return Path(run_dir) / ATTEMPT_DIR


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Where a run's checkpoints are: its own, and those of a resume that did not complete."""
    return [Path(run_dir) / "checkpoints", attempt_dir(run_dir) / "checkpoints"]


def in_attempt(path: Path, run_dir: Path) -> bool:
    """Whether `path` lies in the run's attempt folder (a checkpoint of a resume that did not complete)."""
    return Path(path).resolve().is_relative_to(attempt_dir(run_dir).resolve())


def run_of_checkpoint(path: Path) -> Path:
    """The run directory of a checkpoint file: <run>/checkpoints/x.ckpt, or a stopped resume's
    <run>/attempt/checkpoints/x.ckpt; a checkpoint elsewhere, its folder."""
    folder = Path(path).resolve().parent
    if folder.name != "checkpoints":
        return Path(path).parent
    return folder.parent.parent if folder.parent.name == ATTEMPT_DIR else folder.parent


def promoted_name(path: Path, run_dir: Path) -> str:
    """The name a file of the run has in the run directory once its attempt is promoted
    (`attempt/checkpoints/best.ckpt` -> `checkpoints/best.ckpt`)."""
    resolved = Path(path).resolve()
    for base in (attempt_dir(run_dir).resolve(), Path(run_dir).resolve()):
        if resolved.is_relative_to(base):
            return str(resolved.relative_to(base))
    return str(path)


def open_attempt(run_dir: Path, checkpoint: Path | None) -> Path:
    """The folder this resume writes into: the attempt folder, continued when the resume starts
    from one of its checkpoints, cleared of an earlier resume's files otherwise."""
    folder = attempt_dir(run_dir)
    if folder.is_dir() and not (checkpoint is not None and in_attempt(checkpoint, run_dir)):
        kept = sorted(path.name for path in (folder / "checkpoints").glob("*.ckpt"))
        if kept:
            log.warning(
                "Resuming %s from %s: discarding the stopped resume in %s (%s).",
                run_dir,
                checkpoint,
                folder,
                ", ".join(kept),
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def end_attempt(run_dir: Path) -> None:
    """After a resume that did not complete: its folder stays when it holds a checkpoint to
    continue from, and goes otherwise (its events alone could not be continued)."""
    folder = attempt_dir(run_dir)
    if folder.is_dir() and not any((folder / "checkpoints").glob("*.ckpt")):
        shutil.rmtree(folder)


def promote(run_dir: Path) -> None:
    """Move every file of the completed attempt to the same place in the run directory, then
    remove the attempt folder. Event files keep TensorBoard's reading order: each lands after
    the run's own (renamed when its name would sort before them)."""
    folder, run_dir = attempt_dir(run_dir), Path(run_dir)
    if not folder.is_dir():
        return
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    events = [path for path in files if path.parent == folder and path.name.startswith(EVENTS)]
    for path in files:
        if path not in events:
            target = run_dir / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    for path in events:  # in the order TensorBoard read them in the attempt folder
        last = max((p.name for p in run_dir.glob(f"{EVENTS}*")), default="")
        name = path.name if path.name > last else f"{last}.{path.name.rsplit('.', 1)[-1]}"
        os.replace(path, run_dir / name)
    shutil.rmtree(folder)
