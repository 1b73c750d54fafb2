"""Every model trains end to end with both networks: in-process on generated data, ae-train on FashionMNIST."""

import json
import math

import pytest

# --- training ---------------------------------------------------------------------------------
OWN_TERMS = {
    "vae": ["test/kl", "test/elbo", "test/recon", "test/active_units", "val/active_units", "val/kl_dim/0"],
    "dae": ["test/denoise_mse", "val/denoise_mse"],
    "sparse": ["test/rho_hat", "test/sparsity", "test/recon"],
    "contractive": ["test/contractive", "test/recon"],
    "vqvae": [
        "test/recon",
        "test/commitment",
        *[f"{stage}/{name}" for stage in ("train", "val", "test") for name in ("perplexity", "codebook_usage")],
    ],
    "cvae": ["test/kl", "test/elbo", "test/recon", "test/active_units", "test/class_consistency", "test/nll"],
    "tcvae": ["test/mi", "test/tc", "test/dwkl", "test/kl", "test/elbo", "train/tc", "test/nll"],
    "aae": ["test/recon", "test/disc_loss", "test/gen_loss", "test/disc_acc", "train/disc_loss", "val/disc_acc"],
    "wae": ["test/recon", "test/mmd", "train/mmd"],
    "iwae": ["test/iw_bound", "test/kl", "test/nll", "test/active_units", "train/iw_bound"],
    "hvae": ["test/kl_z1", "test/kl_z2", "test/elbo", "test/active_units_z1", "test/active_units_z2", "test/nll"],
    "factorvae": [
        "test/tc",
        "test/disc_loss",
        "test/disc_acc",
        "test/kl",
        "test/elbo",
        "train/tc",
        "test/active_units",
    ],
}


@pytest.mark.parametrize("net", ["mlp", "conv"])
@pytest.mark.parametrize("model", sorted(OWN_TERMS))
def test_each_model_trains_with_each_net(tiny_cfg, tmp_path, model, net):
    from autoencoders.training.pipeline import train

    metrics = train(tiny_cfg(f"model={model}", f"model.net={net}"), run_dir=tmp_path)
    for name in [*OWN_TERMS[model], "test/loss", "test/mse", "val/loss", "train/loss"]:
        assert name in metrics and math.isfinite(metrics[name]), name


# Each model once on real FashionMNIST through `ae-train`'s main(), half on each net: one multirun
# per net in the test's own process, which has Lightning imported already (tests/cli runs the
# installed script itself on FashionMNIST).
ON_FASHIONMNIST = {
    "mlp": ["vae", "sparse", "cvae", "wae", "hvae"],
    "conv": ["dae", "contractive", "vqvae", "aae", "iwae", "factorvae"],
}


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("net", sorted(ON_FASHIONMNIST))
def test_ae_train_runs_each_model_on_fashionmnist(tmp_path, net, monkeypatch):
    from tests.helpers import ae_train_here

    models = ON_FASHIONMNIST[net]
    # Real data through every stage; the evaluation on smaller subsets than a user's run (its own
    # tests check the evaluation's numbers), so the runs stay short.
    overrides = [
        "-m",
        f"model={','.join(models)}",
        f"model.net={net}",
        "trainer=fast",
        "torch_threads=1",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "eval.probe_train_size=1000",
        "eval.nll_images=50",
        "eval.nll_samples=10",
        "logging.projector_points=200",
    ]
    done = ae_train_here(*overrides, cwd=tmp_path, monkeypatch=monkeypatch)  # ae-train's main(), in this process
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(path.read_text()) for path in sorted((tmp_path / "sweep").rglob("metrics.json"))]
    assert sorted(record["model"]["name"] for record in records) == sorted(models)
    for record in records:
        model = record["model"]["name"]
        assert record["status"] == "completed" and record["data"]["name"] == "fashionmnist", model
        for name in [*OWN_TERMS[model], "test/loss", "test/mse"]:
            assert name in record["metrics"] and math.isfinite(record["metrics"][name]), (model, name)
