"""A resume writes its checkpoints, events, images and csv/ into <run>/attempt/, and they become
the run's only when it completes (rundir/attempt.py): a resume that fails or is stopped mid-fit
leaves every file of the run's last finished state byte for byte, and TensorBoard reads the same
points; a stopped resume is continued by the next one, so no training is lost."""

import sys

import pytest

from autoencoders.cli import train as cli
from autoencoders.compare import events as compare
from autoencoders.errors import Diverged, RunInterrupted
from autoencoders.models.autoencoder import Autoencoder
from autoencoders.rundir.checkpoints import load_checkpoint
from autoencoders.rundir.record import read_record
from autoencoders.training.pipeline import resume_training, train
from tests.helpers import digest, nan_loss_from_epoch, read_events, sigterm_after_epoch
from tests.views.test_loggers import csv_series

# Images every epoch and latent views (the projector) every epoch, on 16 test images; csv/ beside TensorBoard.
VIEWS = ["logging.latents_every_n_epochs=1", "logging.projector_points=16", "logging.n_images=4", "logger=csv"]
ARGS = ["eval.probe=false", "model.lr_schedule=constant", *VIEWS]
LIVE = ("metrics.json", "train.log", ".lock")  # the record (its own rules: test_attempts.py), the log, the lock


def run_files(run) -> dict[str, str]:
    """Every file of the run's own (content hash and mtime), the attempt folder aside."""
    return {name: value for name, value in digest(run).items() if name not in LIVE and not name.startswith("attempt/")}


def scalars(run) -> dict[str, list[tuple[int, float]]]:
    events = read_events(run)
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def images_after_testing(run) -> dict[str, tuple[bytes, int, bool]]:
    """What ae-compare --images shows of the run: each tag's image drawn after testing."""
    events = compare.read_events(run)
    return {tag: tuple(vars(compare.tested_image(events, tag)).values()) for tag in compare.image_tags(events)}


