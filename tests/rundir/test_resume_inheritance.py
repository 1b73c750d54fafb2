"""What a resume inherits from earlier ones (rundir/resume.py): only a completed attempt changes
it. A resume that failed passes on none of its settings (they may be why it failed); one that
was stopped passes them only to the resume that finishes its attempt."""

from pathlib import Path

import pytest

import autoencoders.evaluation.suite as suite
from autoencoders.errors import ConfigError
from autoencoders.rundir.checkpoints import load_checkpoint
from autoencoders.rundir.record import read_record
from autoencoders.rundir.resume import inherited_overrides, plan_resume
from autoencoders.training.pipeline import resume_training, train
from tests.helpers import digest

QUIET = [
    "logging.images_every_n_epochs=0",
    "logging.projector_points=0",
    "eval.probe=false",
    "model.lr_schedule=constant",
]


@pytest.fixture
def finished(tiny_cfg, tmp_path) -> Path:
    run = tmp_path / "run"
    train(tiny_cfg(*QUIET), run_dir=run, overrides=["data=synthetic"])
    return run


def test_a_resume_that_failed_after_training_passes_none_of_its_settings_on(finished, monkeypatch):
    evaluate = suite.evaluate_model

    def fails_with_seven(settings, *args, **kwargs):  # a setting that breaks the evaluation, after training
        if settings.nll_images == 7:
            raise RuntimeError("the evaluation broke on eval.nll_images=7")
        return evaluate(settings, *args, **kwargs)

    monkeypatch.setattr(suite, "evaluate_model", fails_with_seven)
    with pytest.raises(RuntimeError, match="broke on eval.nll_images=7"):
        resume_training(finished, ["trainer.max_epochs=2", "eval.nll_images=7"])  # trains epoch 1, then fails
    assert read_record(finished)["resumes"][0]["status"] == "failed"
    plan = plan_resume(finished, [])  # continues the failed resume's checkpoint, without its settings
    assert plan.checkpoint_name == "attempt/checkpoints/last.ckpt"
    assert plan.cfg.eval.nll_images == 1000 and plan.cfg.trainer.max_epochs == 1
    resume_training(finished)  # the same evaluation hook: it would fail again with the failed one's settings
    record = read_record(finished)
    assert [entry["status"] for entry in record["resumes"]] == ["failed", "completed"]
    assert record["status"] == "completed"
    assert load_checkpoint(finished / "checkpoints" / "last.ckpt")["epoch"] == 1  # the failed resume's epoch is kept
    # A completed resume's settings are inherited, as before.
    resume_training(finished, ["eval.nll_images=9"])
    assert plan_resume(finished, []).cfg.eval.nll_images == 9


def test_more_threads_than_cores_are_refused_before_a_resume_or_a_run_touches_anything(finished, tiny_cfg, tmp_path):
    import os

    too_many = (os.cpu_count() or 1) + 1
    before = digest(finished)
    with pytest.raises(ConfigError, match=rf"torch_threads={too_many} is more than the {os.cpu_count()} cores"):
        resume_training(finished, [f"torch_threads={too_many}"])
    assert digest(finished) == before and read_record(finished)["resumes"] == []
    with pytest.raises(ConfigError, match=r"Use a number from 1 to \d+, or null"):
        train(tiny_cfg(*QUIET, "torch_threads=100000"), run_dir=tmp_path / "new")
    assert read_record(tmp_path / "new")["status"] == "failed"  # refused before anything was built


def entry(status: str, *overrides: str, checkpoint: str = "checkpoints/last.ckpt") -> dict:
    return {"status": status, "overrides": list(overrides), "checkpoint": checkpoint}


def test_which_earlier_overrides_a_resume_inherits():
    stopped = entry("interrupted", "trainer.max_epochs=5")
    continued = "attempt/checkpoints/interrupted.ckpt"
    assert inherited_overrides([entry("completed", "a=1"), entry("failed", "b=2"), entry("diverged", "c=3")]) == ["a=1"]
    assert inherited_overrides([entry("killed", "d=4"), entry("running", "e=5")]) == []
    assert inherited_overrides([{"overrides": ["f=6"]}]) == ["f=6"]  # records before statuses: all completed
    # A stopped resume's settings go to the resume that finishes its attempt, and on with it once it completes.
    assert inherited_overrides([stopped]) == [] and inherited_overrides([stopped], continues=True) == [
        "trainer.max_epochs=5"
    ]
    assert inherited_overrides([stopped, entry("completed", "g=7", checkpoint=continued)]) == [
        "trainer.max_epochs=5",
        "g=7",
    ]
    # ... and not when another resume cleared its attempt folder (it started from the run's own checkpoint).
    assert inherited_overrides([stopped, entry("completed", "g=7")]) == ["g=7"]
    assert inherited_overrides([stopped, entry("failed", "h=8")], continues=True) == []
    # A failed resume that continued the stopped one's attempt adds nothing, and takes nothing away.
    failed_on = entry("failed", "h=8", checkpoint=continued)
    assert inherited_overrides([stopped, failed_on], continues=True) == ["trainer.max_epochs=5"]
