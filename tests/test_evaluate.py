"""Evaluation: anomaly metrics by hand, the importance-weighted bound, the probe, ae-eval, load_run."""

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from tensorboard.backend.event_processing import event_accumulator as ea

from autoencoders import load_run, losses
from autoencoders.anomaly import anomaly_metrics, auroc, error_heatmaps, threshold_metrics, thresholds, worst_grid
from autoencoders.data import ImageDataModule
from autoencoders.errors import ConfigError
from autoencoders.evaluate import EvalSettings, main as ae_eval_main
from autoencoders.likelihood import importance_weighted_nll, log_importance_weights
from autoencoders.models.vae import VAE
from autoencoders.probe import probe_accuracy
from autoencoders.run_record import read_record
from autoencoders.train import train

AE_EVAL = str(Path(sys.executable).parent / "ae-eval")
QUIET = ["logging.projector_points=0", "logging.images_every_n_epochs=0"]


# --- anomaly metrics against hand counts -------------------------------------------------------
def test_auroc_of_separated_reversed_and_mixed_scores():
    normal, anomalous = torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.5, 0.9])
    scores, labels = torch.cat([normal, anomalous]), torch.tensor([0, 0, 0, 1, 1])
    assert auroc(scores, labels) == 1.0  # every anomaly above every normal image
    assert auroc(-scores, labels) == 0.0
    # Normal 1, 2, 3; anomalies 2, 4. Pairs (anomaly, normal): 2 beats 1, ties 2 (one half),
    # loses to 3; 4 beats all three: (1 + 0.5 + 3) / 6 = 0.75.
    assert auroc(torch.tensor([1.0, 2.0, 3.0, 2.0, 4.0]), labels) == pytest.approx(0.75)
    generator = torch.Generator().manual_seed(0)
    scores, labels = torch.rand(500, generator=generator), torch.randint(0, 2, (500,), generator=generator)
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels.numpy(), scores.numpy()), abs=1e-6)


def test_thresholds_are_numpy_percentiles():
    errors = torch.arange(1, 101, dtype=torch.float64)
    assert thresholds(errors) == {95: pytest.approx(95.05), 99: pytest.approx(99.01)}  # linear interpolation
    errors = torch.rand(1234, generator=torch.Generator().manual_seed(1))
    got = thresholds(errors, (50, 95, 99))
    for p in (50, 95, 99):
        assert got[p] == pytest.approx(np.percentile(errors.double().numpy(), p), rel=1e-12)


def test_precision_recall_f1_at_a_threshold_against_a_hand_count():
    scores = torch.tensor([0.1, 0.5, 0.9, 0.3, 0.7, 0.2, 0.25])
    labels = torch.tensor([0, 1, 1, 0, 0, 1, 0])
    # > 0.25 flags 0.5, 0.9, 0.3, 0.7 (0.25 itself is not above): TP 2, FP 2, FN 1 (the 0.2 anomaly).
    got = threshold_metrics(scores, labels, 0.25)
    assert got == pytest.approx({"precision": 2 / 4, "recall": 2 / 3, "f1": 2 * 2 / (2 * 2 + 2 + 1)})
    assert threshold_metrics(scores, labels, 1.0) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}  # nothing flagged


def test_anomaly_metrics_use_the_validation_percentiles():
    val = torch.arange(1, 101, dtype=torch.float32)
    test = torch.tensor([50.0, 96.0, 99.5, 200.0])
    labels = torch.tensor([0, 0, 1, 1])
    metrics = anomaly_metrics(test, labels, val)
    assert metrics["test/anomaly_auroc"] == 1.0
    assert metrics["test/anomaly_threshold_p95"] == pytest.approx(95.05)
    # p95 = 95.05 flags 96, 99.5, 200: precision 2/3, recall 1; p99 = 99.01 flags 99.5, 200: both 1.
    assert metrics["test/anomaly_precision_p95"] == pytest.approx(2 / 3)
    assert metrics["test/anomaly_recall_p95"] == 1.0 and metrics["test/anomaly_f1_p95"] == pytest.approx(0.8)
    assert metrics["test/anomaly_precision_p99"] == metrics["test/anomaly_recall_p99"] == metrics["test/anomaly_f1_p99"] == 1.0


