"""Multiruns: named job directories, parallel launchers, failures, re-runs, search configs."""

import json
import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from autoencoders.rundir.record import read_record, write_json_atomic
from tests.helpers import ae_train_here

TINY = ["data=synthetic", "trainer=fast", "logging.images_every_n_epochs=0", "logging.projector_points=0"]


def jobs(sweep_dir: Path) -> dict[str, dict]:
    return {path.parent.name: json.loads(path.read_text()) for path in sorted(sweep_dir.rglob("metrics.json"))}


def hydra_cfg(*overrides: str):
    with initialize_config_module("autoencoders.conf", version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def test_grid_sweep_gives_four_complete_readable_runs(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    done = ae_train_here(
        "-m",
        *TINY,
        "torch_threads=1",
        "model.latent_dim=2,3",
        "model.loss=mse,bce",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        monkeypatch=monkeypatch,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = jobs(sweep)
    assert len(found) == 4 and all(job["status"] == "completed" for job in found.values())
    assert (
        "3_data=synthetic,logging.images_every_n_epochs=0,logging.projector_points=0,model.latent_dim=3,model.loss=bce,trainer=fast"
        in found
    )
    assert {tuple(sorted(o for o in job["overrides"] if o.startswith("model."))) for job in found.values()} == {
        ("model.latent_dim=2", "model.loss=mse"),
        ("model.latent_dim=2", "model.loss=bce"),
        ("model.latent_dim=3", "model.loss=mse"),
        ("model.latent_dim=3", "model.loss=bce"),
    }


def test_joblib_runs_jobs_in_parallel_with_one_thread_each(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    done = ae_train_here(
        "-m",
        *TINY,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "model.latent_dim=2,3",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        monkeypatch=monkeypatch,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = jobs(sweep).values()
    assert [job["status"] for job in found] == ["completed", "completed"]
    # torch_threads is automatic: the cores but one, shared by the 2 jobs (here: 1 each).
    assert {job["provenance"]["torch_threads"] for job in found} == {max(1, min(4, ((os.cpu_count() or 1) - 1) // 2))}
    # Each job ran in a worker process of its own, not in ae-train's process one after the other.
    pids = [job["provenance"]["pid"] for job in found]
    assert len(set(pids)) == 2 and all(isinstance(pid, int) for pid in pids) and os.getpid() not in pids


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_a_failing_job_does_not_stop_the_others(tmp_path, monkeypatch, launcher):
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, "torch_threads=1", f"hydra/launcher={launcher}", "model.latent_dim=2,-1,3"]
    args.append(f"hydra.sweep.dir={sweep}")
    # ae-train's own process only launches the jobs (joblib's workers are processes of their own): this one will do.
    done = ae_train_here(*args, cwd=tmp_path, monkeypatch=monkeypatch)
    assert done.returncode == 1
    statuses = {name.split("_")[0]: job["status"] for name, job in jobs(sweep).items()}
    assert statuses == {"0": "completed", "1": "failed", "2": "completed"}
    failed = next(job for job in jobs(sweep).values() if job["status"] == "failed")
    assert "model.latent_dim=-1 is not allowed" in failed["error"]["message"]
    summary = done.stderr[done.stderr.index("did not complete") :]
    assert summary.count("\n  ") == 1 and "model.latent_dim=-1" in summary and "failed" in summary


def test_rerunning_a_sweep_skips_completed_jobs_and_resumes_interrupted_ones(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, "torch_threads=1", "trainer.max_epochs=2", "model.latent_dim=2,3", f"hydra.sweep.dir={sweep}"]
    assert ae_train_here(*args, cwd=tmp_path, monkeypatch=monkeypatch).returncode == 0
    first, second = sorted(sweep.rglob("metrics.json"))
    # Pretend the second job was interrupted after its first epoch.
    record = json.loads(second.read_text())
    record["status"] = "interrupted"
    write_json_atomic(second, record)
    before = first.stat().st_mtime_ns
    done = ae_train_here(*args, cwd=tmp_path, monkeypatch=monkeypatch)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Skipping" in done.stdout + done.stderr and first.stat().st_mtime_ns == before
    resumed = read_record(second.parent)
    assert resumed["status"] == "completed" and len(resumed["resumes"]) == 1


def test_experiment_bundle_is_the_latent_beta_grid():
    cfg = hydra_cfg("experiment=latent_beta")
    assert cfg.model._target_ == "autoencoders.models.vae.VAE"
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert dict(cfg.hydra.sweeper.params) == {"model.latent_dim": "2,8,32", "model.beta": "0.5,1,4"}
    assert cfg.eval.sample_quality is True  # FashionMNIST has no factors: "auto" would skip it


def test_experiment_disentangle_sweeps_four_objectives_over_three_seeds_on_shapes():
    cfg = hydra_cfg("experiment=disentangle")
    assert (
        cfg.data.name == "shapes"
        and cfg.model.net._target_ == "autoencoders.nets.mlp.MLPEncoder"
        and cfg.model.latent_dim == 10
    )
    assert (cfg.data.resolution, cfg.data.subsample, cfg.data.batch_size, cfg.trainer.max_epochs) == (
        64,
        60000,
        256,
        20,
    )
    assert cfg.eval.nll_samples == 0 and cfg.hydra.mode.name == "MULTIRUN"
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 2
    assert dict(cfg.hydra.sweeper.params) == {"disentangle": "factorvae,vae,beta_vae,tcvae", "seed": "0,1,2"}
    arms = {
        "vae": ("vae.VAE", {"beta": 1.0}, 20),
        "beta_vae": ("vae.VAE", {"beta": 6.0}, 20),
        "tcvae": ("tcvae.TCVAE", {"beta": 6.0}, 20),
        "factorvae": ("factorvae.FactorVAE", {"beta": 1.0, "gamma": 40.0}, 10),  # half the epochs: the budget
    }
    for arm, (target, weights, epochs) in arms.items():
        other = hydra_cfg("experiment=disentangle", f"disentangle={arm}")  # every arm keeps the experiment's net
        assert other.model._target_ == f"autoencoders.models.{target}", arm
        assert {name: other.model[name] for name in weights} == weights, arm
        assert (other.trainer.max_epochs, other.data.resolution) == (epochs, 64), arm
        assert (other.model.net._target_, other.model.latent_dim, other.data.subsample) == (
            "autoencoders.nets.mlp.MLPEncoder",
            10,
            60000,
        ), arm


def test_experiment_disentangle_trains_a_few_steps_and_scores_disentanglement(compose_cfg, tmp_path):
    # The experiment as composed, on fewer images and steps: its costliest arm (the factorvae, whose
    # steps take two batches) trains and is scored.
    arm = "factorvae"
    from autoencoders.training.pipeline import train

    small = ["data.subsample=600", "data.test_size=200", "data.val_size=100", "trainer=fast", "torch_threads=1"]
    quiet = ["eval.sample_quality=false", "eval.factorvae_votes=100", "logging.projector_points=0"]
    cfg = compose_cfg("experiment=disentangle", f"disentangle={arm}", f"data.root={tmp_path / 'data'}", *small, *quiet)
    metrics = train(cfg, run_dir=tmp_path / "run")
    assert cfg.data.resolution == 64 and cfg.model.net._target_ == "autoencoders.nets.mlp.MLPEncoder"
    assert {"test/mig", "test/dci_disentanglement", "test/factorvae_score", "test/mse"} <= set(metrics)
    assert "test/tc" in metrics and "test/disc_acc" in metrics  # the factorvae's own terms


def test_slurm_and_optuna_configs_compose():
    slurm = hydra_cfg("hydra/launcher=submitit_slurm")
    assert "SlurmLauncher" in slurm.hydra.launcher._target_
    optuna = hydra_cfg("hparams_search=optuna")
    assert "OptunaSweeper" in optuna.hydra.sweeper._target_
    assert optuna.optimized_metric == "val/mse" and optuna.hydra.sweeper.direction == "minimize"


@pytest.mark.slow
def test_optuna_study_survives_a_failing_trial(tmp_path, monkeypatch):
    sweep = tmp_path / "study"
    done = ae_train_here(
        "hparams_search=optuna",
        *TINY,
        "torch_threads=1",
        "hydra.sweeper.n_trials=4",
        "model.latent_dim=choice(-1,2)",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        monkeypatch=monkeypatch,
    )
    found = list(jobs(sweep).values())
    assert len(found) == 4, done.stderr[-2000:]  # every trial ran
    statuses = {job["status"] for job in found}
    assert "completed" in statuses
    assert (done.returncode == 1) == ("failed" in statuses)
    assert "Best parameters" in done.stdout + done.stderr or (sweep / "optimization_results.yaml").is_file()


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_job(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    done = ae_train_here(  # in-process: submitit runs the job in a process of its own
        "-m",
        *TINY,
        "torch_threads=1",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        "model.latent_dim=2",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        monkeypatch=monkeypatch,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert [job["status"] for job in jobs(sweep).values()] == ["completed"]


# Overrides whose job folder name would pass 255 bytes (eval.* and logging.* count toward it).
LONG = [
    "eval.probe=false",
    "eval.probe_train_size=10000",
    "eval.anomaly=auto",
    "eval.anomaly_images=16",
    "eval.nll_samples=0",
    "eval.nll_images=1000",
    "eval.class_consistency=true",
    "logging.n_images=16",
    "logging.latents_every_n_epochs=0",
    "trainer.log_every_n_steps=1",
    "trainer.limit_val_batches=2",
    "trainer.check_val_every_n_epoch=1",
    "data.split_seed=0",
    "data.val_size=64",
    "model.weight_decay=0.0",
]


def test_a_job_whose_overrides_pass_the_file_name_limit_gets_a_hashed_folder(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    done = ae_train_here(
        "-m",
        *TINY,
        *LONG,
        "torch_threads=1",
        "model.latent_dim=2",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        monkeypatch=monkeypatch,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    ((name, record),) = jobs(sweep).items()
    assert record["status"] == "completed" and len(name.encode()) <= 255
    given = [*TINY, *LONG, "torch_threads=1", "model.latent_dim=2"]  # Hydra writes true as True
    assert sorted(item.lower() for item in record["overrides"]) == sorted(item.lower() for item in given)


def test_job_names_are_kept_whole_up_to_the_limit_and_hashed_past_it():
    from autoencoders.training.sweep import JOB_NAME_BYTES, job_dirname

    assert job_dirname("model.latent_dim=2,model=vae") == "model.latent_dim=2,model=vae"
    long = ",".join(LONG) * 2
    short = job_dirname(long)
    assert len(short.encode()) == JOB_NAME_BYTES and short.startswith(long[:100])
    assert job_dirname(long + "x") != short  # the hash tells two long names apart
    assert len(job_dirname("é" * 300).encode()) <= JOB_NAME_BYTES  # cut on a character, not inside one


def test_the_sweep_dir_is_made_absolute_for_workers_that_run_elsewhere(tmp_path, monkeypatch):
    from autoencoders.training.sweep import SweepSummary

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    cfg = hydra_cfg("hydra.sweep.dir=relative/sweep", "hydra/launcher=ray")
    SweepSummary().on_multirun_start(cfg)
    assert cfg.hydra.sweep.dir == str(tmp_path / "relative" / "sweep")
    assert os.environ["RAY_AUTH_MODE"] == "token"  # the cluster the launcher starts takes a token
