"""The contractive autoencoder: the penalty and its gradient against brute force, the estimate unbiased."""

import copy
import math

import pytest
import torch
from torch import nn

from autoencoders.models.contractive import ContractiveAutoencoder

SMALL = {"input_shape": [1, 8, 8], "latent_dim": 3}


# --- contractive ----------------------------------------------------------------------------
def brute_force_jacobian_sq(encoder: nn.Module, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """||J||_F^2 per image: one image at a time, one torch.autograd.grad per code unit."""
    per_image = []
    for image in x:
        image = image[None].clone().requires_grad_(True)
        code = encoder(image)[0]
        total = 0.0
        for unit in code:
            (row,) = torch.autograd.grad(unit, image, retain_graph=True, create_graph=create_graph)
            total = total + row.pow(2).sum()
        per_image.append(total)
    return torch.stack(per_image)


def moved_batchnorm_model(net: str, **kwargs) -> ContractiveAutoencoder:
    """A model whose BatchNorm running statistics are no longer the identity at init."""
    torch.manual_seed(0)
    model = ContractiveAutoencoder(**SMALL, net=net, **kwargs).train()
    with torch.no_grad():
        for _ in range(3):
            model.encoder(torch.rand(16, 1, 8, 8) * 3)
    return model


@pytest.mark.parametrize("net", ["mlp", "conv"])
def test_contractive_penalty_and_its_gradient_equal_brute_force(net):
    model = moved_batchnorm_model(net, contractive_weight=0.5)
    x = torch.rand(4, 1, 8, 8)
    tracked = [m.num_batches_tracked.item() for m in model.encoder.modules() if isinstance(m, nn.BatchNorm2d)]
    terms, x_hat = model.loss_terms(x)
    reference = copy.deepcopy(model.encoder).eval()  # eval-mode BatchNorm with this step's running stats
    expected = brute_force_jacobian_sq(reference, x, create_graph=True).mean()
    assert torch.allclose(terms["contractive"], expected, rtol=1e-4)
    assert torch.allclose(terms["loss"], ((x_hat - x) ** 2).mean() + 0.5 * expected, rtol=1e-4)
    # BatchNorm is back in training mode and was updated once, by the reconstruction pass only.
    norms = [m for m in model.encoder.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(m.training for m in norms) and [m.num_batches_tracked.item() for m in norms] == [t + 1 for t in tracked]

    terms["contractive"].backward()
    expected.backward()
    for (name, mine), theirs in zip(model.encoder.named_parameters(), reference.parameters()):
        if mine.dim() > 1:  # weight matrices and kernels: the gradient reaches them
            assert mine.grad is not None and mine.grad.abs().sum() > 0, name
        mine_grad, their_grad = (torch.zeros_like(p) if p.grad is None else p.grad for p in (mine, theirs))
        assert torch.allclose(mine_grad, their_grad, rtol=1e-4, atol=1e-7), name  # None: does not enter J


@pytest.mark.parametrize("net", ["mlp", "conv"])
def test_contractive_projection_estimate_is_unbiased(net):
    model = moved_batchnorm_model(net, jacobian_projections=1)
    x = torch.rand(4, 1, 8, 8)
    exact = brute_force_jacobian_sq(copy.deepcopy(model.encoder).eval(), x).mean()
    # 2,000 one-projection estimates of the batch mean; tolerance 5 standard errors of their mean
    # (a draw's relative spread is at most sqrt(2 / 4 images), so at most 5 * 0.7 / 45 = 8%).
    draws = torch.stack([model.contractive_penalty(x).mean().detach() for _ in range(2000)])
    standard_error = draws.std() / math.sqrt(len(draws))
    assert (draws.mean() - exact).abs() < 5 * standard_error
    assert standard_error < 0.02 * exact and draws.std() > 0.05 * exact  # random, and a tight check


def test_contractive_penalty_at_evaluation_runs_under_inference_mode():
    model = moved_batchnorm_model("conv").eval()
    x = torch.rand(4, 1, 8, 8)
    with torch.inference_mode():
        terms, _ = model.loss_terms(x)
    expected = brute_force_jacobian_sq(model.encoder, x).mean()
    assert torch.allclose(terms["contractive"], expected, rtol=1e-4)
