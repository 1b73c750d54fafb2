"""The training loop every model shares: steps, epoch-mean logging, optimizer.

A model subclasses `AutoencoderBase` and says only how it encodes, decodes and which loss
terms it has (`loss_terms`). Terms are batch means; every term is logged as
`train/<term>`, `val/<term>` and `test/<term>` once per epoch, and val/test also get `mse`,
the per-pixel mean squared error of the deterministic reconstruction, so all models compare
on one number.

Conditional models (`conditional = True`, the cvae) also get the batch's labels: the loop calls
`loss_terms(x, y)`, `reconstruct(x, y)` and `on_evaluation_batch(..., y)` for them, and
`loss_terms(x)` etc. for every other model (`inference.condition`).

What a model must and may provide is written down once, in machinery/contract.py, which
`AutoencoderBase` derives.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from autoencoders.errors import Diverged
from autoencoders.internals import HOOK_NAME_ATTRIBUTE, trainer_of
from autoencoders.losses import reconstruction
from autoencoders.machinery.contract import ModelContract
from autoencoders.machinery.inference import condition
from autoencoders.machinery.optim import LR_SCHEDULES, CosineDecay, OptimizerStep, adam
from autoencoders.machinery.tally import EpochMeans, LossWatch, PackedMeans, Reading, pack
from autoencoders.nets.families import build_nets, check_shapes, network_size
from autoencoders.schema import check_section

# Seed of the noise a model draws while validating or testing (the VAE's sample, the contractive
# model's random projections), plus the batch index: validation then neither consumes the
# training RNG nor depends on how often it runs, and every epoch scores the same draws.
EVALUATION_NOISE_SEED = 4321


class AutoencoderBase(OptimizerStep, L.LightningModule, ModelContract):
    """Shared Lightning logic. Subclasses set the contract's capabilities they have
    (`encoder_outputs`, ...) and implement `loss_terms` (machinery/contract.py).

    A subclass's constructor takes its own hyperparameters as keyword arguments and passes the
    shared ones on as `**shared`; `save_hyperparameters` records both (plain values, so
    `load_from_checkpoint(path, weights_only=True)` rebuilds the model), and every value is
    checked by the config schema's rules, the same ones `ae-train` applies at start-up.
    """

    # RNG states a loaded checkpoint carried, restored when training starts (on_train_start).
    _rng_states_to_restore: dict | None = None

    def __init__(
        self,
        input_shape: list[int],
        net: str | Mapping[str, Any] = "mlp",
        latent_dim: int = 32,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        loss: str = "mse",
        lr_schedule: str = "constant",
    ) -> None:
        super().__init__()
        if isinstance(net, DictConfig):  # plain values in the hyperparameters: checkpoints stay weights-only
            net = OmegaConf.to_container(net, resolve=True)
        self.save_hyperparameters()  # also the subclass's own arguments, from its frame
        check_section("model", {name: value for name, value in self.hparams.items() if name != "input_shape"})
        self.input_shape = tuple(input_shape)
        self.encoder, self.decoder = build_nets(
            net, self.input_shape, latent_dim, self.encoder_outputs * latent_dim, self.condition_dim()
        )
        self._means = {"train": PackedMeans(), "val": EpochMeans(), "test": EpochMeans()}
        self._watch = LossWatch()
        self.running_loss: float | None = None  # the training loss at the last read, for the progress bar

    def __setattr__(self, name: str, value: Any) -> None:
        if name == HOOK_NAME_ATTRIBUTE:  # a string Lightning sets around every hook: not a parameter, module or buffer
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def check_network(self, images: Tensor) -> None:
        """One forward pass of the encoder on real images and of the decoder on codes: a network
        whose shapes do not fit this model stops the run here, before any training (nets.families)."""
        latent = self.hparams.latent_dim
        check_shapes(
            self.encoder,
            self.decoder,
            images,
            self.encoder_outputs * latent,
            latent + self.condition_dim(),
            self.condition_dim(),
        )

    def compile_networks(self) -> None:
        """torch.compile the encoder and decoder in place (`compile=true`). nn.Module.compile keeps
        the modules and their state-dict keys, so checkpoints load with or without it."""
        self.encoder.compile()
        self.decoder.compile()

    def network_size(self) -> dict[str, int]:
        """The encoder's and decoder's parameters and multiply-adds per image (nets.families.network_size)."""
        latent = self.hparams.latent_dim
        return network_size(
            self.encoder, self.decoder, self.input_shape, latent + self.condition_dim(), self.condition_dim()
        )

    # --- what a model defines -------------------------------------------------------------
    def condition_dim(self) -> int:
        """Condition inputs the networks take beside images and codes (0; the cvae: its classes).
        Called while constructing, after the hyperparameters are saved."""
        return 0

    def encode(self, x: Tensor) -> Tensor:
        """Deterministic code of x (the posterior mean for probabilistic encoders)."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    # --- the shared loop -----------------------------------------------------------------
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, labels = batch
        terms, _ = self.loss_terms(x, *condition(self, labels))
        self._after_training_step(terms, len(x), self.global_step)
        return terms["loss"]

    def _after_training_step(self, terms: dict[str, Tensor], batch_size: int, step: int) -> None:
        """The bookkeeping of a training step (`step`: the batch's number, counted from 0): epoch
        sums, the loss watch, and every log_every_n_steps steps its reading and `train/loss_step`."""
        names, values = pack(terms)
        self._means["train"].update(names, values, batch_size)
        # Watched on the device and read back every log_every_n_steps steps: on a GPU a check per
        # step (`if not torch.isfinite(loss)`) would wait for every step's kernels.
        self._watch.update(names, values, step)
        trainer = trainer_of(self)
        every = trainer.log_every_n_steps if trainer is not None else 1  # no trainer: a test calls it
        if step % every == 0:
            reading = self._read_watch()
            # Straight to the loggers: a per-step curve without Lightning's per-step bookkeeping.
            for logger in trainer.loggers if trainer is not None else ():
                logger.log_metrics({"train/loss_step": reading.loss}, step=step)

    def _read_watch(self) -> Reading:
        """Read the loss watch (one host sync); a non-finite term stops the run, naming its step."""
        reading = self._watch.read(self._reduce_over_processes())
        if reading.diverged:
            # Raised before ModelCheckpoint saves, so last.ckpt keeps the last good weights.
            where = f"at step {reading.first_bad_step}" if reading.first_bad_step is not None else "in another process"
            terms = ", ".join(
                f"{name}={value}" for name, value in reading.bad_terms.items() if not math.isfinite(value)
            )
            raise Diverged(
                f"The loss became non-finite {where} (epoch {self.current_epoch})"
                f"{': ' + terms if terms else ''}. {_AFTER_DIVERGENCE}"
            )
        self.running_loss = reading.running_loss
        return reading

    def _reduce_over_processes(self) -> Callable[[Tensor], Tensor] | None:
        """Sums a tensor over the run's processes under DDP; None on one device."""
        trainer = trainer_of(self)
        if trainer is None or trainer.world_size == 1:
            return None
        return lambda tensor: trainer.strategy.reduce(tensor, reduce_op="sum")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluation_step("val", batch, batch_idx)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluation_step("test", batch, batch_idx)

    def _evaluation_step(self, stage: str, batch: tuple[Tensor, Tensor], batch_idx: int = 0) -> None:
        x, labels = batch
        given = condition(self, labels)
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # the training RNG is restored afterwards
            torch.manual_seed(EVALUATION_NOISE_SEED + batch_idx)
            terms, x_hat = self.loss_terms(x, *given)
            if self.stochastic_reconstruction:
                x_hat = self.reconstruct(x, *given)
            terms["mse"] = reconstruction.mean_reconstruction("mse", x_hat, x)
            terms.update(self.on_evaluation_batch(stage, x, batch_idx, *given))
        self._means[stage].update(terms, len(x))

    def on_train_epoch_start(self) -> None:
        self._means["train"] = PackedMeans()

    def on_validation_epoch_start(self) -> None:
        self._means["val"] = EpochMeans()

    def on_test_epoch_start(self) -> None:
        self._means["test"] = EpochMeans()

    def on_train_epoch_end(self) -> None:
        self._read_watch()  # the epoch's last steps too, before its checkpoints are written
        self._log_means("train")

    def on_validation_epoch_end(self) -> None:
        self._log_means("val")

    def on_test_epoch_end(self) -> None:
        self._log_means("test")

    def _log_means(self, stage: str) -> None:
        # One log call per term per epoch: per-step self.log(on_epoch=True) costs ~2 ms a step.
        # The means are exact over all processes already (sums and counts reduced), so no sync_dist.
        means = self._means[stage].compute(self._reduce_over_processes())
        if stage == "val" and not self.trainer.sanity_checking and not torch.isfinite(means["loss"]):
            # Raised before ModelCheckpoint saves, so last.ckpt keeps the last good weights.
            raise Diverged(
                f"val/loss became non-finite after step {self.global_step} (epoch {self.current_epoch}): "
                f"{_non_finite(means)}. {_AFTER_DIVERGENCE}"
            )
        self.log_dict({f"{stage}/{name}": value for name, value in means.items()})

    # --- checkpoints: what a run's record and a resume need ------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Noise (reparameterization, corruption) continues exactly after a resume.
        checkpoint["rng_states"] = {"torch": torch.get_rng_state()}
        # Which class wrote it, so loading it as another model fails with a clear message.
        checkpoint["model_class"] = f"{type(self).__module__}.{type(self).__qualname__}"
        if torch.cuda.is_available():
            checkpoint["rng_states"]["cuda"] = torch.cuda.get_rng_state_all()
        if trainer_of(self) is not None:
            # The epoch's values (train/*, val/*, lr) with the weights they describe: the run's
            # record reports those of the checkpoint it tested.
            checkpoint["epoch_metrics"] = {
                name: float(value)
                for name, value in self.trainer.callback_metrics.items()
                if not name.startswith("test/")
            }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._rng_states_to_restore = checkpoint.get("rng_states")
        # What the run's record says of the checkpoint it tested, without reading the file again.
        self.loaded_checkpoint = {key: checkpoint.get(key) for key in ("epoch", "global_step", "epoch_metrics")}

    def on_train_start(self) -> None:
        # Restored here, not on load, so nothing between loading and training consumes them.
        states = self._rng_states_to_restore
        if states:
            torch.set_rng_state(states["torch"].cpu())
            if "cuda" in states and torch.cuda.is_available():
                torch.cuda.set_rng_state_all([state.cpu() for state in states["cuda"]])
            self._rng_states_to_restore = None
        # A run resumed with more epochs: its schedule goes on from where it was to the new end.
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        for config in self.trainer.lr_scheduler_configs:
            for schedule in getattr(config.scheduler, "lr_lambdas", []):
                if isinstance(schedule, CosineDecay):
                    schedule.extend_to(total_steps, self.global_step)
        self.choose_optimizer_step()

    def parameter_groups(self) -> list[dict]:
        """Optimizer parameter groups; models with per-part weight decay override this."""
        return [{"params": list(self.parameters()), "weight_decay": self.hparams.weight_decay}]

    def configure_optimizers(self) -> dict:
        optimizer = adam(self.parameter_groups(), self.hparams.lr, self.device)
        schedule = LR_SCHEDULES[self.hparams.lr_schedule]
        if schedule is None:
            return {"optimizer": optimizer}
        # The multiplier is updated every step, over all training steps of the run.
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(total_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


# Lightning asks every step whether training_step takes batch_idx (inspect.getfullargspec, ~10 µs
# of signature building); inspect returns a function's __signature__ when it has one.
AutoencoderBase.training_step.__signature__ = inspect.signature(AutoencoderBase.training_step)

_AFTER_DIVERGENCE = (
    "The last good weights stay in checkpoints/last.ckpt. Try a lower model.lr, or clip gradients "
    "with ++trainer.gradient_clip_val=1.0."
)


def _non_finite(terms: dict[str, Tensor]) -> str:
    """'loss=nan, recon=inf' for the terms that are not finite."""
    return ", ".join(f"{name}={value.item()}" for name, value in terms.items() if not torch.isfinite(value).all())
