"""load_run: a finished run's model back in a notebook, without Hydra or data."""

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
