"""The optimizer and learning-rate schedules every model shares."""

from __future__ import annotations

import math
from collections.abc import Iterable

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
