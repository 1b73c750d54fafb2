"""Running a trained model on in-memory tensors: eval mode, its device and dtype, chunks.

The TensorBoard views and the evaluations both use these, so they live in the models wing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


@contextmanager
def evaluating(module: nn.Module) -> Iterator[None]:
    """Eval mode without gradients, restoring the module's mode afterwards (hooks run in both)."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def to_module(tensor: Tensor, module: nn.Module) -> Tensor:
    """On the module's device and in its dtype: hooks bypass Lightning's input conversion."""
    return tensor.to(device=module.device, dtype=module.dtype)


def encode_all(module: nn.Module, images: Tensor, batch_size: int = 1000) -> Tensor:
    """Deterministic codes of `images` on the CPU, in chunks so a large subset fits on a GPU."""
    return torch.cat([module.encode(to_module(chunk, module)).float().cpu() for chunk in images.split(batch_size)])
