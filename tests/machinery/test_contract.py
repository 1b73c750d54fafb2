"""The model contract (machinery/contract.py): every model keeps it, each has the capabilities it
should, the prior choice is refused in one sentence where it does not apply, and no code outside
the contract probes a model's names with getattr/hasattr."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import get_class

from autoencoders.errors import ConfigError
from autoencoders.machinery import contract
from autoencoders.machinery.contract import (
    GridSampler,
    ImportanceWeighted,
    ModelContract,
    Sampler,
    Tokenizer,
    Variational,
)
from autoencoders.rundir.loading import constructor_arguments

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "autoencoders"
MODELS = sorted(path.stem for path in (ROOT / "conf" / "model").glob("*.yaml"))
PROTOCOLS = (Variational, ImportanceWeighted, Sampler, GridSampler, Tokenizer)

# What each model can do beyond the required part of the contract.
CAPABILITIES = {
    "vae": {Variational, Sampler},
    "tcvae": {Variational, Sampler},
    "iwae": {Variational, Sampler},
    "factorvae": {Variational, Sampler},
    "cvae": {Variational, Sampler, GridSampler},
    "hvae": {Variational, ImportanceWeighted, Sampler, GridSampler},
    "vqvae": {Sampler, GridSampler, Tokenizer},
    "aae": {Sampler},
    "wae": {Sampler},
}
SWAPPABLE = {"vae", "tcvae", "iwae", "cvae"}
WITH_PRIOR = SWAPPABLE | {"hvae", "factorvae", "aae", "wae"}


def model_class(option: str) -> type:
    import yaml

    node = yaml.safe_load((ROOT / "conf" / "model" / f"{option}.yaml").read_text())
    parent = next(
        (entry for entry in node.get("defaults", []) if isinstance(entry, str) and not entry.startswith("/")), None
    )
    return get_class(node["_target_"]) if "_target_" in node else model_class(parent)


def build(option: str, **settings) -> ModelContract:
    cls = model_class(option)
    given = {"num_classes": 10, "dataset_size": 100}
    arguments = constructor_arguments(cls)
    return cls(input_shape=[1, 28, 28], **{k: v for k, v in given.items() if k in arguments}, **settings)


@pytest.mark.parametrize("option", MODELS)
def test_every_model_keeps_the_contract_with_the_capabilities_it_has(option):
    model = build(option)
    assert isinstance(model, ModelContract)
    assert {protocol for protocol in PROTOCOLS if isinstance(model, protocol)} == CAPABILITIES.get(option, set())
    assert (contract.prior_of(model) is not None) == (option in WITH_PRIOR)
    assert contract.estimates_likelihood(model) == (option in {"vae", "tcvae", "iwae", "factorvae", "cvae", "hvae"})
    assert contract.is_conditional(model) == (option == "cvae")
    assert contract.decodes_codes(model)  # no model overrides reconstruct
    trainer = type("Trainer", (), {"lightning_module": model})()
    assert contract.training_draws(trainer) == (2 if option == "factorvae" else 1)
    assert (set(model.prior_choices) == {"normal", "laplace"}) == (option in SWAPPABLE)


def test_the_questions_answer_for_modules_without_the_contract():
    plain = torch.nn.Linear(2, 2)
    assert not contract.is_conditional(plain) and contract.prior_of(plain) is None
    assert not contract.estimates_likelihood(plain) and not contract.decodes_codes(plain)
    assert contract.training_draws(None) == 1 and contract.training_draws(object()) == 1


def test_a_model_must_say_its_loss_terms_and_may_replace_reconstruct():
    from autoencoders.machinery.base import AutoencoderBase

    class NoLoss(AutoencoderBase):
        pass

    with pytest.raises(TypeError, match="abstract method loss_terms"):
        NoLoss(input_shape=[1, 4, 4])

    class OwnReconstruction(NoLoss):
        def loss_terms(self, x):
            return {"loss": x.mean()}, x

        def reconstruct(self, x):
            return x

    assert not contract.decodes_codes(OwnReconstruction(input_shape=[1, 4, 4]))


@pytest.mark.parametrize("option", MODELS)
def test_model_prior_is_refused_in_one_sentence_where_it_does_not_apply(option):
    cls = model_class(option)
    if option in SWAPPABLE:
        contract.check_prior(cls, "laplace")
        assert build(option, prior="laplace").prior.name == "laplace"
        return
    name = cls.__name__
    said = (
        f"is not available for {name}, whose prior is its own"
        if option in WITH_PRIOR
        else f"does not apply to {name}, which has no continuous prior"
    )
    with pytest.raises(ConfigError, match=rf"model.prior='laplace' {said}.*the vae, tcvae, iwae and cvae"):
        contract.check_prior(cls, "laplace")
    if option in WITH_PRIOR:  # they take model.prior, so construction refuses it too
        contract.check_prior(cls, "normal")
        with pytest.raises(ConfigError, match="is not available for"):
            build(option, prior="laplace")


def test_the_refusal_names_exactly_the_models_that_swap_their_prior():
    swappable = {option for option in MODELS if "laplace" in model_class(option).prior_choices}
    assert swappable == SWAPPABLE
    assert contract.SWAPPABLE_PRIOR_MODELS == "vae, tcvae, iwae and cvae"


def test_ae_trains_config_check_refuses_a_prior_before_anything_is_built(compose_cfg):
    from autoencoders.schema import check_config
    from autoencoders.training.opening import check_settings_exist

    check_settings_exist(compose_cfg("model=tcvae", "model.prior=laplace"))
    with pytest.raises(ConfigError, match="HVAE, whose prior is its own"):
        check_settings_exist(compose_cfg("model=hvae", "model.prior=laplace"))
    with pytest.raises(ConfigError, match="Autoencoder, which has no continuous prior"):
        check_settings_exist(compose_cfg("model=mlp", "+model.prior=laplace"))
    with pytest.raises(ConfigError, match=r"model.prior='gauss' is not allowed.*normal, laplace"):
        check_config(compose_cfg("model=vae", "model.prior=gauss"))


# --- no probing: capabilities are asked of the contract ------------------------------------------
MODEL_NAMES = {"model", "module", "pl_module", "lightning_module"}


def contract_names() -> set[str]:
    """Every name the contract declares: ModelContract's members and each protocol's."""
    names = {name for klass in (ModelContract, *PROTOCOLS) for name in vars(klass) if not name.startswith("__")}
    return names | {name for klass in PROTOCOLS for name in getattr(klass, "__annotations__", {})} | {"shared_passes"}


def probes(source: str, self_is_a_model: bool) -> list[str]:
    """getattr/hasattr calls in `source` that probe a model, or probe any object for a contract name."""
    found, declared = [], contract_names()
    for node in ast.walk(ast.parse(source)):
        if not (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
        ):
            continue
        if len(node.args) < 2:
            continue
        target, name = node.args[0], node.args[1]
        last = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
        on_a_model = last in MODEL_NAMES or (last == "self" and self_is_a_model)
        names_a_capability = isinstance(name, ast.Constant) and name.value in declared
        if on_a_model or names_a_capability:
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_no_capability_is_probed_outside_the_contract():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "machinery" / "contract.py":
            continue
        # In the models and the shared loop, `self` is a model.
        self_is_a_model = path.parent.name == "models" or path.name in ("base.py", "phases.py")
        if problems := probes(path.read_text(), self_is_a_model):
            found[str(path.relative_to(ROOT))] = problems
    assert not found, f"ask machinery/contract.py instead: {found}"


def test_the_probe_scan_can_fail():
    planted = """
def f(model, trainer, self, datamodule, record):
    callable(getattr(model, "sample", None))
    hasattr(trainer.lightning_module, "anything")
    getattr(trainer, "training_draws", 1)
    getattr(self, "_state", None)
    getattr(datamodule, "has_factors", False)
    getattr(record, "staged", {})
"""
    assert sorted(line.split(":")[0] for line in probes(planted, self_is_a_model=True)) == [
        "line 3",
        "line 4",
        "line 5",
        "line 6",
    ]
    assert len(probes(planted, self_is_a_model=False)) == 3


def test_the_contract_imports_nothing_heavy():
    # The data module asks the contract; it must not pull torch or Lightning in on its own.
    code = "import sys, autoencoders.machinery.contract; print(sorted({'torch', 'lightning'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
