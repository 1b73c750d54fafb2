"""Do the processes of a DDP run end with the same weights? A check by hand for the models that
train several optimizers per batch (machinery/phases.py): the aae's and the factorvae's
discriminators must stay synchronised like the rest of the model.

  .venv/bin/python scripts/ddp_weights.py model=factorvae
  .venv/bin/python scripts/ddp_weights.py model=aae model.net=conv

Runs `ae-train trainer=ddp data=synthetic data.batch_size=32 trainer.max_epochs=2
torch_threads=1 <overrides>` (2 processes on this machine, 7 steps an epoch) in a temporary directory, with a callback (given through the `callbacks` block,
so every process builds it) that saves each process's parameters when training ends; then prints,
for each top-level part of the model (encoder, decoder, discriminator, ...), the largest absolute
difference between the two processes' values. Exit status 0 when every part is identical.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import lightning as L
import torch

SCRIPTS = Path(__file__).resolve().parent


class SaveParameters(L.Callback):
    """Saves the module's state dict as <directory>/rank<r>.pt at the end of training."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        state = {name: value.detach().cpu().clone() for name, value in module.state_dict().items()}
        torch.save(state, self.directory / f"rank{trainer.global_rank}.pt")


def main(overrides: list[str]) -> int:
    with tempfile.TemporaryDirectory() as root:
        saved = Path(root) / "weights"
        saved.mkdir()
        command = [
            str(Path(sys.executable).parent / "ae-train"),
            "trainer=ddp",
            "data=synthetic",
            "data.batch_size=32",  # 448 training images, 224 per process: 7 steps an epoch
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=1.0",
            "torch_threads=1",
            "eval.nll_samples=0",
            "logging.projector_points=0",
            "+callbacks.weights._target_=ddp_weights.SaveParameters",
            f"+callbacks.weights.directory={saved}",
            f"hydra.run.dir={Path(root) / 'run'}",
            *overrides,
        ]
        environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(SCRIPTS), os.environ.get("PYTHONPATH")])),
        }
        done = subprocess.run(command, cwd=root, env=environment, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return done.returncode
        ranks = [torch.load(saved / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    differences: dict[str, float] = {}
    for name, value in ranks[0].items():
        part = name.split(".")[0]
        difference = (value.double() - ranks[1][name].double()).abs().max().item() if value.numel() else 0.0
        differences[part] = max(differences.get(part, 0.0), difference)
    print(f"ae-train {' '.join(overrides)} trainer=ddp: largest |rank 0 - rank 1| per part of the model")
    for part, difference in differences.items():
        print(f"  {part}: {difference:.3g}")
    return 0 if all(difference == 0 for difference in differences.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