def layouts(run) -> int:
    """How many Custom Scalars layouts the run's event files hold (one is written per run)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.custom_scalar.metadata import CONFIG_SUMMARY_TAG

    events = [
        event for path in sorted(run.glob("events.out.tfevents.*")) for event in EventFileLoader(str(path)).Load()
    ]
    return sum(value.tag == CONFIG_SUMMARY_TAG for event in events for value in event.summary.value)


def state(run) -> tuple:
    return run_files(run), scalars(run), images_after_testing(run)


@pytest.fixture
def completed(tiny_cfg, tmp_path):
    run = tmp_path / "run"
    train(tiny_cfg(*ARGS), run_dir=run)  # one epoch of 2 steps
    return run


def test_a_stopped_resume_changes_no_file_of_the_completed_run_and_the_next_one_continues_it(
    completed, tiny_cfg, tmp_path, monkeypatch
):
    before = state(completed)
    assert before[2] and "images/reconstructions" in before[2] and "csv/metrics.csv" in before[0]
    sigterm_after_epoch(monkeypatch, Autoencoder, 1)  # the resume trains epoch 1, then is stopped
    with pytest.raises(RunInterrupted, match=r"from its checkpoints in .*attempt/checkpoints: ae-train resume="):
        resume_training(completed, ["trainer.max_epochs=3"])
    monkeypatch.undo()
    assert state(completed) == before  # checkpoints, events, images, csv, projector: byte for byte
    assert (
        read_record(completed)["status"] == "completed"
        and read_record(completed)["resumes"][0]["status"] == "interrupted"
    )
    kept = completed / "attempt" / "checkpoints"
    assert load_checkpoint(kept / "interrupted.ckpt")["global_step"] == 4  # the stopped resume's epoch is kept

    resume_training(completed)  # continues the stopped resume (its trainer.max_epochs=3 replayed)
    record = read_record(completed)
    assert record["resumes"][1]["checkpoint"] == "attempt/checkpoints/interrupted.ckpt"
    assert record["status"] == "completed" and not (completed / "attempt").exists()
    assert record["tested"]["checkpoint"] in ("checkpoints/best.ckpt", "checkpoints/last.ckpt")
    assert (completed / record["tested"]["checkpoint"]).is_file()
    assert load_checkpoint(completed / "checkpoints" / "last.ckpt")["epoch"] == 2
    points = scalars(completed)
    assert [step for step, _ in points["train/loss"]] == [1, 3, 5]  # each epoch once, in order
    assert [step for step, _ in csv_series(completed)["train/loss"]] == [1, 3, 5]
    assert images_after_testing(completed)["images/reconstructions"][1:] == (6, True)  # drawn after testing at step 6
    assert layouts(completed) == 1
    projector = (completed / "projector_config.pbtxt").read_text()
    assert [f"test_codes:{step:05d}" in projector for step in (1, 3, 5, 6)] == [True] * 4  # the first run's epoch too

    # Nothing was lost to the stop: the same as three epochs in one go.
    straight = train(tiny_cfg(*ARGS, "trainer.max_epochs=3"), run_dir=tmp_path / "straight")
    assert record["metrics"]["test/mse"] == pytest.approx(straight["test/mse"], rel=1e-5)
    reference = scalars(tmp_path / "straight")["train/loss"]
    assert [value for _, value in points["train/loss"]] == pytest.approx([value for _, value in reference], rel=1e-5)


def test_a_resume_that_diverges_changes_no_file_of_the_completed_run(completed, monkeypatch, caplog):
    before = state(completed)
    nan_loss_from_epoch(monkeypatch, 2)
    with pytest.raises(Diverged):
        resume_training(completed, ["trainer.max_epochs=4"])  # epoch 1 is saved, epoch 2 diverges
    assert state(completed) == before
    entry = read_record(completed)["resumes"][0]
    assert entry["status"] == "diverged" and "non-finite" in entry["error"]["message"]
    assert load_checkpoint(completed / "attempt" / "checkpoints" / "last.ckpt")["epoch"] == 1  # its last good epoch
    monkeypatch.undo()
    # Not from the stopped one; and its trainer.max_epochs=4 is not inherited (it diverged): given again.
    resume_training(completed, ["trainer.max_epochs=4"], checkpoint=completed / "checkpoints" / "last.ckpt")
    assert "discarding the stopped resume in" in caplog.text and not (completed / "attempt").exists()
    assert read_record(completed)["last"]["epoch"] == 3  # epochs 1-3 again, from the completed state


def test_an_interrupted_run_stopped_again_on_resume_keeps_all_its_training(tiny_cfg, tmp_path, monkeypatch):
    run = tmp_path / "run"
    sigterm_after_epoch(monkeypatch, Autoencoder, 0)
    with pytest.raises(RunInterrupted):
        train(tiny_cfg(*ARGS, "trainer.max_epochs=3"), run_dir=run)
    before = state(run)
    sigterm_after_epoch(monkeypatch, Autoencoder, 1)
    with pytest.raises(RunInterrupted):
        resume_training(run)
    monkeypatch.undo()
    assert state(run) == before and read_record(run)["status"] == "interrupted"
    # ae-train resume=<run>/attempt/checkpoints/interrupted.ckpt: the second stop's run, epoch 2 only.
    monkeypatch.setattr(sys, "argv", ["ae-train", f"resume={run / 'attempt' / 'checkpoints' / 'interrupted.ckpt'}"])
    cli.main()
    monkeypatch.undo()
    record = read_record(run)
    assert [entry["checkpoint"] for entry in record["resumes"]] == [
        "checkpoints/interrupted.ckpt",
        "attempt/checkpoints/interrupted.ckpt",
    ]
    assert record["status"] == "completed" and record["last"]["epoch"] == 2
    assert [step for step, _ in scalars(run)["train/loss"]] == [1, 3, 5]
    straight = train(tiny_cfg(*ARGS, "trainer.max_epochs=3"), run_dir=tmp_path / "straight")
    assert record["metrics"]["test/mse"] == pytest.approx(straight["test/mse"], rel=1e-5)


def test_a_signal_while_a_completed_resume_moves_its_files_is_noted_and_the_move_finishes(completed, monkeypatch):
    import os
    import signal
    from types import SimpleNamespace

    import autoencoders.rundir.attempt as attempt_module

    moved = []

    def replace(source, target):  # SIGTERM to this process after the first file is moved
        os.replace(source, target)
        moved.append(str(target))
        if len(moved) == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(attempt_module, "os", SimpleNamespace(replace=replace))  # the promotion's moves only
    try:
        metrics = resume_training(completed, ["trainer.max_epochs=2"])
    except RunInterrupted:  # a KeyboardInterrupt: uncaught, it would end the whole test session
        pytest.fail("the signal cut the move of the completed resume's files in half")
    record = read_record(completed)
    assert len(moved) > 3 and not (completed / "attempt").exists()  # every file moved, then the folder went
    assert record["status"] == "completed" and record["resumes"][0]["status"] == "completed"
    assert record["metrics"] == metrics and load_checkpoint(completed / "checkpoints" / "last.ckpt")["epoch"] == 1


class Killed(BaseException):
    """Stands for SIGKILL or a power loss: nothing of the process runs after it (in these tests,
    only the code a BaseException passes through, which must write nothing)."""


def kill_after_moves(monkeypatch, count: int) -> list[str]:
    """The promotion's process dies right after its `count`-th file move."""
    import os
    from types import SimpleNamespace

    import autoencoders.rundir.attempt as attempt_module

    moved = []

    def replace(source, target):
        if len(moved) == count:
            raise Killed
        os.replace(source, target)
        moved.append(str(target))

    monkeypatch.setattr(attempt_module, "os", SimpleNamespace(replace=replace))
    return moved