def test_heatmaps_and_worst_grid():
    images = torch.zeros(3, 1, 4, 4)
    reconstructions = images.clone()
    reconstructions[1, 0, 0, 0] = 0.5
    heatmaps = error_heatmaps(images, reconstructions)
    assert heatmaps.shape == (3, 3, 4, 4) and 0 <= heatmaps.min() and heatmaps.max() <= 1
    assert not torch.equal(heatmaps[1, :, 0, 0], heatmaps[1, :, 1, 1])  # the error pixel has its own colour
    assert torch.equal(heatmaps[0], heatmaps[2])  # no error: the colormap's low end everywhere
    model = VAE([1, 28, 28], latent_dim=2).eval()
    x = torch.rand(20, 1, 28, 28)
    errors = torch.rand(20)
    with torch.no_grad():
        grid, worst = worst_grid(model, x, errors, n_images=16, per_row=8)
    assert worst.tolist() == errors.argsort(descending=True)[:16].tolist()
    assert grid.shape == (3, 2 + 30 * 6, 2 + 30 * 8)  # 2 groups x (originals, reconstructions, heatmaps)


# --- data: normal classes ----------------------------------------------------------------------
def test_holdout_class_filters_train_and_val_but_not_test():
    full = ImageDataModule(name="synthetic", val_size=64)
    full.setup()
    held = ImageDataModule(name="synthetic", val_size=64, holdout_class=3)
    held.setup()
    assert held.normal_classes == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    for split in ("train", "val"):
        labels = getattr(full, f"{split}_set").tensors[1]
        assert 3 not in getattr(held, f"{split}_set").tensors[1].tolist()
        assert len(getattr(held, f"{split}_set")) == int((labels != 3).sum())  # the same split, minus class 3
    assert torch.equal(held.val_set.tensors[0], full.val_set.tensors[0][full.val_set.tensors[1] != 3])
    assert torch.equal(held.test_set.tensors[1], full.test_set.tensors[1])
    assert held.describe()["normal_classes"] == held.normal_classes and "normal_classes" not in full.describe()
    chosen = ImageDataModule(name="synthetic", val_size=64, normal_classes=[2, 0])
    chosen.setup()
    assert chosen.normal_classes == [0, 2] and set(chosen.train_set.tensors[1].tolist()) == {0, 2}


@pytest.mark.parametrize("kwargs", [{"holdout_class": 10}, {"normal_classes": []}, {"normal_classes": list(range(10))},
                                    {"normal_classes": [1], "holdout_class": 2}])  # fmt: skip
def test_bad_normal_classes_are_config_errors(kwargs):
    with pytest.raises(ConfigError, match="normal_classes|holdout_class"):
        ImageDataModule(name="synthetic", val_size=64, **kwargs).setup()


def test_eval_settings_are_checked():
    assert EvalSettings.from_config(None) == EvalSettings()
    with pytest.raises(ConfigError, match="eval.nll_sample is not an eval setting"):
        EvalSettings.from_config({"nll_sample": 10})
    with pytest.raises(ConfigError, match="eval.anomaly='yes'"):
        EvalSettings.from_config({"anomaly": "yes"})
    with pytest.raises(ConfigError, match="eval.nll_samples=-1"):
        EvalSettings.from_config({"nll_samples": -1})


# --- the importance-weighted bound ------------------------------------------------------------
def test_importance_weighted_bound_is_logmeanexp():
    log_weights = torch.tensor([[-1.0, 2.0], [-3.0, 2.0]])
    expected = [math.log((math.exp(-1) + math.exp(-3)) / 2), 2.0]
    assert losses.importance_weighted_bound(log_weights).tolist() == pytest.approx(expected)


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_iw_bound_is_never_below_the_elbo_of_the_same_draws(loss):
    torch.manual_seed(0)
    model = VAE([1, 28, 28], latent_dim=4, loss=loss).eval()
    x = torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        for samples in (2, 10, 50):
            log_weights = log_importance_weights(model, x, samples, torch.Generator().manual_seed(samples))
            assert log_weights.shape == (samples, 16)
            bound = losses.importance_weighted_bound(log_weights)
            assert (bound >= log_weights.mean(0) - 1e-4).all()  # Jensen; 1e-4 nats of float32 rounding


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_k1_bound_averages_to_the_closed_form_elbo(loss):
    """At k = 1 the bound is log p(x|z) + log p(z) - log q(z|x) for one z; its mean over draws is
    E_q[log p(x|z)] - KL, the model's ELBO with the analytic KL (its `elbo` term)."""
    torch.manual_seed(0)
    model = VAE([1, 28, 28], latent_dim=4, loss=loss).eval()
    x = torch.rand(4, 1, 28, 28)
    draws = 4000
    with torch.no_grad():
        one_sample = log_importance_weights(model, x.repeat(draws, 1, 1, 1), 1, torch.Generator().manual_seed(1))[0]
        closed_form = torch.stack([model.loss_terms(x)[0]["elbo"] for _ in range(200)])
    one_sample = one_sample.view(draws, 4).mean(1).double()  # per draw: the mean over the 4 images
    standard_error = float(one_sample.std() / math.sqrt(draws))
    # Tolerance: 4 standard errors of each side's mean (the closed form keeps one sampled
    # reconstruction term): 0.13 nats (mse) and 0.25 nats (bce) here, on ELBOs of about -530.
    tolerance = 4 * standard_error + 4 * float(closed_form.double().std() / math.sqrt(200))
    assert abs(float(one_sample.mean()) - float(closed_form.double().mean())) < tolerance
    assert tolerance < 0.5


