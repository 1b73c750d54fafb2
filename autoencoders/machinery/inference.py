"""Running a trained model on in-memory tensors: eval mode, its device and dtype, chunks, labels.

The TensorBoard views and the evaluations both use these, so they live in the models wing.

Conditional models (`conditional = True`, the cvae) take the images' class labels beside them:
`encode(x, y)`, `decode(z, y)`, `reconstruct(x, y)`, `loss_terms(x, y)`. Every caller that has
labels passes `*condition(model, labels)`, which is `(labels,)` for those models and `()` for the
others, so the other models keep their one-argument methods.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import repeat

import torch
from torch import Tensor, nn

from autoencoders.machinery.contract import is_conditional


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


def condition(module: nn.Module, labels: Tensor | None) -> tuple[Tensor, ...]:
    """The extra arguments `module` takes beside images or codes: (labels,) on its device for a
    conditional model, () for any other. Raises ValueError when a conditional model gets no labels."""
    if not is_conditional(module):
        return ()
    if labels is None:
        raise ValueError(f"{type(module).__name__} is conditional: pass the images' class labels too.")
    return (labels.to(module.device),)


def chunks(images: Tensor, labels: Tensor | None, batch_size: int) -> Iterator[tuple[Tensor, Tensor | None]]:
    """(images, labels) in chunks of `batch_size`; the labels are None throughout when there are none."""
    return zip(images.split(batch_size), labels.split(batch_size) if labels is not None else repeat(None))
