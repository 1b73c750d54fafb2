"""The optimizer, learning-rate schedules and optimizer step every model shares."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch


class CosineDecay:
    """The lr multiplier along half a cosine, from `start_scale` at `start_step` to 0 at `total_steps`.

    A callable object rather than a lambda, so that LambdaLR keeps its state in checkpoints: a
    resumed run continues the same curve, and a run extended by resuming with more epochs
    continues from the multiplier it had reached down to 0 at the new end (`extend_to`).
    """

    def __init__(self, total_steps: int, start_step: int = 0, start_scale: float = 1.0) -> None:
        self.total_steps, self.start_step, self.start_scale = total_steps, start_step, start_scale

    def __call__(self, step: int) -> float:
        if step >= self.total_steps:
            return 0.0
        progress = max(step - self.start_step, 0) / (self.total_steps - self.start_step)
        return self.start_scale * 0.5 * (1 + math.cos(math.pi * progress))

    def extend_to(self, total_steps: int, step: int) -> None:
        """From `step` on, decay from the multiplier reached there to 0 at the new `total_steps`."""
        if total_steps != self.total_steps:
            self.start_scale, self.start_step, self.total_steps = self(step), step, total_steps


# model.lr_schedule -> the multiplier of lr per step given the run's total steps (None: constant);
# the names are config_keys.LR_SCHEDULES.
LR_SCHEDULES = {"constant": None, "cosine": CosineDecay}


def adam(parameters: Iterable, lr: float, device: torch.device, **options: object) -> torch.optim.Adam:
    """Adam, with PyTorch's fused kernel on the devices that have one (CPU and CUDA).

    The same update as the default loop over tensors, in one kernel per step instead of about
    ten small ops per parameter: 5.9 instead of 8.3 ms per mlp training step on our 2-core
    machine. scripts/bench.py's hand-written loop uses this too, so its comparison stays fair.
    `options`: Adam's other arguments (betas, as the adversarial models' discriminators use).
    """
    return torch.optim.Adam(parameters, lr=lr, fused=True if device.type in ("cpu", "cuda") else None, **options)


# Optimizers whose step(closure) calls the closure once, before updating anything (LBFGS calls it
# several times): for them, running the closure and then step() is the same update.
ONE_CLOSURE_CALL = (torch.optim.Adam, torch.optim.AdamW)


def listens(callback: object, hook: str) -> bool:
    """Whether Lightning calling `hook` on `callback` would run more than Callback's no-op: the
    hook as the instance has it, so one set on the instance counts, and a CallbackGroup listens
    only where a member does (it shows Callback's no-op elsewhere)."""
    import lightning as L

    return getattr(getattr(callback, hook), "__func__", None) is not getattr(L.Callback, hook)


def plain_optimizer_step(trainer: object, module_hooks_plain: bool) -> bool:
    """Whether Lightning's optimizer step does nothing, in this run, but run the closure (the
    training step, zero_grad and backward, with their hooks) and then the optimizer's step.

    Around those two it passes through four wrappers (LightningOptimizer, the strategy, the
    precision plugin, torch's closure call) and calls on_before_optimizer_step on every callback
    and the module and configure_gradient_clipping on the module: 0.05 ms of an mlp step on the
    2-core machine (the two paths taking turns every 10 steps of one run), for hooks nobody
    defines. It does more when the precision is not plain 32-bit (loss scaling), the strategy
    steps its own way (DDP's model averaging), gradients are clipped, a callback listens to
    on_before_optimizer_step, the optimizer calls its closure several times, or the module
    defines those hooks itself (`module_hooks_plain` False); then the full step runs.
    """
    from lightning.pytorch.plugins.precision import Precision
    from lightning.pytorch.strategies import DDPStrategy, Strategy

    from autoencoders.internals import averages_models

    step = type(trainer.strategy).optimizer_step
    plain_strategy = step is Strategy.optimizer_step or (
        step is DDPStrategy.optimizer_step and not averages_models(trainer.strategy)
    )
    return (
        module_hooks_plain
        and plain_strategy
        and type(trainer.precision_plugin) is Precision
        and not trainer.gradient_clip_val
        and all(type(optimizer) in ONE_CLOSURE_CALL for optimizer in trainer.optimizers)
        and not any(listens(callback, "on_before_optimizer_step") for callback in trainer.callbacks)
    )


class OptimizerStep:
    """AutoencoderBase's optimizer step (a mixin, before LightningModule in its bases): Lightning's
    step under automatic optimization, without its wrappers when they would do nothing but pass
    the closure on (`plain_optimizer_step`, decided when training starts)."""

    _plain_step = False

    def choose_optimizer_step(self) -> None:
        """Called when training starts (AutoencoderBase.on_train_start)."""
        import lightning as L

        cls = type(self)
        own_hooks_plain = (
            cls.on_before_optimizer_step is L.LightningModule.on_before_optimizer_step
            and cls.configure_gradient_clipping is OptimizerStep.configure_gradient_clipping
        )
        self._plain_step = self.automatic_optimization and plain_optimizer_step(self.trainer, own_hooks_plain)

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """The closure runs the training step, zero_grad and backward with all their hooks, then
        the optimizer steps: the same update either way (tests/training/test_step_costs.py)."""
        if not self._plain_step:
            super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
            return
        optimizer_closure()
        optimizer.optimizer.step()

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: Any = None,
    ) -> None:
        # Lightning calls this after every backward pass. Without clipping (trainer.gradient_clip_val
        # unset or 0) its version checks the settings again, which the Trainer did when it was built,
        # and clips nothing.
        if gradient_clip_val:
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
