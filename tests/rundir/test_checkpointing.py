"""How training writes checkpoints and records: whole or not at all, even on a full disk."""

import errno
import json
import os
import shutil

import pytest
import torch

from autoencoders.rundir.checkpoints import load_checkpoint
from autoencoders.rundir.record import read_record
from autoencoders.training.pipeline import resume_training, train

QUIET = ["logging.images_every_n_epochs=0", "logging.projector_points=0", "eval.probe=false"]


def disk_full_after(monkeypatch, suffix: str, writes: int) -> list[str]:
    """Moving a finished temp file onto a `suffix` file fails with ENOSPC after `writes` successful
    moves, as it would when the disk filled up while the temp file was written."""
    done: list[str] = []
    real_replace = os.replace

    def replace(source, target):
        if str(target).endswith(suffix):
            if len(done) >= writes:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
            done.append(str(target))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    return done


def test_a_full_disk_fails_the_run_and_keeps_the_last_good_checkpoint(tiny_cfg, tmp_path, monkeypatch):
    # Epoch 0 writes best.ckpt and last.ckpt; epoch 1's first write finds the disk full.
    written = disk_full_after(monkeypatch, ".ckpt", writes=2)
    with pytest.raises(OSError, match="No space left on device"):
        train(tiny_cfg("trainer.max_epochs=3", *QUIET), run_dir=tmp_path)
    assert [os.path.basename(path) for path in written] == ["best.ckpt", "last.ckpt"]
    saved = read_record(tmp_path)
    assert saved["status"] == "failed" and saved["error"]["type"] == "DiskFull"
    message = saved["error"]["message"]  # said as what it is, naming the file and the space left
    assert f"No space left on device while writing {tmp_path / 'checkpoints'}" in message and "MiB free" in message
    last = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")  # whole, and resumable
    assert last["epoch"] == 0 and all(torch.isfinite(value).all() for value in last["state_dict"].values())
    assert sorted(path.name for path in (tmp_path / "checkpoints").iterdir()) == [
        "best.ckpt",
        "last.ckpt",
    ]  # no temp files
    monkeypatch.undo()
    metrics = resume_training(tmp_path)  # the disk has room again
    assert read_record(tmp_path)["status"] == "completed" and "test/mse" in metrics


def test_when_even_the_record_cannot_be_written_the_previous_one_stays_whole(tiny_cfg, tmp_path, monkeypatch):
    train(tiny_cfg(*QUIET), run_dir=tmp_path)
    before = (tmp_path / "metrics.json").read_text()
    disk_full_after(monkeypatch, "metrics.json", writes=0)
    with pytest.raises(OSError, match="No space left on device"):
        train(tiny_cfg(*QUIET, "seed=3"), run_dir=tmp_path)
    assert (tmp_path / "metrics.json").read_text() == before  # untouched, still the finished run's
    assert json.loads(before)["status"] == "completed"
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".tmp")]


def test_torchs_short_write_on_a_full_disk_is_named_as_a_full_disk(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from autoencoders.errors import DiskFull
    from autoencoders.rundir.checkpoints import AtomicCheckpointIO

    def short_write(*args, **kwargs):  # what torch.save raises when its zip writer runs out of room
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(torch, "save", short_write)
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(10 * 2**30, 10 * 2**30 - 2**20, 2**20))
    with pytest.raises(DiskFull, match=r"No space left on device while writing .*last.ckpt \(1.0 MiB free there now\)"):
        AtomicCheckpointIO().save_checkpoint({}, tmp_path / "last.ckpt")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(10 * 2**30, 0, 10 * 2**30))
    with pytest.raises(RuntimeError, match="unexpected pos"):  # with room to spare it is some other fault
        AtomicCheckpointIO().save_checkpoint({}, tmp_path / "last.ckpt")
    assert list(tmp_path.iterdir()) == []


def test_the_record_is_as_readable_as_the_other_files(tiny_cfg, tmp_path):
    train(tiny_cfg(*QUIET), run_dir=tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == (tmp_path / "config.yaml").stat().st_mode & 0o777


def test_a_moved_run_keeps_its_best_checkpoint_when_resumed(tiny_cfg, tmp_path, monkeypatch):
    from autoencoders.models.autoencoder import Autoencoder

    original = Autoencoder.loss_terms

    def worse_from_epoch_1(self, x):  # so that epoch 0 stays the best
        terms, x_hat = original(self, x)
        if not self.training and self.current_epoch >= 1:
            terms["loss"] = terms["loss"] + 1.0
        return terms, x_hat

    monkeypatch.setattr(Autoencoder, "loss_terms", worse_from_epoch_1)
    args = [*QUIET, "model.lr_schedule=constant"]
    train(tiny_cfg(*args, "trainer.max_epochs=2"), run_dir=tmp_path / "a")
    shutil.move(tmp_path / "a", tmp_path / "b")
    resume_training(tmp_path / "b", ["trainer.max_epochs=3"])
    names = sorted(path.name for path in (tmp_path / "b" / "checkpoints").iterdir())
    assert names == ["best.ckpt", "last.ckpt"]  # no best-v1.ckpt
    assert load_checkpoint(tmp_path / "b" / "checkpoints" / "best.ckpt")["epoch"] == 0  # epoch 2 did not count as best
    assert read_record(tmp_path / "b")["tested"]["epoch"] == 0


def test_the_best_checkpoint_callback_keeps_lightnings_state_key():
    # Checkpoints written before RunCheckpoint keep ModelCheckpoint's state under this key; a key
    # of its own would leave the best score of every such run behind on resume.
    from lightning.pytorch.callbacks import ModelCheckpoint

    from autoencoders.rundir.checkpoints import RunCheckpoint

    for settings in ({"monitor": "val/loss"}, {}):
        ours = RunCheckpoint(dirpath="checkpoints", filename="best", **settings)
        theirs = ModelCheckpoint(dirpath="checkpoints", filename="best", **settings)
        assert ours.state_key == theirs.state_key


def test_the_console_points_to_the_record_only_when_it_holds_the_failure(tiny_cfg, tmp_path, monkeypatch, caplog):
    from autoencoders.models.autoencoder import Autoencoder
    from autoencoders.rundir import record as record_module
    from autoencoders.training.job import report_failure

    def broken_step(self, batch, batch_idx):
        raise RuntimeError("a fault inside training")

    monkeypatch.setattr(Autoencoder, "training_step", broken_step)
    for name, record_fails in (("recorded", False), ("unrecorded", True)):
        if record_fails:  # the write of the failed record is refused (a read-only place, say)
            real_write = record_module.write_json_atomic

            def refuse_failed(path, payload, real_write=real_write):
                if payload.get("status") == "failed":
                    raise PermissionError(13, "Permission denied", str(path))
                real_write(path, payload)

            monkeypatch.setattr(record_module, "write_json_atomic", refuse_failed)
        with pytest.raises(Exception) as raised:  # noqa: PT011 (the fault, or the record's own)
            train(tiny_cfg(*QUIET), run_dir=tmp_path / name)
        caplog.clear()
        report_failure(tmp_path / name, raised.value)
        said = caplog.records[-1].getMessage()
        path = tmp_path / name / "metrics.json"
        if record_fails:
            assert read_record(tmp_path / name)["status"] == "running"  # the last record that could be written
            assert f"{path} could not record it" in said and "the traceback is in" not in said
        else:
            assert f"the traceback is in {path}" in said and "a fault inside training" in said
