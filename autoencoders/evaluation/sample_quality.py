"""Sample quality in the features of the project's reference network (evaluation/reference.py).

- `test/fd`: the Fréchet distance between Gaussians fitted to the features of n prior samples and
  of n test images, ||μ1 − μ2||² + tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½) (Dowson & Landau 1982; the form
  Heusel et al. 2017 use for FID). Not an Inception FID: the features are our small classifier's,
  so the numbers are comparable only between runs with the same reference network (its hash is
  recorded beside them), never with papers' FIDs.
- `test/precision`, `test/recall` (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric
  for Assessing Generative Models", k = 3): the fraction of samples inside the union of the test
  features' k-NN balls, and the fraction of test features inside the samples' balls.
- `test/recon_fd`: the same distance between reconstructions of the n test images and the images,
  so that models without a sampler compare too.
The matrix square root is scipy's, in float64; its imaginary residue is checked, not dropped blindly.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import torch
from torch import Tensor

log = logging.getLogger("autoencoders")
K_NEAREST = 3
IMAGINARY_TOLERANCE = 1e-3  # relative to the trace term; above it the square root is not trusted


def frechet_distance(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to two feature sets (N, d), in float64."""
    from scipy import linalg

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():  # ReLU features that are always 0 make the product singular: checked below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(root).all():  # offset both, as Heusel et al.'s reference code does
            offset = np.eye(len(cov_a)) * 1e-6
            root = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    if np.iscomplexobj(root):
        residue = np.abs(root.imag).max()
        scale = max(np.trace(cov_a) + np.trace(cov_b), 1e-12)
        if residue > IMAGINARY_TOLERANCE * scale:
            raise ArithmeticError(
                f"The square root of the covariance product has an imaginary part of {residue:.3g}, "
                "too large to be rounding; the features are degenerate."
            )
        root = root.real
    distance = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root)
    return float(max(distance, 0.0))


def _kth_distances(points: Tensor, k: int, chunk: int = 1024) -> Tensor:
    """Each point's distance to its k-th nearest other point of the set."""
    radii = []
    for block in points.split(chunk):
        radii.append(torch.cdist(block, points).kthvalue(k + 1, dim=1).values)  # +1: itself at distance 0
    return torch.cat(radii)


def _covered(points: Tensor, centres: Tensor, radii: Tensor, chunk: int = 1024) -> Tensor:
    """Whether each point lies in some ball (centre, radius)."""
    return torch.cat([(torch.cdist(block, centres) <= radii[None]).any(1) for block in points.split(chunk)])


def precision_recall(real: Tensor, fake: Tensor, k: int = K_NEAREST) -> tuple[float, float]:
    """Kynkäänniemi et al.'s precision and recall of `fake` against `real` features."""
    real, fake = torch.as_tensor(real, dtype=torch.float64), torch.as_tensor(fake, dtype=torch.float64)
    precision = _covered(fake, real, _kth_distances(real, k)).double().mean()
    recall = _covered(real, fake, _kth_distances(fake, k)).double().mean()
    return float(precision), float(recall)


def sample_quality(
    model: torch.nn.Module, datamodule: object, n: int | None, seed: int = 0, passes: object | None = None
) -> tuple[dict[str, float], dict]:
    """test/fd, test/precision, test/recall (models with `sample`) and test/recon_fd on n test images
    (`passes`: the evaluations' shared passes, models/passes.py, which decode the codes they hold)."""
    from autoencoders.evaluation.probe import subset
    from autoencoders.evaluation.reference import reference_network
    from autoencoders.models.passes import passes_of

    passes = passes if passes is not None else passes_of(model, datamodule)
    reference = reference_network(
        datamodule.root, datamodule.pixels("train"), datamodule.pixels("test"), datamodule.num_classes
    )
    chosen = subset(len(datamodule.labels("test")), n, seed)
    images = datamodule.pixels("test", chosen)[0]
    real = reference.features(images)
    reconstructions = passes.reconstructions("test", chosen)
    scores = {"test/recon_fd": frechet_distance(real, reference.features(reconstructions))}
    if callable(getattr(model, "sample", None)) and not getattr(model, "conditional", False):
        generator = torch.Generator(device=model.device).manual_seed(seed)
        samples = torch.cat(
            [
                model.sample(len(part), generator=generator).float().cpu()
                for part in torch.arange(len(images)).split(1000)
            ]
        )
        fake = reference.features(samples)
        scores["test/fd"] = frechet_distance(real, fake)
        scores["test/precision"], scores["test/recall"] = precision_recall(real, fake)
    used = {
        "images": len(images),
        "k": K_NEAREST,
        "reference_hash": reference.hash,
        "reference_test_accuracy": reference.test_accuracy,
    }
    return scores, used
