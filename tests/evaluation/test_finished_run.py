"""ae-eval: re-testing reproduces test/mse, leaves training files alone, and refuses other runs' checkpoints."""

import hashlib
import subprocess
from pathlib import Path

import pytest

from autoencoders.cli.evaluate import main as ae_eval_main
from autoencoders.rundir.per_image import read_per_image
from autoencoders.rundir.record import read_record
from autoencoders.training.pipeline import train
from tests.helpers import AE_EVAL, read_events

QUIET = ["logging.projector_points=0", "logging.images_every_n_epochs=0"]


# --- train() and ae-eval -----------------------------------------------------------------------
def training_files(run: Path) -> dict[str, str]:
    """Hashes of everything training wrote besides metrics.json (events, checkpoints, config)."""
    files = [path for path in run.rglob("*") if path.is_file() and "eval" not in path.relative_to(run).parts]
    return {
        str(path.relative_to(run)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in files
        if path.name not in ("metrics.json", ".lock")
    }  # ae-eval holds the lock too


def test_ae_eval_reproduces_test_mse_and_leaves_training_files_alone(finished_run):
    before, record = training_files(finished_run), read_record(finished_run)
    done = subprocess.run(
        [AE_EVAL, str(finished_run), "eval.nll_samples=10"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if "][lightning." in line]  # ae-eval's console says each once
    assert lines and len(lines) == len({line.split(" - ", 1)[1] for line in lines}) and "INFO: " not in done.stderr
    after = read_record(finished_run)
    assert training_files(finished_run) == before
    assert {key: value for key, value in after.items() if key != "eval"} == record
    entry = after["eval"]
    assert entry["checkpoint"] == "checkpoints/best.ckpt" and entry["settings"]["nll_samples"] == 10
    for name in ("test/mse", "test/probe_acc", "test/anomaly_auroc", "test/anomaly_precision_p95", "test/nll"):
        assert entry["metrics"][name] == pytest.approx(record["metrics"][name], rel=1e-6), name
    events = read_events(finished_run / "eval" / "best")
    assert {"anomaly/worst", "images/reconstructions", "images/samples", "latent/scatter"} <= set(
        events.Tags()["images"]
    )
    assert {"test/mse", "test/probe_acc", "test/nll"} <= set(events.Tags()["scalars"])
    # Each image's test/nll, kept beside the events of training and of ae-eval: the same seeded
    # estimate of the same checkpoint, image for image, and its mean is the reported test/nll.
    trained, evaluated = (
        read_per_image(finished_run, "test/nll"),
        read_per_image(finished_run / "eval" / "best", "test/nll"),
    )
    assert sorted(trained) == list(range(256)) and trained == evaluated  # all 256 generated test images
    assert sum(trained.values()) / len(trained) == pytest.approx(record["metrics"]["test/nll"], rel=1e-6)
    assert record["evaluation"]["nll"] == {
        "samples": 10,
        "images": 256,
        "seconds": record["evaluation"]["nll"]["seconds"],
        "per_image": "test_nll.csv",
    }


def test_ae_eval_errors_are_one_paragraph_and_exit_1(finished_run, tiny_cfg, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    other = tmp_path / "other"
    train(tiny_cfg("model=mlp", "model.latent_dim=4", *QUIET, "eval.probe=false"), run_dir=other)
    corrupt = finished_run / "checkpoints" / "corrupt.ckpt"
    corrupt.write_bytes((finished_run / "checkpoints" / "last.ckpt").read_bytes()[:1000])
    capsys.readouterr()  # training's own output
    cases = [
        ([str(corrupt)], "cannot be loaded"),
        ([str(finished_run), "--checkpoint", str(other / "checkpoints" / "best.ckpt")], "holds a"),
        ([str(tmp_path / "nowhere")], "not a run directory"),
        ([str(finished_run), "eval.nll_sample=3"], "not an eval setting"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as stopped:
            ae_eval_main(argv)
        stderr = capsys.readouterr().err
        assert stopped.value.code == 1 and message in stderr and "Traceback" not in stderr, (argv, stderr)
        assert stderr.strip().startswith("ae-eval:") and stderr.strip().count("\n") == 0  # one paragraph
    # Refused once the data is loaded, before the test pass (it failed in scikit-learn after it): nothing written.
    with pytest.raises(SystemExit) as stopped:
        ae_eval_main([str(finished_run), "eval.probe_train_size=1"])
    stderr = capsys.readouterr().err
    assert stopped.value.code == 1 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("ae-eval: eval.probe_train_size=1 is too small for this data")
    assert not (finished_run / "eval").exists()


def test_ae_eval_of_a_run_another_process_holds_is_refused_and_changes_nothing(finished_run, capsys):
    import os
    import shutil

    from autoencoders.rundir.lock import RunLock

    before = read_record(finished_run)
    with RunLock(finished_run), pytest.raises(SystemExit) as stopped:  # this process plays the training run
        ae_eval_main([str(finished_run)])
    stderr = capsys.readouterr().err
    assert (
        stopped.value.code == 1
        and f"in use by process {os.getpid()}" in stderr
        and "Nothing there was changed" in stderr
    )
    assert read_record(finished_run) == before and not (finished_run / "eval").exists()
    # The checkpoint names best, last and interrupted work here as everywhere a checkpoint is chosen.
    shutil.copy(finished_run / "checkpoints" / "last.ckpt", finished_run / "checkpoints" / "interrupted.ckpt")
    ae_eval_main([str(finished_run), "--checkpoint", "interrupted", "eval.nll_samples=0", "eval.probe=false"])
    assert read_record(finished_run)["eval"]["checkpoint"] == "checkpoints/interrupted.ckpt"


def test_a_checkpoint_from_elsewhere_never_replaces_the_runs_own_evaluation(tiny_cfg, tmp_path):
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    train(tiny_cfg(*QUIET, "eval.probe=false"), run_dir=run)
    (elsewhere / "checkpoints").mkdir(parents=True)
    copy = elsewhere / "checkpoints" / "best.ckpt"  # the same model's weights, kept elsewhere
    copy.write_bytes((run / "checkpoints" / "best.ckpt").read_bytes())
    ae_eval_main([str(run)])  # in-process: ae-eval's own process is tested above
    own = sorted(str(path.relative_to(run)) for path in (run / "eval" / "best").rglob("*"))
    own_events = {path.name: path.read_bytes() for path in (run / "eval" / "best").glob("events.*")}
    ae_eval_main([str(run), "--checkpoint", str(copy)])
    assert sorted(str(path.relative_to(run)) for path in (run / "eval" / "best").rglob("*")) == own
    assert {path.name: path.read_bytes() for path in (run / "eval" / "best").glob("events.*")} == own_events
    (external,) = [path for path in (run / "eval").iterdir() if path.name != "best"]
    assert external.name.startswith("external-best-") and read_record(run)["eval"]["checkpoint"] == str(copy)


def test_other_model_with_same_class_is_refused(tiny_cfg, tmp_path, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    for run, latent in ((first, 4), (second, 6)):
        train(tiny_cfg(f"model.latent_dim={latent}", *QUIET, "eval.probe=false"), run_dir=run)
    with pytest.raises(SystemExit) as stopped:
        ae_eval_main([str(first), "--checkpoint", str(second / "checkpoints" / "last.ckpt")])
    assert stopped.value.code == 1 and "latent_dim" in capsys.readouterr().err
