"""The training step as a GPU would see it: no host-device sync per step (read back on a
cadence), and the data moved to a device once per fit, never per batch."""

import json

import lightning
import pytest
import torch

from autoencoders.data import ImageDataModule
from autoencoders.errors import Diverged
from autoencoders.models.autoencoder import Autoencoder
from autoencoders.training.pipeline import train

QUIET = [
    "logging.images_every_n_epochs=0",
    "logging.projector_points=0",
    "eval.probe=false",
    "trainer.enable_progress_bar=false",
]
SYNCING = ("item", "tolist", "__bool__", "cpu", "numpy", "__float__", "__int__")


class SyncCounter(lightning.Callback):
    """Counts the calls that wait for a device (on a GPU) between the start and the end of each
    training batch: the step, the backward pass, the optimizer and every other callback's hooks."""

    def __init__(self, monkeypatch) -> None:
        self.counting, self.per_step, self.steps = False, [], []
        for name in SYNCING:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._counted(original))

    def _counted(self, original):
        def call(tensor, *args, **kwargs):
            if self.counting:
                self.per_step[-1] += 1
            return original(tensor, *args, **kwargs)

        return call

    def on_train_batch_start(self, trainer, *args) -> None:
        self.per_step.append(0)
        self.steps.append(trainer.global_step)
        self.counting = True

    def on_train_batch_end(self, trainer, *args) -> None:
        self.counting = False


# aae: three optimizers a batch (machinery/phases.py); factorvae: its second batch's permuted codes;
# hvae: its two levels.
@pytest.mark.parametrize("model", ["mlp", "vae", "aae", "factorvae", "hvae"])
def test_a_training_step_syncs_only_on_the_logging_cadence(tiny_cfg, tmp_path, monkeypatch, model):
    counter = SyncCounter(monkeypatch)  # last, after all of the run's callbacks and the config's (callbacks=timing)
    narrow = ["model.discriminator_width=100"] if model == "factorvae" else []  # the same path, faster
    train(
        tiny_cfg(
            f"model={model}",
            *narrow,
            "trainer.limit_train_batches=1.0",
            "trainer.log_every_n_steps=4",
            "trainer.max_epochs=1",
            "eval.nll_samples=0",
            "callbacks=timing",
            *QUIET,
        ),
        run_dir=tmp_path,
        callbacks=[counter],
    )
    assert [epoch["epoch"] for epoch in json.loads((tmp_path / "timing.json").read_text())] == [0]
    assert len(counter.steps) == 14  # 448 images, batches of 32
    for step, syncs in zip(counter.steps, counter.per_step):
        assert syncs == (1 if step % 4 == 0 else 0), (step, syncs)  # the loss watch's one read


def test_a_non_finite_loss_is_caught_at_the_next_read_naming_its_step(tiny_cfg, tmp_path, monkeypatch):
    original = Autoencoder.loss_terms

    def nan_at_step_5(self, x):
        terms, x_hat = original(self, x)
        if self.training and self.global_step == 5:
            terms["loss"] = terms["loss"] * float("nan")
        return terms, x_hat

    monkeypatch.setattr(Autoencoder, "loss_terms", nan_at_step_5)
    cfg = tiny_cfg("trainer.limit_train_batches=1.0", "trainer.log_every_n_steps=4", "trainer.max_epochs=2", *QUIET)
    with pytest.raises(Diverged, match=r"non-finite at step 5 \(epoch 0\): loss=nan"):  # read at step 8
        train(cfg, run_dir=tmp_path)
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()  # no epoch ended with those weights


def test_data_asked_for_another_device_moves_there_once_per_fit_and_batches_are_gathered_there():
    data = ImageDataModule(name="synthetic", batch_size=32, val_size=64)
    data.setup()
    meta = torch.device("meta")  # a device this machine has whatever its hardware: tensors without storage

    class Strategy:
        root_device = meta

    class Trainer:
        strategy, global_rank, world_size = Strategy(), 0, 1
        fit_loop = type(
            "FitLoop", (), {"epoch_progress": type("P", (), {"current": type("C", (), {"processed": 0})()})()}
        )()

    data.trainer = Trainer()
    for _ in range(2):  # two epochs of one fit
        batches = [data.transfer_batch_to_device(batch, meta, 0) for batch in data.train_dataloader()]
        assert len(batches) == 14 and all(x.device == meta and y.device == meta for x, y in batches)
        assert batches[0][0].shape == (32, 1, 28, 28) and batches[-1][0].shape == (448 - 13 * 32, 1, 28, 28)
    for batch in data.val_dataloader():
        assert data.transfer_batch_to_device(batch, meta, 0)[0].shape == (64, 1, 28, 28)
    assert data.on_device.moves == 2  # the train split once and the val split once, not once per batch
    data.teardown("fit")
    data.transfer_batch_to_device(next(iter(data.train_dataloader())), meta, 0)
    assert data.on_device.moves == 3  # a new fit moves it again
    data.trainer = None
    x, y = next(iter(data.train_dataloader()))  # on a CPU, batches are slices as before
    assert x.device.type == "cpu" and x.shape == (32, 1, 28, 28)