def test_nll_is_seeded_and_tightens_with_more_samples():
    torch.manual_seed(0)
    model = VAE([1, 28, 28], latent_dim=4).eval()
    x = torch.rand(30, 1, 28, 28)
    with torch.no_grad():
        nll_1 = importance_weighted_nll(model, x, samples=1, batch_size=7)
        nll_100 = importance_weighted_nll(model, x, samples=100, batch_size=7)
        assert torch.equal(nll_100, importance_weighted_nll(model, x, samples=100, batch_size=7))  # seeded
    assert nll_100.shape == (30,) and nll_100.mean() <= nll_1.mean()


# --- linear probe ------------------------------------------------------------------------------
def test_probe_separates_linearly_separable_codes():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (600,), generator=generator)
    codes = torch.randn(600, 5, generator=generator) + 4 * torch.nn.functional.one_hot(labels, 5).float()
    assert probe_accuracy(codes[:400], labels[:400], codes[400:], labels[400:]) > 0.95


@pytest.mark.slow
def test_probe_beats_chance_on_real_fashionmnist_codes(compose_cfg, tmp_path):
    cfg = compose_cfg("torch_threads=1", "trainer.max_epochs=1", "trainer.limit_train_batches=50",
                      "trainer.limit_val_batches=5", "trainer.limit_test_batches=5", "trainer.enable_progress_bar=false",
                      *QUIET)  # fmt: skip
    metrics = train(cfg, run_dir=tmp_path)
    assert metrics["test/probe_acc"] > 0.5  # chance is 0.1 with 10 balanced classes


# --- train() and ae-eval -----------------------------------------------------------------------
def digest(run: Path) -> dict[str, str]:
    """Hashes of everything training wrote besides metrics.json (events, checkpoints, config)."""
    files = [path for path in run.rglob("*") if path.is_file() and "eval" not in path.relative_to(run).parts]
    return {str(path.relative_to(run)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in files if path.name != "metrics.json"}  # fmt: skip


@pytest.fixture
def finished_run(tiny_cfg, tmp_path) -> Path:
    """A tiny vae run on the generated set with class 3 held out."""
    run = tmp_path / "run"
    metrics = train(tiny_cfg("model=vae", "model.latent_dim=4", "data.holdout_class=3", "eval.nll_samples=10"), run_dir=run)
    expected = {"test/probe_acc", "test/nll", "test/anomaly_auroc", "test/anomaly_f1_p99", "test/anomaly_recall_p95"}
    assert expected <= set(metrics) and read_record(run)["metrics"] == metrics
    assert read_record(run)["data"]["normal_classes"] == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    events = ea.EventAccumulator(str(run), size_guidance={ea.IMAGES: 0})
    events.Reload()
    assert "anomaly/worst" in events.Tags()["images"] and "test/probe_acc" in events.Tags()["scalars"]
    return run


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


# --- load_run ------------------------------------------------------------------------------------
def test_load_run_round_trips_encode_and_decode(finished_run):
    model = load_run(finished_run)
    last = load_run(finished_run, checkpoint="last")
    assert not model.training and isinstance(model, VAE) and isinstance(last, VAE)
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        codes = model.encode(x)
        assert codes.shape == (5, 4)
        assert torch.equal(model.decode(codes), model.reconstruct(x))
        assert model.decode(codes).shape == x.shape and model.sample(3).shape == (3, 1, 28, 28)
    saved = torch.load(finished_run / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(value, model.state_dict()[key]) for key, value in saved.items())
    assert isinstance(load_run(finished_run / "checkpoints" / "best.ckpt"), VAE)


def test_importing_the_package_does_not_import_torch():
    code = "import sys, autoencoders; print('torch' in sys.modules, callable(autoencoders.load_run))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})  # fmt: skip
    assert done.stdout.split() == ["False", "True"], done.stderr
