"""One process per run directory: a second run aimed at a live one is refused and touches nothing."""

import os
import signal
import subprocess
import sys
import time

import pytest

from autoencoders.errors import RunDirectoryBusy
from autoencoders.rundir.lock import LOCK_FILE, RunLock
from autoencoders.training.pipeline import train
from tests.helpers import ae_train, ae_train_here, digest

TINY = ["data=synthetic", "trainer=fast", "torch_threads=1", "logging.projector_points=0"]


def test_a_second_holder_is_refused_until_the_first_releases(tmp_path):
    first, second = RunLock(tmp_path), RunLock(tmp_path)
    first.acquire()
    with pytest.raises(RunDirectoryBusy, match=rf"in use by process {os.getpid()} on .*Nothing there was changed"):
        second.acquire()
    first.release()
    second.acquire()  # free again
    second.release()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    code = f"import time; from autoencoders.rundir.lock import RunLock; lock = RunLock({str(tmp_path)!r}); lock.acquire(); print('held', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunDirectoryBusy, match=f"process {holder.pid} "):
        RunLock(tmp_path).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    lock = RunLock(tmp_path)
    lock.acquire()  # the kernel released it with the process
    lock.release()


def test_ae_train_into_a_live_runs_directory_exits_1_and_touches_nothing(tiny_cfg, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(tiny_cfg(), run_dir=run)
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text("a live run's own copy\n")
    (run / "train.log").write_text("a live run's log\n")
    with RunLock(run):  # this process plays the live run (flock: a second open file is refused, also here)
        before = digest(run)
        time.sleep(0.01)  # so a rewrite would show in the mtimes
        done = ae_train_here(*TINY, f"hydra.run.dir={run}", cwd=tmp_path, monkeypatch=monkeypatch)
        assert digest(run) == before
    assert done.returncode == 1
    assert f"{run} is in use by process {os.getpid()}" in done.stderr and "Traceback" not in done.stdout + done.stderr
    assert done.stderr.count("is in use by") == 1  # said once


def test_a_sweep_rerun_into_a_running_sweep_leaves_the_running_job_alone(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, "model.latent_dim=2,3", f"hydra.sweep.dir={sweep}"]
    assert ae_train_here(*args, cwd=tmp_path, monkeypatch=monkeypatch).returncode == 0
    jobs = sorted(path.parent for path in sweep.rglob("metrics.json"))
    with RunLock(jobs[0]):  # job 0 is still running
        before = digest(jobs[0])
        done = ae_train_here(*args, cwd=tmp_path, monkeypatch=monkeypatch)
        assert digest(jobs[0]) == before
    assert done.returncode == 1 and "is in use by" in done.stderr
    assert "Skipping" in done.stderr  # job 1 had completed: skipped, not retrained


def test_the_lock_file_is_part_of_a_runs_layout(tiny_cfg, tmp_path):
    train(tiny_cfg(), run_dir=tmp_path)  # train() itself takes no lock: the job around it does
    assert not (tmp_path / LOCK_FILE).exists()
    done = ae_train(*TINY, f"hydra.run.dir={tmp_path / 'cli'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "cli" / LOCK_FILE).is_file() and (tmp_path / "cli" / "train.log").is_file()
    assert (tmp_path / "cli" / ".hydra" / "overrides.yaml").is_file()
