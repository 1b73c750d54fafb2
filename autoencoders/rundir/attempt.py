"""Where a resume writes its files until it completes: `<run>/attempt/`, promoted into the run
directory only when the resume completes.

A run's last finished state is metrics.json (rundir/record.py), the checkpoints it names and the
TensorBoard points and images it describes. A first run writes them in place. A resume writes
its checkpoints, event files, hparams.yaml, projector files, csv/ and timing.json into
`<run>/attempt/` instead, with the same layout; when it completes, `promote` moves each file to
the same place in the run directory (one rename each, in one file system), and only then does
the record take the attempt's results. The commit point is the attempt's completed record, written
whole as `attempt/metrics.pending.json` before the first file moves and moved last, onto the
run's metrics.json: a process killed outright (SIGKILL, power loss) while the files move leaves
that record behind, and the next process that takes the run's lock (ae-train, a resume, a sweep's
re-run, ae-eval: rundir/lock.py) finishes the move before it reads anything. A resume that fails
or is stopped leaves the run's own files as they were. Its folder stays while it holds a checkpoint, and the next resume continues
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

from autoencoders.rundir.record import METRICS_FILE

log = logging.getLogger("autoencoders")

ATTEMPT_DIR = "attempt"
EVENTS = "events.out.tfevents."
PENDING_RECORD = "metrics.pending.json"  # the completed attempt's record, moved last onto metrics.json


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


def where_now(path: Path, run_dir: Path) -> Path:
    """A checkpoint path as it is now: one of the attempt's, moved into the run directory when a
    completed resume's move was finished (finish_promotion), is found there."""
    path = Path(path)
    if not path.is_file() and in_attempt(path, run_dir):
        return Path(run_dir) / promoted_name(path, run_dir)
    return path


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


def pending_record(run_dir: Path) -> Path:
    """Where a completed attempt's record waits while its files move (the commit point)."""
    return attempt_dir(run_dir) / PENDING_RECORD


def end_attempt(run_dir: Path) -> None:
    """After a resume that did not complete: its folder stays when it holds a checkpoint to
    continue from, and goes otherwise (its events alone could not be continued). A folder whose
    record is written (the attempt completed; moving its files failed) always stays."""
    folder = attempt_dir(run_dir)
    if pending_record(run_dir).is_file():
        return
    if folder.is_dir() and not any((folder / "checkpoints").glob("*.ckpt")):
        shutil.rmtree(folder)


def finish_promotion(run_dir: Path) -> bool:
    """Under the run's lock, before anything reads the run: a completed attempt whose files were
    being moved when its process died has its move finished (each move is one rename, so doing
    the rest is enough). Whether there was one."""
    if not pending_record(run_dir).is_file():
        return False
    log.warning(
        "%s: a resume completed but its process ended while moving its files into the run "
        "directory; finishing the move now (%s).",
        run_dir,
        pending_record(run_dir),
    )
    promote(run_dir)
    return True


def promote(run_dir: Path) -> None:
    """Move every file of the completed attempt to the same place in the run directory, its
    record (PENDING_RECORD) last, onto the run's; then remove the attempt folder. Event files
    keep TensorBoard's reading order: each lands after the run's own (renamed when its name would
    sort before them). Cut short at any point, calling it again finishes the same move."""
    folder, run_dir = attempt_dir(run_dir), Path(run_dir)
    if not folder.is_dir():
        return
    record = pending_record(run_dir)
    files = sorted(path for path in folder.rglob("*") if path.is_file() and path != record)
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
    if record.is_file():
        os.replace(record, run_dir / METRICS_FILE)
    shutil.rmtree(folder)
