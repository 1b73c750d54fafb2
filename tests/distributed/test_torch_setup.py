"""The torch set-up every run shares: threads, flushed denormals, Lightning's CUDA check."""

import os
import subprocess
import sys

import pytest
import torch

from autoencoders.models.autoencoder import Autoencoder
from autoencoders.training.pipeline import train

# A float32 denormal (below 1.2e-38) made by multiplying two normal numbers, in a large tensor
# so torch splits the work over its threads; "flushed" counts the elements that became 0.
DENORMALS = """
import sys, torch
{setup}
product = torch.full((1_000_000,), 1e-30) * torch.full((1_000_000,), 1e-10)
print(int((product == 0).sum()))
"""


@pytest.mark.parametrize(
    ("setup", "flushed"),
    [
        ("torch.set_num_threads(2)", 0),
        ("from autoencoders.distributed.torch_setup import set_up_torch; set_up_torch(2)", 1_000_000),
    ],
)
def test_set_up_torch_flushes_denormals_on_every_thread(setup, flushed):
    done = subprocess.run(
        [sys.executable, "-c", DENORMALS.format(setup=setup)], capture_output=True, text=True, check=True
    )
    assert int(done.stdout.strip().splitlines()[-1]) == flushed


def test_train_sets_up_torch(tiny_cfg, tmp_path):
    torch.set_flush_denormal(False)
    assert (torch.tensor([1e-30]) * 1e-10).item() != 0.0
    train(tiny_cfg("torch_threads=2"), run_dir=tmp_path, overrides=[])
    assert (torch.tensor([1e-30]) * 1e-10).item() == 0.0
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)  # as conftest has it for the other tests


def test_training_uses_torchs_cuda_check_not_lightnings_nvml_one(tiny_cfg, tmp_path, monkeypatch):
    import lightning  # noqa: F401 - sets PYTORCH_NVML_BASED_CUDA_CHECK=1 on import

    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    seen = []
    step = Autoencoder.training_step

    def recording_step(self, batch, batch_idx):
        seen.append(os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK"))
        return step(self, batch, batch_idx)

    monkeypatch.setattr(Autoencoder, "training_step", recording_step)
    train(tiny_cfg(), run_dir=tmp_path, overrides=[])
    assert seen and set(seen) == {None}  # unset while training: torch's cached runtime check
    assert os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] == "1"  # restored afterwards
