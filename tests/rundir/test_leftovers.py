"""What a process killed outright leaves in a run directory (rundir/leftovers.py): the next lock
holder removes its temporary files and marks its attempt `killed`; ae-compare shows `killed`
unless the recorded process is alive on this machine. The kills are real: a child process
SIGKILLs itself at the chosen point and the test waits for it, so nothing depends on timing."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from autoencoders.compare.collect import load_runs
from autoencoders.rundir.lock import RunLock
from autoencoders.rundir.record import RunRecord, read_record, timestamp
from autoencoders.training.sweep import plan_for_existing_dir


def killed_child(code: str) -> int:
    """Run `code` in a fresh Python that SIGKILLs itself at its end; its (now dead) pid."""
    script = (
        textwrap.dedent(code)
        + "\nimport os, signal\nprint(os.getpid(), flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    return int(done.stdout.split()[-1])


def test_a_write_killed_midway_leaves_a_temporary_file_that_the_next_lock_holder_removes(tmp_path):
    run = tmp_path / "run"
    RunRecord(run, ["model=vae"], 1).finish("completed", {"test/mse": 0.5})
    before = (run / "metrics.json").read_text()
    pid = killed_child(f"""
        from autoencoders.atomic import atomic_write
        writing = atomic_write({str(run / "metrics.json")!r})  # killed inside its block
        handle = writing.__enter__()
        handle.write('{{"status": "runn')
        handle.flush()
    """)
    litter = [path.name for path in run.glob(".metrics.json.*.tmp")]
    assert len(litter) == 1 and litter[0].startswith(f".metrics.json.{pid}.")  # the writer's pid in its name
    live = run / "checkpoints" / f".last.ckpt.{os.getpid()}.a1b2c3d4.tmp"  # a live writer's: this process
    live.parent.mkdir()
    live.write_bytes(b"half")
    with RunLock(run):
        assert not list(run.glob(".metrics.json.*.tmp")) and live.exists()
    assert (run / "metrics.json").read_text() == before


def test_a_killed_first_run_is_marked_killed_by_the_next_lock_holder_and_resumed_by_a_sweep(tmp_path):
    run = tmp_path / "run"
    pid = killed_child(f"""
        from autoencoders.rundir.record import RunRecord
        RunRecord({str(run)!r}, ["model=vae"], 1)
    """)
    record = read_record(run)
    assert record["status"] == "running" and record["attempt"]["pid"] == pid
    assert record["attempt"]["host"] == platform.node()
    assert [one.status for one in load_runs(tmp_path)] == ["killed"]  # ae-compare, without the lock
    (run / "checkpoints").mkdir()
    with RunLock(run):
        record = read_record(run)
    assert record["status"] == "killed" and "attempt" not in record
    assert record["error"]["type"] == "Killed" and f"pid {pid} on {platform.node()}" in record["error"]["message"]
    assert plan_for_existing_dir(run, ["model=vae"]) == "resume"  # as an interrupted run is


def test_a_killed_resumes_entry_is_marked_killed_and_the_run_keeps_its_status(tmp_path):
    run = tmp_path / "run"
    RunRecord(run, ["model=vae"], 1).finish("completed", {"test/mse": 0.5})
    killed_child(f"""
        from autoencoders.rundir.record import RunRecord
        RunRecord.reopen({str(run)!r}, ["trainer.max_epochs=3"], "checkpoints/last.ckpt", 1)
    """)
    assert read_record(run)["resumes"][0]["status"] == "running"
    with RunLock(run):
        pass
    record = read_record(run)
    assert record["resumes"][0]["status"] == "killed" and record["resumes"][0]["error"]["type"] == "Killed"
    assert record["status"] == "completed" and record["metrics"] == {"test/mse": 0.5} and "attempt" not in record
    assert [one.status for one in load_runs(tmp_path)] == ["completed"]


def test_a_lock_holder_leaves_an_attempt_alone_while_its_process_lives_here(tmp_path):
    run = tmp_path / "run"
    RunRecord(run, [], 1)  # this process: train() called directly, which takes no lock
    with RunLock(run):
        assert read_record(run)["status"] == "running"


def test_ae_compare_says_killed_unless_the_recorded_process_is_alive_here(tmp_path):
    dead, here = killed_child(""), platform.node()
    records = {
        "alive": {"status": "running", "attempt": {"pid": os.getpid(), "host": here, "started": timestamp()}},
        "dead": {"status": "running", "attempt": {"pid": dead, "host": here, "started": timestamp()}},
        # This process's pid, recorded before this process started: the pid was reused since.
        "reused": {
            "status": "running",
            "attempt": {"pid": os.getpid(), "host": here, "started": "2001-01-01T00:00:00+0000"},
        },
        "elsewhere": {"status": "running", "attempt": {"pid": dead, "host": "another-machine", "started": timestamp()}},
        "done": {"status": "completed", "attempt": {"pid": dead, "host": here, "started": timestamp()}},
        # A record written before `attempt`: its provenance names the process.
        "older": {"status": "running", "provenance": {"pid": dead, "hostname": here, "started": timestamp()}},
    }
    for name, record in records.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"metrics": {}, "overrides": [], **record}))
    shown = {run.label: run.status for run in load_runs(tmp_path)}
    assert shown == {
        "alive": "running",
        "dead": "killed",
        "reused": "killed",
        "elsewhere": "running",  # another machine's process cannot be seen from here
        "done": "completed",
        "older": "killed",
    }


def test_the_lock_holder_marks_every_resume_left_running(tmp_path):
    """A record of an earlier version, where a second resume's attempt replaced a killed first's."""
    run = tmp_path / "run"
    RunRecord(run, [], 1).finish("completed", {})
    record = read_record(run)
    record["resumes"] = [{"overrides": [], "status": "running"}, {"overrides": [], "status": "running"}]
    record["attempt"] = {"status": "running", "pid": killed_child(""), "host": platform.node(), "resume": 1}
    Path(run / "metrics.json").write_text(json.dumps(record))
    with RunLock(run):
        pass
    assert [entry["status"] for entry in read_record(run)["resumes"]] == ["killed", "killed"]
