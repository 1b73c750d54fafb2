"""Lightning's and torch's private names live in autoencoders/internals.py only, and a Lightning
version the package was not tested with stops a run at start-up with one clear message."""

import re
from pathlib import Path

import pytest

from autoencoders import internals
from autoencoders.errors import UnsupportedVersion

ROOT = Path(__file__).resolve().parent.parent
# The private names of other libraries the package has needed (each explained in internals.py).
PRIVATE = re.compile(
    r"_SubprocessScriptLauncher|_call_children_scripts|_check_can_spawn_children|_configure_launcher"
    r"|\b_launcher\b|_broadcast_sigterm_tensor|\._experiment\b|_get_file_writer|\._trainer\b"
    r"|\._fabric\b|\._logger_connector\b|\._checkpoint_connector\b"
)


def private_uses(paths: list[Path]) -> dict[str, list[str]]:
    found = {}
    for path in paths:
        lines = [line.strip() for line in path.read_text().splitlines() if PRIVATE.search(line)]
        if lines:
            found[str(path.relative_to(ROOT))] = lines
    return found


def test_private_names_are_used_in_internals_only():
    paths = [*ROOT.joinpath("autoencoders").rglob("*.py"), *ROOT.joinpath("scripts").rglob("*.py")]
    uses = private_uses(paths)
    assert set(uses) == {"autoencoders/internals.py"}, uses


def test_the_check_finds_a_planted_private_name(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    planted = tmp_path / "planted.py"
    planted.write_text("trainer.fit_loop.epoch_loop._broadcast_sigterm_tensor = None\nok = 1\n")
    assert private_uses([planted]) == {"planted.py": ["trainer.fit_loop.epoch_loop._broadcast_sigterm_tensor = None"]}


def test_an_untested_lightning_version_stops_with_one_clear_message():
    internals.check_versions()  # the installed one is tested
    with pytest.raises(
        UnsupportedVersion,
        match=r"lightning 2\.7\.0 is installed, but autoencoders was tested with "
        r"lightning 2\.6\.x only.*pip install 'lightning>=2\.6,<2\.7'",
    ):
        internals.check_versions("2.7.0")


def test_pyproject_admits_the_tested_versions_only():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"lightning>=2.6,<2.7"' in text and internals.LIGHTNING_TESTED == ("2.6",)


def test_trainer_of_a_model_without_a_trainer_is_none():
    from autoencoders.models.autoencoder import Autoencoder

    assert internals.trainer_of(Autoencoder(input_shape=[1, 8, 8], latent_dim=2)) is None
