"""load_run: a finished run's model back in a notebook, without Hydra or data."""

import pytest
import torch

from autoencoders import load_run
from autoencoders.models.vae import VAE


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


def test_the_new_models_load_sample_re_test_and_compare(tiny_cfg, tmp_path, capsys):
    # load_run, Lightning's load_from_checkpoint(weights_only=True), ae-eval and ae-compare for the
    # vqvae, cvae, tcvae, aae, wae, iwae, factorvae and hvae (the cvae with the labels its methods take).
    import csv
    import io

    from hydra.utils import get_class

    from autoencoders.cli.compare import main as ae_compare
    from autoencoders.evaluation.finished_run import evaluate_run
    from autoencoders.training.pipeline import train

    quiet = [
        "model.latent_dim=8",
        "logging.images_every_n_epochs=0",
        "logging.projector_points=0",
        "eval.probe=false",
        "eval.nll_samples=5",
    ]
    own = {
        "vqvae": "test/perplexity",
        "cvae": "test/class_consistency",
        "tcvae": "test/tc",
        "aae": "test/disc_acc",
        "wae": "test/mmd",
        "iwae": "test/kl",
        "factorvae": "test/disc_loss",
        "hvae": "test/kl_z2",
    }
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 3, 5, 9])
    for name, metric in own.items():
        cfg = tiny_cfg(f"model={name}", *quiet)
        metrics = train(cfg, run_dir=tmp_path / name, overrides=[f"model={name}"])
        model = load_run(tmp_path / name)
        again = (
            get_class(cfg.model._target_)
            .load_from_checkpoint(tmp_path / name / "checkpoints" / "best.ckpt", weights_only=True)
            .eval()
        )
        given = (y,) if name == "cvae" else ()
        with torch.no_grad():
            assert torch.equal(model.decode(model.encode(x, *given), *given), model.reconstruct(x, *given))
            assert torch.equal(again.reconstruct(x, *given), model.reconstruct(x, *given))
            assert torch.equal(
                again.sample(3, generator=torch.Generator().manual_seed(0)),
                model.sample(3, generator=torch.Generator().manual_seed(0)),
            )
        entry = evaluate_run(tmp_path / name)
        for key in ("test/mse", metric):
            assert entry["metrics"][key] == pytest.approx(metrics[key], rel=1e-6), (name, key)
    capsys.readouterr()
    assert ae_compare([str(tmp_path), "--format", "csv", "--metrics", ",".join(["test/mse", *own.values()])]) == 0
    rows = {row["run"]: row for row in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert set(rows) == set(own) and all(float(rows[name][metric]) >= 0 for name, metric in own.items())
