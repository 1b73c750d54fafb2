"""docs/adding-a-model.md's checklist, checked for every conf/model/*.yaml: the class exists and
derives AutoencoderBase, its own constructor keys are declared, docs/models.md has its row, it has
a test file, and tests/models/test_training.py trains it with its own terms. Each check is also
shown to fail on a planted model that skipped the step."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra.utils import get_class

from autoencoders.config_keys import RULES

ROOT = Path(__file__).resolve().parent.parent
CONF_MODEL = ROOT / "conf" / "model"
MODELS = sorted(path.stem for path in CONF_MODEL.glob("*.yaml"))
MODELS_DOC = ROOT / "docs" / "models.md"
TRAINING_TESTS = ROOT / "tests" / "models" / "test_training.py"

# mlp and conv are one class (autoencoders.models.autoencoder.Autoencoder) on two networks: conv.yaml
# is mlp.yaml with `net: conv`. They share its test file and have no terms beyond loss and mse,
# which test_training checks for every model, so they have no OWN_TERMS entry.
PLAIN = {"mlp", "conv"}
TEST_FILE_OF = {"mlp": "test_autoencoder.py", "conv": "test_autoencoder.py"}


def target_of(name: str) -> str | None:
    """The `_target_` of conf/model/<name>.yaml, following its `defaults` to another model file
    (conv.yaml starts from mlp.yaml); None when there is no such file or no target."""
    path = CONF_MODEL / f"{name}.yaml"
    if not path.exists():
        return None
    node = yaml.safe_load(path.read_text()) or {}
    if "_target_" in node:
        return node["_target_"]
    parents = [entry for entry in node.get("defaults", []) if isinstance(entry, str) and not entry.startswith("/")]
    return next((target for parent in parents if (target := target_of(parent))), None)


def class_problem(target: str | None) -> str | None:
    """Why `target` is no model class (None when it is one)."""
    from autoencoders.machinery.base import AutoencoderBase

    if target is None:
        return "no _target_ in conf/model"
    try:
        cls = get_class(target)
    except Exception as error:  # Hydra wraps the ImportError/AttributeError
        return f"{target} cannot be imported: {error}"
    if not (isinstance(cls, type) and issubclass(cls, AutoencoderBase)):
        return f"{target} does not derive autoencoders.machinery.base.AutoencoderBase"
    return None


def own_arguments(cls: type) -> list[str]:
    """The constructor arguments a model adds to AutoencoderBase's shared ones."""
    from autoencoders.machinery.base import AutoencoderBase

    names: list[str] = []
    for klass in cls.__mro__:
        if klass is AutoencoderBase or not issubclass(klass, AutoencoderBase) or "__init__" not in vars(klass):
            continue
        for name, parameter in inspect.signature(klass.__init__).parameters.items():
            if name != "self" and parameter.kind is parameter.KEYWORD_ONLY and name not in names:
                names.append(name)
    return names


def undeclared_arguments(cls: type) -> list[str]:
    """Its own constructor keys that autoencoders/config_keys.py does not declare."""
    return [f"model.{name}" for name in own_arguments(cls) if f"model.{name}" not in RULES]


def has_models_row(name: str, text: str) -> bool:
    """docs/models.md names every model in a table row of its own that starts with `| <name> |`."""
    return re.search(rf"^\| {re.escape(name)} \|", text, flags=re.MULTILINE) is not None


def model_test_file(name: str) -> Path:
    return ROOT / "tests" / "models" / TEST_FILE_OF.get(name, f"test_{name}.py")


def own_terms_models(source: str) -> set[str]:
    """The keys of OWN_TERMS in tests/models/test_training.py's source (read, not imported)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "OWN_TERMS" for t in node.targets):
            return {key.value for key in node.value.keys if isinstance(key, ast.Constant)}
    return set()


@pytest.mark.parametrize("name", MODELS)
def test_every_model_follows_the_checklist(name):
    problem = class_problem(target_of(name))
    assert problem is None, f"{name}: {problem}"
    assert not undeclared_arguments(get_class(target_of(name))), name
    assert has_models_row(name, MODELS_DOC.read_text()), f"docs/models.md has no row `| {name} |`"
    assert model_test_file(name).exists(), f"{name}: {model_test_file(name)} is missing"
    if name not in PLAIN:
        assert name in own_terms_models(TRAINING_TESTS.read_text()), f"{name} is not in OWN_TERMS"


def test_the_models_are_found():
    # The checks run over what is there: the nine models of the docs, and two of them plain.
    assert {"mlp", "conv", "vae", "dae", "sparse", "contractive", "vqvae", "cvae", "tcvae"} <= set(MODELS)
    assert target_of("conv") == target_of("mlp") == "autoencoders.models.autoencoder.Autoencoder"
    assert own_arguments(get_class(target_of("dae"))) == ["noise", "noise_std", "mask_prob"]
    assert own_arguments(get_class(target_of("mlp"))) == []


def test_each_check_fails_for_a_planted_model():
    from autoencoders.machinery.base import AutoencoderBase

    planted = "planted"
    assert target_of(planted) is None and class_problem(target_of(planted)) == "no _target_ in conf/model"
    assert "cannot be imported" in class_problem("autoencoders.models.planted.Planted")
    assert "does not derive" in class_problem("torch.nn.Linear")

    class Planted(AutoencoderBase):
        def __init__(self, *, planted_weight: float = 1.0, beta: float = 1.0, **shared: Any) -> None: ...

    assert undeclared_arguments(Planted) == ["model.planted_weight"]  # beta is declared, planted_weight is not
    assert not has_models_row(planted, MODELS_DOC.read_text())
    assert not has_models_row("vae", "the `vae` row:\n| `vae` | ... |\n")  # another format does not count
    assert has_models_row(planted, "| model |\n|---|\n| planted | its terms |\n")
    assert not model_test_file(planted).exists()
    assert planted not in own_terms_models(TRAINING_TESTS.read_text())
    assert own_terms_models("OWN_TERMS = {'planted': ['test/mmd']}\n") == {"planted"}
