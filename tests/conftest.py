"""Shared fixtures: compose configs the way ae-train does, into a temporary output dir."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

# Tests run side by side with other work on 2 cores; one thread avoids stalls.
torch.set_num_threads(1)

FAST = [
    "trainer=fast",
    "torch_threads=1",
]


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """compose_cfg("model=conv", ...) -> the composed train config, output under tmp_path."""

    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_module("autoencoders.conf", version_base="1.3"):
            return compose("train", overrides=[f"output_root={tmp_path}", *overrides])

    return _compose


@pytest.fixture
def tiny_cfg(compose_cfg) -> Callable[..., DictConfig]:
    """A config that trains in a second: generated data, two batches per stage."""

    def _tiny(*overrides: str) -> DictConfig:
        return compose_cfg("data=synthetic", *FAST, *overrides)

    return _tiny
