"""The config schema: one rule per key, used by the start-up check and by direct construction alike."""

import subprocess
import sys

import pytest
import torch

from autoencoders import config_keys
from autoencoders.config_keys import RULES
from autoencoders.errors import ConfigError
from autoencoders.models.contractive import ContractiveAutoencoder
from autoencoders.models.cvae import CVAE
from autoencoders.models.dae import DenoisingAutoencoder
from autoencoders.models.sparse import SparseAutoencoder
from autoencoders.models.tcvae import TCVAE
from autoencoders.models.vae import VAE
from autoencoders.models.vqvae import VQVAE
from autoencoders.schema import EvalSettings, check_config

SMALL = {"input_shape": [1, 8, 8], "latent_dim": 3}

# --- config checks --------------------------------------------------------------------------
BAD_VALUES = [
    (VAE, "beta", -1.0),
    (VAE, "kl_warmup_epochs", -0.5),
    (VAE, "free_bits", -0.1),
    (DenoisingAutoencoder, "noise", "salt"),
    (DenoisingAutoencoder, "noise_std", 1.5),
    (DenoisingAutoencoder, "mask_prob", -0.1),
    (SparseAutoencoder, "sparsity", "l2"),
    (SparseAutoencoder, "sparsity_target", 1.0),
    (SparseAutoencoder, "sparsity_target", 0.0),
    (SparseAutoencoder, "sparsity_weight", -1.0),
    (SparseAutoencoder, "decoder_weight_decay", -1e-4),
    (ContractiveAutoencoder, "contractive_weight", -1e-3),
    (ContractiveAutoencoder, "jacobian_projections", -1),
    (ContractiveAutoencoder, "jacobian_projections", 1.5),
    (VQVAE, "embedding_dim", 0),
    (VQVAE, "codebook_size", 0),
    (VQVAE, "commitment", -0.25),
    (VQVAE, "codebook_update", "kmeans"),
    (VQVAE, "ema_decay", 1.0),
    (VQVAE, "restart_dead_codes", "yes"),
    (CVAE, "num_classes", 0),
    (TCVAE, "dataset_size", -1),
    (TCVAE, "beta", -1.0),
]
# What the data gives the models that need it (rundir.loading.data_arguments).
DATA_SIZES = {CVAE: {"num_classes": 10}, TCVAE: {"dataset_size": 100}}


@pytest.mark.parametrize("model_class, key, value", BAD_VALUES)
def test_bad_values_are_config_errors_naming_the_key(model_class, key, value):
    with pytest.raises(ConfigError, match=rf"model\.{key}.*{value}"):
        model_class(**{**SMALL, **DATA_SIZES.get(model_class, {}), key: value})


def test_eval_settings_are_checked():
    assert EvalSettings.from_config(None) == EvalSettings()
    with pytest.raises(ConfigError, match="eval.nll_sample is not an eval setting"):
        EvalSettings.from_config({"nll_sample": 10})
    with pytest.raises(ConfigError, match="eval.anomaly='yes'"):
        EvalSettings.from_config({"anomaly": "yes"})
    with pytest.raises(ConfigError, match="eval.nll_samples=-1"):
        EvalSettings.from_config({"nll_samples": -1})


# --- bad values ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.latent_dim=0", "model.latent_dim=0 is not allowed: model.latent_dim must be an integer >= 1"),
        ("model.latent_dim=2.5", "model.latent_dim must be an integer >= 1"),
        ("model.lr=-1", "model.lr must be a number > 0"),
        ("model.lr=abc", "model.lr='abc' is not allowed"),
        ("model.loss=l2", "model.loss must be one of mse, bce"),
        ("model.net=resnet", "model.net must be a family (mlp, conv, burgess, residual) or a mapping with a _target_"),
        ("data.batch_size=0", "data.batch_size must be an integer >= 1"),
        ("torch_threads=0", "torch_threads must be an integer >= 1 (or null)"),
        ("trainer.max_epochs=-2", "trainer.max_epochs must be an integer >= 1"),
        ("++model.beta=-1", "model.beta must be a number >= 0"),
        ("++model.noise_std=1.5", "model.noise_std must be a number >= 0 and <= 1"),
        ("++model.sparsity_target=0", "model.sparsity_target must be a number > 0 and < 1"),
        ("model=vqvae model.codebook_update=kmeans", "model.codebook_update must be one of ema, loss"),
        ("model=vqvae model.ema_decay=1", "model.ema_decay must be a number >= 0 and < 1"),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(compose_cfg, override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_config(compose_cfg(*override.split()))


def test_the_names_in_the_schema_are_the_names_the_code_maps():
    # The schema spells the names out to stay free of torch imports; the code maps each to an
    # implementation. Both sides must list the same names, in the same order as the schema shows them.
    from autoencoders.losses import reconstruction, total_correlation
    from autoencoders.machinery.optim import LR_SCHEDULES
    from autoencoders.models.dae import CORRUPTIONS
    from autoencoders.models.sparse import SPARSITY
    from autoencoders.nets.families import import_class
    from autoencoders.nets.mlp import ACTIVATIONS
    from autoencoders.nets.quantizer import CODEBOOK_UPDATES
    from autoencoders.schema import shipped_nets

    # model.net's names are the conf/model/net/ files, each naming an encoder class with its decoder.
    assert tuple(shipped_nets()) == config_keys.NETS
    for config in shipped_nets().values():
        assert issubclass(import_class(config["_target_"], "model.net._target_").mirror, torch.nn.Module)
    assert tuple(ACTIVATIONS) == config_keys.NET_ACTIVATIONS == RULES["net.mlp.activation"].choices
    assert (
        tuple(reconstruction.RECONSTRUCTION_LOSSES) == config_keys.RECONSTRUCTION_LOSSES == RULES["model.loss"].choices
    )
    assert tuple(LR_SCHEDULES) == config_keys.LR_SCHEDULES == RULES["model.lr_schedule"].choices
    assert tuple(CORRUPTIONS) == config_keys.CORRUPTIONS == RULES["model.noise"].choices
    assert tuple(SPARSITY) == config_keys.SPARSITY_PENALTIES == RULES["model.sparsity"].choices
    for estimator in config_keys.TC_ESTIMATORS:  # each name is a weighting losses/total_correlation.py knows
        assert total_correlation.minibatch_log_weights(4, 10, estimator).shape == (4, 4)
    assert tuple(CODEBOOK_UPDATES) == config_keys.CODEBOOK_UPDATES == RULES["model.codebook_update"].choices
    from autoencoders.machinery.priors import PRIORS

    assert tuple(PRIORS) == config_keys.PRIORS == RULES["model.prior"].choices


def test_the_schema_imports_no_torch():
    code = "import sys, autoencoders.schema; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
