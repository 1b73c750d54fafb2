"""The `ae-train` console script as users run it: subprocesses, exit codes, messages."""

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import AE_TRAIN, ae_train, ae_train_here, run_dirs

TINY = ["data=synthetic", "trainer=fast", "torch_threads=1"]


def test_corrupt_gzip_is_named_with_a_fix(tmp_path, monkeypatch):
    source = Path("/usr/share/datasets/fashion-mnist")
    target = tmp_path / "data" / "fashionmnist"
    target.mkdir(parents=True)
    for path in source.glob("*.gz"):
        (target / path.name).symlink_to(path)
    broken = target / "t10k-labels-idx1-ubyte.gz"
    broken.unlink()
    broken.write_bytes(path.read_bytes()[:100])  # truncated copy of another file
    done = ae_train_here(
        f"data.root={tmp_path / 'data'}", "trainer=fast", "torch_threads=1", cwd=tmp_path, monkeypatch=monkeypatch
    )
    assert done.returncode == 1
    assert str(broken) in done.stderr and "get a good copy" in done.stderr and "Traceback" not in done.stderr


def test_help_info_and_cfg_work_from_any_directory(tmp_path):
    done = ae_train("--help", cwd=tmp_path)
    assert done.returncode == 0
    assert (
        "model: aae, contractive, conv, cvae, dae, factorvae, hvae, iwae, mlp, sparse, tcvae, vae, vqvae, wae"
        in done.stdout
    )
    assert "logger: csv, mlflow, tensorboard, wandb" in done.stdout and "callbacks: none, timing" in done.stdout
    assert "data: dsprites, fashionmnist, mnist, npz, shapes, synthetic" in done.stdout
    done = ae_train("model=conv", "model.latent_dim=7", "--cfg", "job", cwd=tmp_path)
    assert done.returncode == 0 and "latent_dim: 7" in done.stdout
    assert "  net:\n    _target_: autoencoders.nets.conv.ConvEncoder\n    channels:\n    - 16\n    - 32" in done.stdout
    done = ae_train("--info", cwd=tmp_path)
    assert done.returncode == 0 and "pkg://autoencoders.conf" in done.stdout
    assert not (tmp_path / "outputs").exists()  # none of these starts a run


