"""Lightning's automatic loop (machinery/base.py) beside the manual one (machinery/phases.py) for a
one-optimizer model: should every model train through the manual loop?

The same network (the mlp autoencoder, model=mlp's settings) and the same batches of
FashionMNIST (batch 256) train through both: `Autoencoder` as ae-train trains it, and
`ManualAutoencoder`, the same objective as a PhasedAutoencoder with one phase. On a shared
machine the load changes within seconds, so the two take turns: `--rounds` rounds of one fit
each of `--steps` training batches, with the same torch thread count. A step is timed from
`on_train_batch_start` to `on_train_batch_end` (forward, backward, optimizer, the loop's
bookkeeping); the first 5 of each fit are warm-up. Reported: the median ms per step of each
and the median of the per-round ratios manual / automatic.

  .venv/bin/python scripts/bench_loops.py --threads 1 --rounds 6 --steps 60

With `--objectives`, the same turns time one training step of the vae, aae, wae, iwae, factorvae
and hvae (their default settings, the mlp network; the factorvae's step takes its two batches of
256) and report each one's median ms per step and its median per-round ratio to the vae's.

  .venv/bin/python scripts/bench_loops.py --objectives --rounds 4 --steps 40
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator

import lightning as L
import torch
from torch import Tensor

from autoencoders.data import ImageDataModule
from autoencoders.distributed.torch_setup import set_up_torch
from autoencoders.losses import reconstruction
from autoencoders.machinery.phases import Phase, PhasedAutoencoder
from autoencoders.models.autoencoder import Autoencoder

WARM_UP = 5


class ManualAutoencoder(PhasedAutoencoder):
    """The plain autoencoder's objective through the manual loop: one phase, one optimizer."""

    def optimizer_settings(self) -> dict[str, dict]:
        return {"autoencoder": {"params": list(self.parameters())}}

    def loss_terms(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        x_hat = self.reconstruct(x)
        return {"loss": reconstruction.mean_reconstruction(self.hparams.loss, x_hat, x)}, x_hat

    def training_phases(self, x: Tensor) -> Iterator[Phase]:
        loss = reconstruction.mean_reconstruction(self.hparams.loss, self.reconstruct(x), x)
        yield "autoencoder", loss, {"loss": loss}


class StepTimer(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, *args) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:
        self.times.append(time.perf_counter() - self.start)


def ms_per_step(model_class: type, data: ImageDataModule, steps: int, root: str, **settings: object) -> float:
    torch.manual_seed(0)
    model = model_class(input_shape=list(data.input_shape), **settings)
    timer = StepTimer()
    trainer = L.Trainer(
        max_steps=steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        log_every_n_steps=50,
        default_root_dir=root,
        accelerator="cpu",
    )
    trainer.fit(model, datamodule=data)
    return 1000 * statistics.median(timer.times[WARM_UP:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument(
        "--objectives", action="store_true", help="time the vae, aae, wae, iwae, factorvae and hvae instead"
    )
    args = parser.parse_args()
    set_up_torch(args.threads)
    data = ImageDataModule(name="fashionmnist", batch_size=256, val_size=5000)
    data.setup("fit")
    if args.objectives:
        objectives(data, args)
        return
    automatic, manual = [], []
    mlp = {"lr": 8e-3, "lr_schedule": "cosine"}  # model=mlp's recipe
    with tempfile.TemporaryDirectory() as root:
        for _ in range(args.rounds):
            automatic.append(ms_per_step(Autoencoder, data, args.steps, root, **mlp))
            manual.append(ms_per_step(ManualAutoencoder, data, args.steps, root, **mlp))
    ratios = [m / a for a, m in zip(automatic, manual)]
    print(f"threads {args.threads}, {args.rounds} rounds of {args.steps} steps, mlp, batch 256, FashionMNIST")
    print(f"automatic: {statistics.median(automatic):.2f} ms/step   per round {[round(v, 2) for v in automatic]}")
    print(f"manual:    {statistics.median(manual):.2f} ms/step   per round {[round(v, 2) for v in manual]}")
    print(f"manual / automatic: median {statistics.median(ratios):.3f}, per round {[round(r, 3) for r in ratios]}")


def objectives(data: ImageDataModule, args: argparse.Namespace) -> None:
    from autoencoders.models.aae import AAE
    from autoencoders.models.factorvae import FactorVAE
    from autoencoders.models.hvae import HVAE
    from autoencoders.models.iwae import IWAE
    from autoencoders.models.vae import VAE
    from autoencoders.models.wae import WAE

    classes = {"vae": VAE, "aae": AAE, "wae": WAE, "iwae": IWAE, "factorvae": FactorVAE, "hvae": HVAE}
    times: dict[str, list[float]] = {name: [] for name in classes}
    with tempfile.TemporaryDirectory() as root:
        for _ in range(args.rounds):
            for name, model_class in classes.items():
                times[name].append(ms_per_step(model_class, data, args.steps, root))
    print(f"threads {args.threads}, {args.rounds} rounds of {args.steps} steps, mlp, batch 256, FashionMNIST")
    for name, values in times.items():
        ratio = statistics.median(v / vae for v, vae in zip(values, times["vae"]))
        print(
            f"{name}: {statistics.median(values):.2f} ms/step, {ratio:.2f} x the vae's; per round {[round(v, 1) for v in values]}"
        )


if __name__ == "__main__":
    main()
