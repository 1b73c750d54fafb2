"""Passes of a trained model over a DataModule's splits, made once and shared: the codes and
per-image reconstruction errors that the evaluations and the latent views start from.

After testing, the linear probe, anomaly detection, the disentanglement metrics, sample quality
and the latent views all encode test images (and the probe and the factor metrics the same
seeded subset of training images); anomaly detection and sample quality also reconstruct them.
`SplitPasses` encodes each split (or subset) once, in chunks of 1000 images converted to pixels
chunk by chunk, and keeps the codes on the CPU; reconstructions are `decode(codes)`, which is
what `reconstruct` does for every model that keeps the contract's (machinery/contract.py), so
the encoder runs once per image.
The chunks are those the evaluations used one by one, so the numbers are the same.

`sharing(model, datamodule)` holds one for a model's tested weights (training's test and
evaluations, ae-eval's); `passes_of` gives it, or outside such a block a new one, so nothing
computed with other weights is reused. The latent views of a training epoch make their own.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from autoencoders.machinery.contract import decodes_codes
from autoencoders.machinery.inference import condition, to_module

CHUNK = 1000
# The passes shared within `sharing`, by model: kept beside the model rather than on it, so a
# model carries no evaluation state and nothing asks a model for an attribute it may lack.
_SHARED: weakref.WeakKeyDictionary[nn.Module, SplitPasses] = weakref.WeakKeyDictionary()


def per_image_mse(reconstructed: Tensor, images: Tensor) -> Tensor:
    """E(x): the per-pixel mean of (x - x_hat)^2 of each image, (N,) float32 (the anomaly score of Sakurada & Yairi 2014)."""
    return (reconstructed - images).pow(2).flatten(1).mean(1).float()


class SplitPasses:
    """Codes, reconstruction errors and reconstructions of a model on a DataModule's splits, each
    computed once. `whole`: splits encoded whole at their first use (then a subset's codes are
    read from them); other splits are encoded per subset asked for."""

    def __init__(self, model: nn.Module, datamodule: Any, whole: tuple[str, ...] = ("test",)) -> None:
        self.model, self.datamodule, self.whole = model, datamodule, whole
        self._codes: dict[tuple[str, bytes | None], Tensor] = {}
        self._errors: dict[str, Tensor] = {}
        self.encoded = 0  # images through the encoder, for tests and logs

    def codes(self, split: str, index: Tensor | None = None) -> Tensor:
        """Deterministic codes (`encode`: the posterior mean for the VAEs) of a split, or of the
        images at `index`, (N, latent_dim) float32 on the CPU."""
        if index is None or split in self.whole or (split, None) in self._codes:
            if (split, None) not in self._codes:
                self._codes[split, None] = self._encode(split, None)
            return self._codes[split, None] if index is None else self._codes[split, None][index]
        key = (split, hashlib.sha1(index.numpy().tobytes()).digest())
        if key not in self._codes:
            self._codes[key] = self._encode(split, index)
        return self._codes[key]

    def errors(self, split: str) -> Tensor:
        """Per-image mean squared reconstruction error of every image of a split, (N,) on the CPU."""
        if split not in self._errors:
            parts = []
            for images, codes, labels in self._chunks(split, None):
                images = to_module(images, self.model)
                parts.append(per_image_mse(self._reconstruct(images, codes, labels), images).cpu())
            self._errors[split] = torch.cat(parts)
        return self._errors[split]

    def reconstructions(self, split: str, index: Tensor | None = None) -> Tensor:
        """The deterministic reconstructions of a split's images (those at `index`), float32 on the CPU."""
        return torch.cat(
            [
                self._reconstruct(to_module(images, self.model), codes, labels).float().cpu()
                for images, codes, labels in self._chunks(split, index)
            ]
        )

    # --- how ----------------------------------------------------------------------------------
    def _pieces(self, split: str, index: Tensor | None) -> list[Tensor | slice]:
        if index is None:
            n = len(self.datamodule.labels(split))
            return [slice(start, min(start + CHUNK, n)) for start in range(0, n, CHUNK)]
        return list(index.split(CHUNK))

    def _encode(self, split: str, index: Tensor | None) -> Tensor:
        parts = []
        for piece in self._pieces(split, index):
            images, labels = self.datamodule.pixels(split, piece)
            parts.append(self.model.encode(to_module(images, self.model), *condition(self.model, labels)).float().cpu())
            self.encoded += len(images)
        return torch.cat(parts) if parts else torch.empty(0)

    def _chunks(self, split: str, index: Tensor | None) -> Iterator[tuple[Tensor, Tensor | None, Tensor]]:
        """(pixels, their codes or None, labels) chunk by chunk; codes only where they decode to `reconstruct`."""
        codes = self.codes(split, index) if decodes_codes(self.model) else None
        start = 0
        for piece in self._pieces(split, index):
            images, labels = self.datamodule.pixels(split, piece)
            yield images, (codes[start : start + len(images)] if codes is not None else None), labels
            start += len(images)

    def _reconstruct(self, images: Tensor, codes: Tensor | None, labels: Tensor) -> Tensor:
        given = condition(self.model, labels)
        if codes is None:
            return self.model.reconstruct(images, *given)
        return self.model.decode(to_module(codes, self.model), *given)


@contextmanager
def sharing(model: nn.Module, datamodule: Any, whole: tuple[str, ...] = ("test",)) -> Iterator[SplitPasses]:
    """One SplitPasses for `model` on `datamodule` within the block, for every `passes_of` there.
    Open it where the weights stay as they are until the block ends (from testing on)."""
    passes = SplitPasses(model, datamodule, whole)
    _SHARED[model] = passes
    try:
        yield passes
    finally:
        del _SHARED[model]


def passes_of(model: nn.Module, datamodule: Any) -> SplitPasses:
    """The passes shared within `sharing(model, datamodule)`, or a new SplitPasses outside one."""
    shared = _SHARED.get(model)
    if shared is not None and shared.datamodule is datamodule:
        return shared
    return SplitPasses(model, datamodule)
