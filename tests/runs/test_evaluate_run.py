"""ae-eval: re-testing reproduces test/mse, leaves training files alone, and refuses other runs' checkpoints."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing import event_accumulator as ea

from autoencoders.cli.evaluate import main as ae_eval_main
from autoencoders.runs.record import read_record
from autoencoders.runs.train import train

AE_EVAL = str(Path(sys.executable).parent / "ae-eval")
QUIET = ["logging.projector_points=0", "logging.images_every_n_epochs=0"]


# --- train() and ae-eval -----------------------------------------------------------------------
def digest(run: Path) -> dict[str, str]:
    """Hashes of everything training wrote besides metrics.json (events, checkpoints, config)."""
    files = [path for path in run.rglob("*") if path.is_file() and "eval" not in path.relative_to(run).parts]
    return {str(path.relative_to(run)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in files if path.name != "metrics.json"}  # fmt: skip


def test_ae_eval_reproduces_test_mse_and_leaves_training_files_alone(finished_run):
    before, record = digest(finished_run), read_record(finished_run)
    done = subprocess.run([AE_EVAL, str(finished_run), "eval.nll_samples=10"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    after = read_record(finished_run)
    assert digest(finished_run) == before
    assert {key: value for key, value in after.items() if key != "eval"} == record
    entry = after["eval"]
    assert entry["checkpoint"] == "checkpoints/best.ckpt" and entry["settings"]["nll_samples"] == 10
    for name in ("test/mse", "test/probe_acc", "test/anomaly_auroc", "test/anomaly_precision_p95", "test/nll"):
        assert entry["metrics"][name] == pytest.approx(record["metrics"][name], rel=1e-6), name
    events = ea.EventAccumulator(str(finished_run / "eval" / "best"), size_guidance={ea.IMAGES: 0})
    events.Reload()
    assert {"anomaly/worst", "images/reconstructions", "images/samples", "latent/scatter"} <= set(events.Tags()["images"])
    assert {"test/mse", "test/probe_acc", "test/nll"} <= set(events.Tags()["scalars"])


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


def test_other_model_with_same_class_is_refused(tiny_cfg, tmp_path, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    for run, latent in ((first, 4), (second, 6)):
        train(tiny_cfg(f"model.latent_dim={latent}", *QUIET, "eval.probe=false"), run_dir=run)
    with pytest.raises(SystemExit) as stopped:
        ae_eval_main([str(first), "--checkpoint", str(second / "checkpoints" / "last.ckpt")])
    assert stopped.value.code == 1 and "latent_dim" in capsys.readouterr().err