@pytest.mark.slow
def test_trains_on_real_fashionmnist_from_another_directory(tmp_path):
    done = ae_train("model=conv", "trainer=fast", "torch_threads=1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = run_dirs(tmp_path / "outputs")
    assert run.parent == tmp_path / "outputs" / "runs" and "conv_fashionmnist" in run.name
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "completed" and record["data"]["train"] == 55_000 and record["data"]["test"] == 10_000
    assert record["model"]["parameters"] == 111_649
    assert 0 < record["metrics"]["test/mse"] < 1  # pixels in [0, 1]; 2 batches train little
    assert "Final metrics" in done.stderr and "test/mse" in done.stderr
    assert list(run.glob("events.out.tfevents.*")) and (run / "checkpoints" / "best.ckpt").is_file()


@pytest.mark.slow
def test_mnist_subset_is_recorded_in_metrics(tmp_path, monkeypatch):
    done = ae_train_here("data=mnist", "trainer=fast", "torch_threads=1", cwd=tmp_path, monkeypatch=monkeypatch)
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = run_dirs(tmp_path / "outputs")
    data = json.loads((run / "metrics.json").read_text())["data"]
    assert data["name"] == "mnist" and "SUBSET" in data["note"] and data["train"] + data["val"] == 8000


def test_multirun_gives_each_job_its_own_named_directory(tmp_path, monkeypatch):
    done = ae_train_here("-m", *TINY, "model.latent_dim=2,3", cwd=tmp_path, monkeypatch=monkeypatch)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = run_dirs(tmp_path / "outputs" / "sweeps")
    assert [run.name for run in runs] == [
        "0_data=synthetic,model.latent_dim=2,trainer=fast",
        "1_data=synthetic,model.latent_dim=3,trainer=fast",
    ]  # torch_threads is left out of names on purpose: it does not change results
    assert all(json.loads((run / "metrics.json").read_text())["status"] == "completed" for run in runs)


def test_runs_started_together_never_share_a_directory(tmp_path):
    processes = [
        subprocess.Popen([AE_TRAIN, *TINY], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(2)
    ]
    assert [process.wait(timeout=300) for process in processes] == [0, 0]
    assert len(run_dirs(tmp_path / "outputs")) == 2


def test_missing_data_is_one_paragraph_and_exit_1(tmp_path, monkeypatch):
    done = ae_train_here(
        "data=mnist",
        f"data.root={tmp_path}/empty",
        "data.download=false",
        *TINY[1:],
        cwd=tmp_path,
        monkeypatch=monkeypatch,
    )
    assert done.returncode == 1
    assert "MNIST is not available" in done.stderr and "make data" in done.stderr
    assert "Traceback" not in done.stderr
    (run,) = run_dirs(tmp_path / "outputs")
    assert json.loads((run / "metrics.json").read_text())["status"] == "failed"


def test_bad_value_names_the_key_and_exits_1(tmp_path, monkeypatch):
    done = ae_train_here(*TINY, "model.latent_dim=-4", cwd=tmp_path, monkeypatch=monkeypatch)
    assert done.returncode == 1
    message = "model.latent_dim=-4 is not allowed: model.latent_dim must be an integer >= 1"
    assert message in done.stderr
    assert (done.stdout + done.stderr).count(message) == 1  # a single run says it once
    assert "Traceback" not in done.stdout + done.stderr


def test_a_libraries_error_is_a_failure_with_its_type_and_its_traceback_in_the_record(tmp_path, monkeypatch):
    # Lightning refuses the value: not one of our own errors, so it is shown with its type and
    # the traceback is kept in metrics.json (the console stays one paragraph).
    done = ae_train_here(
        *TINY,
        "++trainer.gradient_clip_algorithm=banana",
        "++trainer.gradient_clip_val=1",
        cwd=tmp_path,
        monkeypatch=monkeypatch,
    )
    assert done.returncode == 1
    assert "Training failed: MisconfigurationException: " in done.stderr and "metrics.json" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr and done.stderr.count("banana") == 1
    (run,) = run_dirs(tmp_path / "outputs")
    error = json.loads((run / "metrics.json").read_text())["error"]
    assert error["type"] == "MisconfigurationException" and error["traceback"].startswith("Traceback")


def test_an_output_directory_that_cannot_be_created_is_one_paragraph(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    # The whole command once: exit 1, one line, no traceback.
    done = ae_train(*TINY, f"output_root={tmp_path / 'a-file'}", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("ae-train: cannot create the output directory") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stdout + done.stderr
    # The other places, through the Hydra callback that checks them (in-process: no import to pay).
    from hydra import compose, initialize_config_module

    from autoencoders.training.job import OutputDirectoryCheck

    cases = [
        (f"hydra.run.dir={tmp_path / 'a-file' / 'run'}", "on_run_start"),
        ("hydra.run.dir=/proc/no/run", "on_run_start"),
        (f"hydra.sweep.dir={tmp_path / 'a-file' / 'sweep'}", "on_multirun_start"),
    ]
    for where, hook in cases:
        with initialize_config_module("autoencoders.conf", version_base="1.3"):
            cfg = compose("train", overrides=[*TINY, where], return_hydra_config=True)
        try:
            with pytest.raises(SystemExit) as stopped:
                getattr(OutputDirectoryCheck(), hook)(cfg)
        finally:
            from hydra.core.hydra_config import HydraConfig

            HydraConfig.instance().cfg = None  # on_run_start sets it, as Hydra does
        err = capsys.readouterr().err
        assert stopped.value.code == 1 and err.startswith("ae-train: cannot create the output directory"), where
        assert err.count("\n") == 1 and "Traceback" not in err, where


def test_the_console_says_each_thing_once(tmp_path):
    root = tmp_path / ("a-rather-long-folder-name-" * 4)  # the path is far wider than a piped 80 columns
    done = ae_train(*TINY, f"output_root={root}", "trainer.enable_progress_bar=true", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = run_dirs(root)
    assert f"Run directory: {run}\n" in done.stderr  # one line, never wrapped
    lines = [line for line in done.stderr.splitlines() if "][lightning." in line]
    assert any("GPU available" in line for line in lines)
    assert len(lines) == len(set(line.split(" - ", 1)[1] for line in lines))  # each Lightning message once
    assert "INFO: " not in done.stderr  # Lightning's own second copy
    for noise in ("litlogger", "litmodels", "LeafSpec", "does not have many workers"):
        assert noise not in done.stdout + done.stderr, noise
    assert "loss=" in done.stdout  # the progress bar (Lightning draws it on stdout): the running training loss
    assert "v_num" not in done.stdout  # the logger's version, always empty here


def test_unknown_model_lists_the_available_ones(tmp_path, monkeypatch):
    done = ae_train_here("model=vea", cwd=tmp_path, monkeypatch=monkeypatch)
    assert done.returncode == 1
    assert "Could not find 'model/vea'" in done.stderr and "mlp" in done.stderr and "conv" in done.stderr


@pytest.mark.parametrize("when", ["start-up", "after the record"])
def test_ctrl_c_before_training_ends_in_one_line_and_exit_130(tmp_path, monkeypatch, capsys, when):
    # In-process ae-train; SIGINT's KeyboardInterrupt lands before training handles signals.
    import sys

    from autoencoders.cli import train as cli
    from autoencoders.training import building, job

    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["ae-train", "data=synthetic", "trainer=fast", f"hydra.run.dir={run}"])

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    if when == "start-up":
        monkeypatch.setattr(job, "plan_for_existing_dir", interrupt)
    else:
        monkeypatch.setattr(building, "build_data", interrupt)  # the record says running by then
    try:
        with pytest.raises(SystemExit) as stopped:
            cli.main()
    finally:  # an in-process Hydra run leaves its config set; later tests of this worker must not see it
        from hydra.core.global_hydra import GlobalHydra
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().cfg = None
        GlobalHydra.instance().clear()
    err = capsys.readouterr().err.strip()
    assert stopped.value.code == 130 and "Traceback" not in err
    assert err.splitlines()[-1].startswith("ae-train: Stopped by SIGINT")  # the signal received, in one line
    if when == "start-up":
        assert not run.exists()  # nothing of a run was left: no folder holding only .lock
    else:
        record = json.loads((run / "metrics.json").read_text())
        assert record["status"] == "interrupted" and record["error"]["message"].startswith("Stopped by SIGINT")
        assert "attempt" not in record
