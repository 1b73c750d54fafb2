"""The pure maths of losses/ against torch.distributions, hand computation and brute force."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Normal, kl_divergence

from autoencoders.losses import densities, penalties, reconstruction
from tests.models.reference import squared_error


def test_closed_form_kl_equals_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(6, 5) * 2, torch.randn(6, 5) * 3
    expected = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0))
    assert torch.allclose(densities.gaussian_kl_per_dim(mu, logvar), expected, rtol=1e-5, atol=1e-6)
    assert torch.all(densities.gaussian_kl_per_dim(torch.zeros(2, 3), torch.zeros(2, 3)) == 0)  # q = p


def test_gaussian_nll_is_the_normalised_negative_log_density():
    torch.manual_seed(0)
    x, x_hat = torch.rand(3, 1, 4, 4), torch.rand(3, 1, 4, 4)
    for sigma in (reconstruction.GAUSSIAN_SIGMA, 0.1):
        expected = -Normal(x_hat, sigma).log_prob(x).flatten(1).sum(1)
        assert torch.allclose(reconstruction.gaussian_nll(x_hat, x, sigma), expected, rtol=1e-5)
    # sigma = 1/sqrt(2): squared error plus log(pi)/2 per pixel, the documented form.
    pixels = 16
    expected = squared_error(x_hat, x) + pixels * 0.5 * math.log(math.pi)
    assert torch.allclose(reconstruction.gaussian_nll(x_hat, x), expected, rtol=1e-5)
    assert reconstruction.NEGATIVE_LOG_LIKELIHOODS["bce"] is reconstruction.binary_cross_entropy


@pytest.mark.parametrize("name", ["mse", "bce"])
def test_fused_mean_nll_equals_the_mean_of_per_image_nlls(name):
    torch.manual_seed(0)
    x, x_hat = torch.rand(4, 1, 5, 3), torch.rand(4, 1, 5, 3).requires_grad_(True)
    fused = reconstruction.mean_negative_log_likelihood(name, x_hat, x)
    per_image = reconstruction.NEGATIVE_LOG_LIKELIHOODS[name](x_hat, x).mean()
    assert fused.item() == pytest.approx(per_image.item(), rel=1e-6)
    (fused_grad,) = torch.autograd.grad(fused, x_hat)
    (per_image_grad,) = torch.autograd.grad(per_image, x_hat)
    assert torch.allclose(fused_grad, per_image_grad, rtol=1e-5, atol=1e-8)


def test_free_bits_floors_each_dimensions_batch_mean():
    kl_per_dim = torch.tensor([[0.1, 2.0, 0.0], [0.3, 1.0, 0.6]], requires_grad=True)  # means 0.2, 1.5, 0.3
    assert densities.free_bits_kl(kl_per_dim, 0.0).item() == pytest.approx(2.0)  # = mean of per-image sums
    floored = densities.free_bits_kl(kl_per_dim, 0.5)
    assert floored.item() == pytest.approx(0.5 + 1.5 + 0.5)
    floored.backward()
    # Dimensions under the floor get no gradient; the one above gets d mean / d entry = 1/2.
    assert torch.equal(kl_per_dim.grad, torch.tensor([[0.0, 0.5, 0.0], [0.0, 0.5, 0.0]]))


def test_l1_sparsity_is_mean_absolute_activation_per_image():
    code = torch.tensor([[1.0, -2.0, 0.0], [0.5, 0.0, 0.0]])
    assert torch.allclose(penalties.l1_sparsity(code), torch.tensor([1.0, 0.5 / 3]))


def test_kl_sparsity_sums_bernoulli_kl_of_batch_mean_rates():
    code = torch.tensor([[0.1, 0.5], [0.3, 0.1]])  # rho_hat = 0.2, 0.3
    rho = 0.05

    def kl(rate: float) -> float:
        return rho * math.log(rho / rate) + (1 - rho) * math.log((1 - rho) / (1 - rate))

    assert penalties.kl_sparsity(code, rho).item() == pytest.approx(kl(0.2) + kl(0.3), rel=1e-6)
    assert penalties.kl_sparsity(torch.full((4, 3), rho), rho).item() == pytest.approx(0.0, abs=1e-7)
    rates = torch.tensor([0.01, 0.2, 0.9])
    expected = kl_divergence(Bernoulli(torch.tensor(rho)), Bernoulli(rates))
    assert torch.allclose(penalties.bernoulli_kl(rho, rates), expected, rtol=1e-5)
    assert torch.isfinite(penalties.kl_sparsity(torch.zeros(2, 2), rho))  # dead units: large but finite


def brute_force_jacobian_sq(f, x: torch.Tensor) -> torch.Tensor:
    """||J||_F^2 per image from torch.autograd.functional.jacobian, one image at a time."""
    return torch.stack(
        [torch.autograd.functional.jacobian(lambda image: f(image[None])[0], image).pow(2).sum() for image in x]
    )


@pytest.mark.parametrize("hidden", [[5], [7, 5]])
def test_relu_mlp_closed_form_equals_brute_force_jacobian(hidden):
    torch.manual_seed(0)
    sizes = [6, *hidden, 3]
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
        layers += [nn.Linear(fan_in, fan_out)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    mlp = nn.Sequential(*layers)
    x = torch.randn(4, 1, 2, 3)
    linears = [layer for layer in mlp if isinstance(layer, nn.Linear)]
    hidden_out, masks = x.flatten(1), []
    for layer in linears[:-1]:
        hidden_out = torch.relu(layer(hidden_out))
        masks.append((hidden_out > 0).float())
    closed = penalties.relu_mlp_jacobian_frobenius_sq([layer.weight for layer in linears], masks)
    assert torch.allclose(closed, brute_force_jacobian_sq(mlp, x), rtol=1e-5)


def test_vector_jacobian_penalty_is_exact_and_its_estimate_unbiased():
    torch.manual_seed(0)
    weight = torch.randn(3, 5)

    def f(x):
        return torch.tanh(x.flatten(1) @ weight.T) ** 2

    x = torch.randn(4, 5)
    exact = brute_force_jacobian_sq(f, x)
    x_in = x.clone().requires_grad_(True)
    assert torch.allclose(penalties.jacobian_frobenius_sq(f(x_in), x_in, projections=0), exact, rtol=1e-5)
    # 4,000 one-projection draws per image; tolerance 5 standard errors of their mean. A draw's
    # relative spread is at most sqrt(2), so that is at most 5 * sqrt(2 / 4000) = 11% (here ~5%).
    x_in = x.clone().requires_grad_(True)
    draws = torch.stack(
        [penalties.jacobian_frobenius_sq(f(x_in), x_in, projections=1, create_graph=False) for _ in range(4000)]
    )
    standard_error = draws.std(0) / math.sqrt(len(draws))
    assert torch.all((draws.mean(0) - exact).abs() < 5 * standard_error)
    assert torch.all(standard_error < 0.03 * exact)  # so the check above is a tight one
    several = penalties.jacobian_frobenius_sq(f(x_in), x_in, projections=4000, create_graph=False)
    assert torch.all((several - exact).abs() < 5 * standard_error)  # k projections average k draws