def contents(run) -> dict[str, bytes]:
    return {
        str(path.relative_to(run)): path.read_bytes()
        for path in sorted(run.rglob("*"))
        if path.is_file() and path.name != ".lock"
    }


def test_a_promotion_cut_after_any_move_is_finished_by_the_next_lock_holder_as_if_never_cut(tmp_path, monkeypatch):
    import shutil

    from autoencoders.rundir.attempt import finish_promotion, promote
    from autoencoders.rundir.lock import RunLock

    source = tmp_path / "source"
    files = {  # the run's last finished state, and a completed resume's files (its record last to move)
        "metrics.json": b'{"status": "completed", "attempt": "running"}',
        "checkpoints/best.ckpt": b"old best",
        "checkpoints/last.ckpt": b"old last",
        "events.out.tfevents.200.host": b"old events",
        "attempt/checkpoints/best.ckpt": b"new best",
        "attempt/checkpoints/last.ckpt": b"new last",
        "attempt/csv/metrics.csv": b"new csv",
        "attempt/events.out.tfevents.100.host": b"new events",  # sorts before the run's: renamed after them
        "attempt/events.out.tfevents.300.host": b"newer events",
        "attempt/metrics.pending.json": b'{"status": "completed", "resumes": ["completed"]}',
    }
    for name, data in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    whole = tmp_path / "whole"
    shutil.copytree(source, whole)
    promote(whole)
    expected = contents(whole)
    assert expected["metrics.json"] == files["attempt/metrics.pending.json"] and not (whole / "attempt").exists()
    assert expected["events.out.tfevents.200.host.host"] == b"new events"  # after the run's own, in their order
    assert not finish_promotion(whole)  # nothing left to finish

    moves = 6  # every file of the attempt, the record last
    for count in range(moves):
        run = tmp_path / f"cut{count}"
        shutil.copytree(source, run)
        kill_after_moves(monkeypatch, count)
        with pytest.raises(Killed):
            promote(run)
        monkeypatch.undo()
        assert contents(run)["metrics.json"] == files["metrics.json"]  # the record moves last: still the old one
        assert contents(run) != expected
        with RunLock(run):  # any ae-train, resume, sweep re-run or ae-eval of the run takes it first
            assert contents(run) == expected, count
        assert not (run / "attempt").exists()


def test_a_completed_resume_killed_while_moving_its_files_is_finished_by_ae_eval(completed, monkeypatch, caplog):
    from autoencoders.evaluation.finished_run import evaluate_run

    before = read_record(completed)
    moved = kill_after_moves(monkeypatch, 1)
    with pytest.raises(Killed):
        resume_training(completed, ["trainer.max_epochs=2"])
    monkeypatch.undo()
    assert len(moved) == 1 and (completed / "attempt" / "checkpoints" / "last.ckpt").is_file()  # one file moved
    record = read_record(completed)
    assert record["status"] == "completed" and record["metrics"] == before["metrics"]  # what ran after wrote nothing
    assert (completed / "attempt" / "metrics.pending.json").is_file()
    assert load_checkpoint(completed / "checkpoints" / "last.ckpt")["epoch"] == 0  # half old, half new

    # ae-eval of the checkpoint the killed resume left in attempt/: its lock finishes the move first.
    entry = evaluate_run(completed / "attempt" / "checkpoints" / "last.ckpt", overrides=["eval.nll_samples=0"])
    assert "finishing the move now" in caplog.text and not (completed / "attempt").exists()
    record = read_record(completed)
    assert record["status"] == "completed" and record["resumes"][0]["status"] == "completed"
    assert "attempt" not in record and before["last"]["epoch"] == 0 and record["last"]["epoch"] == 1
    assert load_checkpoint(completed / "checkpoints" / "last.ckpt")["epoch"] == 1
    assert entry["checkpoint"] == "checkpoints/last.ckpt"
    assert [step for step, _ in scalars(completed)["train/loss"]] == [1, 3]  # both epochs, once each
