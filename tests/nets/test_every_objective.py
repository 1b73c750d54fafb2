"""Every objective on every network family: built from its config, shapes checked, one training
step's loss finite with gradients reaching the encoder (the end-to-end runs are in
tests/models/test_training.py and tests/nets/test_own_network.py)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import get_class, instantiate

from autoencoders.rundir.loading import data_arguments
from tests.models.test_training import OWN_TERMS

MODELS = sorted([*OWN_TERMS, "mlp", "conv"])
FAMILIES = {
    "burgess": ((1, 64, 64), ["model/net=burgess"]),
    "residual": ((3, 32, 32), ["model/net=residual", "model.net.channels=[8,16]"]),
    "mlp-tanh": ((1, 28, 28), ["model/net=mlp", "model.net.activation=tanh", "model.net.hidden=[32]"]),
    "own": (
        (1, 28, 28),
        [
            "~model/net",  # the family the model's defaults chose, replaced by a mapping of one's own
            "+model.net={_target_: tests.nets.user_nets.TinyEncoder, width: 16, decoder: {_target_: tests.nets.user_nets.TinyDecoder}}",
        ],
    ),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("option", MODELS)
def test_each_objective_steps_on_each_family(compose_cfg, option, family):
    input_shape, overrides = FAMILIES[family]
    cfg = compose_cfg(f"model={option}", *overrides, "model.latent_dim=8")
    data = SimpleNamespace(input_shape=input_shape, num_classes=10, dataset_size=100)
    model = instantiate(cfg.model, **data_arguments(get_class(cfg.model._target_), data), _convert_="all")
    torch.manual_seed(0)
    x, labels = torch.rand(8, *input_shape), torch.arange(8) % 10
    model.check_network(x)
    terms, x_hat = model.loss_terms(x, *((labels,) if model.conditional else ()))
    assert x_hat.shape[1:] == x.shape[1:] and all(math.isfinite(float(value.detach())) for value in terms.values()), (
        terms
    )
    terms["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
