"""The reference network's cache file (evaluation/reference.py) is checked on every read: a file
that is not whole, not readable, or not the network its name promises is trained again under
the lock with a warning naming it, never used and never the reason a run fails. A tiny recipe
on tiny generated images keeps each training to a few milliseconds."""

from __future__ import annotations

import logging

import pytest
import torch

import autoencoders.evaluation.reference as reference_module
from autoencoders.evaluation.reference import RECIPES, ReferenceNet, reference_network

TINY = {**RECIPES["sprites"], "channels": (4,), "features": 8, "steps": 6, "batch_size": 8}


def images_and_labels(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (48, 1, 8, 8), generator=generator, dtype=torch.uint8), torch.arange(48) % 3


def build(root, seed: int = 0):
    train = images_and_labels(seed)
    return reference_network(root, train, images_and_labels(seed + 100), 3, TINY)


def garbage(path, root):
    path.write_bytes(b"\x80\x02not a torch file at all" * 40)


def truncated(path, root):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def another_networks_state_dict(path, root):
    torch.save(ReferenceNet((1, 8, 8), 3, TINY).state_dict(), path)  # a bare state dict, no fields


def another_datasets_network(path, root):
    """A whole, well-formed cache file, with its own valid digest, of a network of other data."""
    other = build(root / "elsewhere", seed=7)
    path.write_bytes((root / "elsewhere" / "reference" / f"{other.hash}.pt").read_bytes())


def edited_weights(path, root):
    saved = torch.load(path, weights_only=True)
    saved["state_dict"]["head.bias"] += 1.0  # the fields and the old digest kept
    torch.save(saved, path)


def written_before_the_digest(path, root):
    saved = torch.load(path, weights_only=True)
    del saved["digest"]
    torch.save(saved, path)


@pytest.mark.parametrize(
    "corrupt",
    [
        garbage,
        truncated,
        another_networks_state_dict,
        another_datasets_network,
        edited_weights,
        written_before_the_digest,
    ],
)
def test_a_cache_file_that_is_not_the_named_network_is_trained_again_with_a_warning(
    corrupt, tmp_path, caplog, monkeypatch
):
    first = build(tmp_path)
    path = tmp_path / "reference" / f"{first.hash}.pt"
    corrupt(path, tmp_path)
    trained = []
    real = reference_module.train_reference
    monkeypatch.setattr(reference_module, "train_reference", lambda *args: trained.append(1) or real(*args))
    with caplog.at_level(logging.WARNING, logger="autoencoders"):
        again = build(tmp_path)
    assert trained == [1]
    assert f"The cached reference network {path} is not usable" in caplog.text and "Training it again" in caplog.text
    # The same seeded network as before, in use and on disk; the next read takes the file as it is.
    assert again.hash == first.hash and again.test_accuracy == first.test_accuracy
    probe = images_and_labels(5)[0][:10]
    assert torch.equal(again.features(probe), first.features(probe))
    caplog.clear()
    monkeypatch.setattr(reference_module, "train_reference", lambda *args: pytest.fail("trained a third time"))
    assert torch.equal(build(tmp_path).features(probe), first.features(probe))
    assert "not usable" not in caplog.text


def test_the_file_holds_a_digest_of_its_name_and_weights(tmp_path):
    reference = build(tmp_path)
    saved = torch.load(tmp_path / "reference" / f"{reference.hash}.pt", weights_only=True)
    fields = {key: saved[key] for key in ("test_accuracy", "recipe", "input_shape", "n_classes")}
    digest = reference_module.weights_digest
    assert saved["digest"] == digest(reference.hash, saved["state_dict"], fields)
    assert saved["digest"] != digest("0" * 16, saved["state_dict"], fields)  # another name
    weights = {**saved["state_dict"], "head.bias": saved["state_dict"]["head.bias"] + 1e-6}
    assert saved["digest"] != digest(reference.hash, weights, fields)  # one weight a little off


def test_a_killed_writers_temporary_file_is_removed_under_the_lock(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = tmp_path / "reference"
    folder.mkdir()
    litter = folder / f".0123456789abcdef.pt.{int(dead.stdout)}.k3j2h1g0.tmp"
    litter.write_bytes(b"")
    build(tmp_path)
    assert not litter.exists()
