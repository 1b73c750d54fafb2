"""WAE-MMD: the unbiased MMD estimate against a hand computation and its value for samples of one
distribution and of two; the objective's weighting; training on both nets and reloading."""

import math

import pytest
import torch

from autoencoders.losses import matching
from autoencoders.models.wae import WAE
from autoencoders.training.pipeline import train
from tests.helpers import assert_finite_terms, reloaded

QUIET = ["logging.images_every_n_epochs=0", "logging.projector_points=0", "eval.probe=false"]


def imq_mmd_by_hand(q: list[list[float]], p: list[list[float]], variance: float = 1.0) -> float:
    """Tolstikhin et al. (2018), Algorithm 2, with the official code's kernel sum, by explicit loops."""
    n, dims = len(q), len(q[0])

    def kernel(a, b, c):
        return c / (c + sum((x - y) ** 2 for x, y in zip(a, b)))

    total = 0.0
    for scale in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0):
        c = 2 * dims * variance * scale
        within = sum(kernel(q[i], q[j], c) + kernel(p[i], p[j], c) for i in range(n) for j in range(n) if i != j)
        across = sum(kernel(q[i], p[j], c) for i in range(n) for j in range(n))
        total += within / (n * (n - 1)) - 2 * across / n**2
    return total


def test_the_mmd_estimate_equals_the_hand_computation():
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(5, 3, generator=generator, dtype=torch.float64) + 0.7
    p = torch.randn(5, 3, generator=generator, dtype=torch.float64)
    assert matching.mmd_inverse_multiquadric(q, p).item() == pytest.approx(
        imq_mmd_by_hand(q.tolist(), p.tolist()), rel=1e-12
    )
    # Another prior variance scales every kernel's constant.
    assert matching.mmd_inverse_multiquadric(q, p, prior_variance=2.0).item() == pytest.approx(
        imq_mmd_by_hand(q.tolist(), p.tolist(), variance=2.0), rel=1e-12
    )


def test_the_mmd_is_near_0_for_one_distribution_and_clearly_positive_for_two():
    # Over 10 pairs of 400 draws of N(0, I_8): |MMD^2| < 0.005 each (the largest seen: 0.0035);
    # codes shifted by 0.5 in every dimension read above 0.2.
    for seed in range(10):
        generator = torch.Generator().manual_seed(seed)
        a, b = (torch.randn(400, 8, generator=generator, dtype=torch.float64) for _ in range(2))
        assert abs(matching.mmd_inverse_multiquadric(a, b).item()) < 0.005, seed
        assert matching.mmd_inverse_multiquadric(a + 0.5, b).item() > 0.2, seed


def test_the_gradient_is_finite_where_codes_coincide():
    codes = torch.zeros(4, 2, requires_grad=True)  # distances of 0 off the diagonal too
    matching.mmd_inverse_multiquadric(codes, torch.randn(4, 2)).backward()
    assert torch.isfinite(codes.grad).all()


def test_the_objective_weighs_the_mmd_by_lambda_over_the_pixel_count():
    torch.manual_seed(0)
    model = WAE(input_shape=[1, 8, 8], latent_dim=3, mmd_weight=10.0)
    x = torch.rand(6, 1, 8, 8)
    torch.manual_seed(1)
    terms, x_hat = model.loss_terms(x)
    z = model.encode(x)
    torch.manual_seed(1)
    mmd = matching.mmd_inverse_multiquadric(z, torch.randn_like(z))  # the prior draws loss_terms made
    assert torch.allclose(terms["mmd"], mmd) and torch.allclose(terms["recon"], ((x_hat - x) ** 2).mean())
    assert torch.allclose(terms["loss"], terms["recon"] + 10.0 / 64 * mmd)
    assert math.isclose(10.0 / 784, 0.012755, rel_tol=1e-4)  # the weight on FashionMNIST's per-pixel mse


def test_wae_trains_and_reloads(tiny_cfg, tmp_path):
    # (Both nets train in tests/models/test_training.py; this one reloads the mlp wae.)
    metrics = train(tiny_cfg("model=wae", "model.latent_dim=4", *QUIET), run_dir=tmp_path)
    assert_finite_terms(metrics, ("loss", "recon", "mmd"))
    assert metrics["test/recon"] == metrics["test/mse"]
    model = reloaded(tmp_path, WAE, latent_dim=4)
    with torch.no_grad():
        assert model.sample(3).shape == (3, 1, 28, 28)
