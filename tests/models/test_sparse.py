"""The sparse autoencoder: penalties on the right code, decoder weight decay in its own group."""

import pytest
import torch

from autoencoders.models.sparse import SparseAutoencoder

SMALL = {"input_shape": [1, 8, 8], "latent_dim": 3}


# --- sparse ---------------------------------------------------------------------------------
@pytest.mark.parametrize("sparsity", ["l1", "kl"])
def test_sparse_loss_is_recon_plus_weighted_penalty_on_the_right_code(sparsity):
    torch.manual_seed(0)
    model = SparseAutoencoder(**SMALL, sparsity=sparsity, sparsity_weight=0.5, sparsity_target=0.1)
    x = torch.rand(6, 1, 8, 8)
    terms, x_hat = model.loss_terms(x)
    code = model.encode(x)
    if sparsity == "l1":
        assert torch.equal(code, torch.relu(model.encoder(x)))
        penalty = code.abs().mean()
    else:
        assert torch.equal(code, torch.sigmoid(model.encoder(x)))
        rate = code.mean(0)
        penalty = (0.1 * torch.log(0.1 / rate) + 0.9 * torch.log(0.9 / (1 - rate))).sum()
    recon = ((x_hat - x) ** 2).mean()
    assert torch.allclose(terms["sparsity"], penalty, rtol=1e-5) and torch.allclose(terms["recon"], recon)
    assert torch.allclose(terms["loss"], recon + 0.5 * penalty, rtol=1e-5)
    assert torch.allclose(terms["rho_hat"], code.mean())


def test_sparse_decoder_weights_get_their_own_weight_decay():
    model = SparseAutoencoder(**SMALL, net="conv", weight_decay=1e-5, decoder_weight_decay=1e-3)
    optimizer = model.configure_optimizers()["optimizer"]
    decay = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    assert sum(len(group["params"]) for group in optimizer.param_groups) == len(list(model.parameters()))
    for name, parameter in model.named_parameters():
        decoder_matrix = name.startswith("decoder.") and parameter.dim() > 1
        assert decay[id(parameter)] == pytest.approx(1e-5 + 1e-3 if decoder_matrix else 1e-5), name
