"""model.prior=laplace end to end: a VAE trained with the Laplace(0, 1) prior scores test/nll under
that density and draws its samples grid from it. The references are written out here from
torch.distributions, independently of the package's estimator and prior."""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image
from torch.distributions import Laplace, Normal, kl_divergence

N_SAMPLES = 20  # importance samples per image
LATENT = 4


def importance_weighted_nll(model, x: torch.Tensor, log_prior) -> torch.Tensor:
    """-log (1/k) sum_k p(x|z_k) p(z_k) / q(z_k|x) per image, z_k ~ q(z|x) with the noise test/nll
    draws (a generator seeded 0, all k samples of the chunk at once); p(x|z) the mse models'
    Gaussian with sigma 1/sqrt(2) per pixel."""
    mu, logvar = model.posterior(x)
    posterior = Normal(mu, torch.exp(0.5 * logvar))
    eps = torch.randn((N_SAMPLES, *mu.shape), generator=torch.Generator().manual_seed(0))
    z = posterior.loc + posterior.scale * eps  # (k, N, latent)
    decoded = model.decode(z.flatten(0, 1)).view(N_SAMPLES, len(x), -1)
    log_likelihood = Normal(decoded, 1 / math.sqrt(2)).log_prob(x.flatten(1)).sum(-1)
    log_weights = log_likelihood + log_prior(z).sum(-1) - posterior.log_prob(z).sum(-1)
    return -(torch.logsumexp(log_weights.double(), 0) - math.log(N_SAMPLES))


def as_logged(images: torch.Tensor) -> np.ndarray:
    """A grid of 16 images in rows of 8 as TensorBoard stores it: HWC uint8 (values truncated)."""
    from autoencoders.views.tensorboard import grid

    return (grid(images, 8).permute(1, 2, 0).numpy() * 255).clip(0, 255).astype(np.uint8)


def test_a_laplace_prior_vae_scores_nll_and_draws_samples_under_the_laplace(tiny_cfg, tmp_path):
    from autoencoders import load_run
    from autoencoders.rundir.loading import instantiate, load_config
    from autoencoders.training.pipeline import train
    from tests.helpers import read_events

    run = tmp_path / "run"
    overrides = ("model=vae", "model.prior=laplace", "model.loss=mse", f"model.latent_dim={LATENT}")
    settings = (f"eval.nll_samples={N_SAMPLES}", "eval.nll_images=null", "eval.probe=false", "eval.anomaly=false")
    metrics = train(tiny_cfg(*overrides, *settings), run_dir=run)
    model = load_run(run)  # the tested checkpoint, in eval mode
    assert model.prior.name == "laplace" and model.hparams.prior == "laplace"

    # test/nll: the mean over the 256 test images (one chunk of test/nll's 500), under Laplace(0, 1).
    data = instantiate(load_config(run).data)
    data.setup()
    x = data.pixels("test")[0]
    assert len(x) <= 500
    with torch.no_grad():
        laplace = importance_weighted_nll(model, x, Laplace(0.0, 1.0).log_prob).mean().item()
        normal = importance_weighted_nll(model, x, Normal(0.0, 1.0).log_prob).mean().item()
    # Agreement to float32 rounding (2e-8 relative measured); the normal prior's estimate on the
    # same draws differs by 0.6 nats (1e-3 relative), so the check tells the two priors apart.
    assert math.isclose(metrics["test/nll"], laplace, rel_tol=1e-6)
    assert abs(laplace - normal) > 100 * 1e-6 * abs(laplace)

    # The samples grid after testing (the tested weights): 16 codes from Laplace(0, 1) decoded.
    # torch.distributions draws from the global generator seeded as the grid's own (seed 0): the
    # same stream, so the same codes up to float rounding.
    events = read_events(run)
    logged = max(events.Images("images/samples"), key=lambda image: (image.step, image.wall_time))
    logged = np.asarray(Image.open(io.BytesIO(logged.encoded_image_string)).convert("RGB"))
    with torch.no_grad():
        torch.manual_seed(0)
        from_laplace = as_logged(model.decode(Laplace(0.0, 1.0).sample((16, LATENT))))
        torch.manual_seed(0)
        from_normal = as_logged(model.decode(torch.randn(16, LATENT)))
    assert logged.shape == from_laplace.shape
    assert np.abs(logged.astype(int) - from_laplace.astype(int)).max() <= 1  # truncation to uint8
    assert np.abs(logged.astype(int) - from_normal.astype(int)).max() > 5


# --- each model that takes the prior uses it in every place its maths has p(z) -------------------
def laplace_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Laplace(torch.zeros_like(mu), torch.ones_like(mu)))


def test_the_vae_family_takes_kl_and_log_densities_from_the_laplace():
    from autoencoders.models.iwae import IWAE
    from autoencoders.models.tcvae import TCVAE
    from autoencoders.models.vae import VAE

    torch.manual_seed(0)
    x = torch.rand(6, 1, 28, 28)
    for cls, extra in ((VAE, {}), (IWAE, {}), (TCVAE, {"dataset_size": 100})):
        model = cls(input_shape=[1, 28, 28], latent_dim=LATENT, prior="laplace", **extra).eval()
        with torch.no_grad():
            mu, logvar = model.posterior(x)
            kl = laplace_kl(mu, logvar)
            torch.manual_seed(1)
            terms, _ = model.loss_terms(x)
            assert torch.allclose(terms["kl"], kl.sum(1).mean()), cls.__name__
            normal = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0))
            assert not torch.allclose(terms["kl"], normal.sum(1).mean())
            per_dim = model.on_evaluation_batch("val", x, 0)
            assert torch.allclose(torch.stack([per_dim[f"kl_dim/{j}"] for j in range(LATENT)]), kl.mean(0))
    # The tcvae's split: mi + tc + dwkl = log q(z|x) - log p(z) with p = Laplace(0, 1), per image.
    with torch.no_grad():
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        _, parts = model.regularizer(mu, logvar, z)
    by_hand = Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(1) - Laplace(0.0, 1.0).log_prob(z).sum(1)
    assert torch.allclose(parts["mi"] + parts["tc"] + parts["dwkl"], by_hand.mean(), atol=1e-4)


def test_the_cvae_samples_its_codes_from_the_laplace():
    from autoencoders.models.cvae import CVAE

    model = CVAE(input_shape=[1, 8, 8], latent_dim=LATENT, num_classes=3, prior="laplace").eval()
    with torch.no_grad():
        grid = model.sample_grid(6, 2, torch.Generator().manual_seed(4))
        torch.manual_seed(4)
        z = Laplace(0.0, 1.0).sample((2, LATENT))
        by_hand = model.decode(z.repeat(3, 1), torch.arange(3).repeat_interleave(2))
        assert torch.allclose(grid, by_hand, atol=1e-5)
        samples = model.sample(3, y=torch.tensor([0, 1, 2]), generator=torch.Generator().manual_seed(4))
        torch.manual_seed(4)
        expected = model.decode(Laplace(0.0, 1.0).sample((3, LATENT)), torch.tensor([0, 1, 2]))
        assert torch.allclose(samples, expected, atol=1e-5)
