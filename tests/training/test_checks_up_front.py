"""Every declared key (config_keys.RULES) at each bound, one past it, and 2³¹−1 where it has no
upper bound, through the checks a run makes before it trains: the config's (opening.check_new_run)
and those that need the data and the model (building.prepare). Each value is accepted, or refused
there in one paragraph naming the key; never a crash that would come after the training it wasted.

Each key is tried where it is read: a model's key on a model that has it, test/nll's on the vae,
anomaly detection's with a held-out class, the generated grid's and the factor metrics' on a tiny
data=shapes, everything else on data=synthetic. One config per such set-up is composed once;
nothing trains (the values a first version accepted and then crashed on are in MUST_REFUSE)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from autoencoders.config_keys import RULES
from autoencoders.errors import USER_ERRORS
from autoencoders.training import building
from autoencoders.training.building import prepare
from autoencoders.training.opening import check_new_run

BIG = 2**31 - 1
CONF = Path(__file__).resolve().parents[2] / "conf" / "model"
SHAPES = ["data=shapes", "data.resolution=8", "data.scales=1", "data.orientations=2", "data.positions=4"]
TINY_SHAPES = [*SHAPES, "data.subsample=60", "data.test_size=20", "data.val_size=10", "model=vae", "model.latent_dim=4"]
ON_SHAPES = (
    "data.resolution",
    "data.scales",
    "data.orientations",
    "data.positions",
    "data.subsample",
    "data.test_size",
)
ON_SHAPES += tuple(f"eval.{name}" for name in ("disentanglement", "factor_codes", "factor_test_codes"))
ON_SHAPES += tuple(f"eval.{name}" for name in ("factorvae_votes", "factorvae_batch", "sample_quality", "fd_images"))
SETUPS = {
    "eval.nll_samples": ["model=vae"],
    "eval.nll_images": ["model=vae"],
    "eval.anomaly": ["data.holdout_class=3"],
    "eval.anomaly_images": ["data.holdout_class=3"],
    "eval.class_consistency": ["model=cvae"],
}
# Accepted by the config's checks before, then a crash after training (or in the model's allocation).
MUST_REFUSE = {
    ("torch_threads", BIG): "cores of this machine",
    ("model.latent_dim", BIG): "parameters",
    ("model.codebook_size", BIG): "model.codebook_size",
    ("model.discriminator_width", BIG): "cannot be built that large",
    ("model.top_latent_dim", BIG): "parameters",
    ("model.jacobian_projections", BIG): "more than model.latent_dim",
    ("model.samples", BIG): "for one training step",
    ("eval.nll_samples", BIG): "for test/nll",
    ("eval.probe_train_size", 1): "only class",
    ("eval.factorvae_batch", BIG): "FactorVAE-score vote",
    ("data.resolution", BIG): "GiB",
    ("data.positions", BIG): "more than data.resolution",
}


def setup_of(key: str) -> list[str]:
    """The overrides of the set-up a key is read in."""
    if key in ON_SHAPES:
        return TINY_SHAPES
    section, _, name = key.partition(".")
    if section == "model" and f"\n{name}:" not in "\n" + (CONF.parent / "shared" / "model.yaml").read_text():
        owners = [path.stem for path in sorted(CONF.glob("*.yaml")) if f"\n{name}:" in "\n" + path.read_text()]
        return [f"model={next((m for m in ('vae', *owners) if m in owners), 'mlp')}"]
    return SETUPS.get(key, [])


def values(key: str) -> list:
    """Each bound, one either side of it, and 2³¹−1 for a key without an upper bound (for a key
    that takes no number, 2³¹−1 is a wrong type)."""
    rule = RULES[key]
    if rule.kind == "batches":  # a fraction of the batches or a whole number of them
        return [-1, 0, 1, 2, 0.5, 1.0, 1.5, BIG]
    if rule.kind not in ("int", "float", "classes"):
        return [BIG]
    low = 0 if rule.kind == "classes" else rule.low
    found = [bound + step for bound in (low, rule.high) if bound is not None for step in (-1, 0, 1)]
    found += [BIG] if rule.high is None else []
    return sorted({int(value) if rule.kind != "float" else value for value in found})


CASES = [(key, value) for key in RULES for value in values(key)]


@pytest.fixture(scope="module")
def composed(tmp_path_factory):
    """One composed config per set-up, data.root and output_root in a temporary folder."""
    root = tmp_path_factory.mktemp("walk")
    setups = {tuple(setup_of(key)) for key in RULES}
    with initialize_config_module("autoencoders.conf", version_base="1.3"):
        return {
            setup: compose(
                "train",
                overrides=[
                    "data=synthetic",
                    "trainer=fast",
                    "torch_threads=1",
                    f"output_root={root}",
                    f"data.root={root / 'data'}",
                    *setup,
                ],
            )
            for setup in setups
        }


def test_every_key_at_its_bounds_is_accepted_or_refused_up_front_in_one_paragraph(composed, monkeypatch):
    assert len(CASES) > 250 and all(case in CASES for case in MUST_REFUSE)
    # A DataModule per data block and seed, built once (a data key's values each build their own).
    built, build_data = {}, building.build_data
    monkeypatch.setattr(
        building,
        "build_data",
        lambda cfg, record=None: (
            built.get(repr((cfg.data, cfg.seed)))
            or built.setdefault(repr((cfg.data, cfg.seed)), build_data(cfg, record))
        ),
    )
    outcomes = {}
    for key, value in CASES:
        cfg = composed[tuple(setup_of(key))].copy()
        OmegaConf.update(cfg, key, value, force_add=True)
        try:
            check_new_run(cfg)
            prepare(cfg)
        except USER_ERRORS as error:
            message = str(error)
            assert "\n" not in message.strip(), (key, value, message)
            assert key.rsplit(".", 1)[-1] in message, (key, value, message)  # it names what to change
            outcomes[key, value] = message
        else:
            outcomes[key, value] = None
    for (key, value), expected in MUST_REFUSE.items():
        assert outcomes[key, value] is not None and expected in outcomes[key, value], (key, value)
    refused = sum(message is not None for message in outcomes.values())
    assert 0 < refused < len(CASES)  # both outcomes occur: the walk reaches the checks and past them
