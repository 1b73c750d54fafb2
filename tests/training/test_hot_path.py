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


class LoopSyncCounter(SyncCounter):
    """Counts over the whole training loop, one cycle per step: from this callback's end of one
    batch to its end of the next, so the rest of every step is in it too (the checkpoints' and
    the model's batch-end hooks, Lightning's logging and schedulers, the next batch's fetch and
    its move to the device, every callback's batch-start hook). An epoch's first cycle starts at
    its first batch: before it, torch's DataLoader draws its iterator's seed from a CPU generator
    (`.item()` once an epoch, no device involved). Validation is left out."""

    def on_train_batch_start(self, trainer, *args) -> None:
        self.steps.append(trainer.global_step)
        if not self.counting:  # an epoch's first step
            self.per_step.append(0)
            self.counting = True

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step < trainer.num_training_batches * (trainer.current_epoch + 1):
            self.per_step.append(0)  # the next step's cycle starts here
        else:
            self.counting = False  # the epoch's last step: validation follows

    def on_train_end(self, *args) -> None:
        self.counting = False


# The default mlp (its cosine schedule stepped every step), a model with several terms, and the
# manual loop of the adversarial models.
@pytest.mark.parametrize("model", ["mlp", "vae", "aae"])
def test_the_whole_training_loop_syncs_only_on_the_logging_cadence(tiny_cfg, tmp_path, monkeypatch, model):
    counter = LoopSyncCounter(monkeypatch)
    train(
        tiny_cfg(
            f"model={model}",
            "trainer.limit_train_batches=1.0",
            "trainer.log_every_n_steps=4",
            "trainer.max_epochs=2",
            "trainer.enable_progress_bar=true",  # as users run it, refreshed every 20 steps
            "logging.projector_points=0",
            "eval.probe=false",
        ),
        run_dir=tmp_path,
        callbacks=[counter],
    )
    assert counter.steps == list(range(28))  # 2 epochs of 14
    assert counter.per_step == [1 if step % 4 == 0 else 0 for step in range(28)]  # the loss watch's one read


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
