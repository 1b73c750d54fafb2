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
- `test/inception_fid` (only with `eval.inception_weights`, a local file): the standard FID, the
  same distance in torch-fidelity's Inception features (evaluation/inception.py).
The matrix square root is scipy's, in float64; its imaginary residue is checked, not dropped blindly.
With fewer samples than feature dimensions the trace of the root comes exactly from an n × n SVD.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import torch
from torch import Tensor

from autoencoders.machinery.contract import Sampler, is_conditional

log = logging.getLogger("autoencoders")
K_NEAREST = 3
IMAGINARY_TOLERANCE = 1e-3  # relative to the trace term; above it the square root is not trusted


def frechet_distance(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to two feature sets (N, d), in float64."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    if min(len(a), len(b)) < a.shape[1]:
        trace_root = _trace_root_from_samples(a - mean_a, b - mean_b)
    else:
        trace_root = _trace_root(cov_a, cov_b)
    distance = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root
    return float(max(distance, 0.0))


def _trace_root(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """tr((Σa Σb)^½) by scipy's matrix square root (d × d)."""
    from scipy import linalg

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
    return float(np.trace(root))


def _trace_root_from_samples(centred_a: np.ndarray, centred_b: np.ndarray) -> float:
    """tr((Σa Σb)^½) when there are fewer samples than dimensions (2,048 Inception features of a few
    hundred images): with Σ = AᵀA/(n − 1), the non-zero eigenvalues of AaᵀAa AbᵀAb are those of
    (Aa Abᵀ)(Aa Abᵀ)ᵀ (XY and YX share them), the squared singular values of the na × nb matrix
    Aa Abᵀ. So the trace is its nuclear norm over √((na − 1)(nb − 1)): exact, real, and
    O(n² d) instead of a d × d square root."""
    singular = np.linalg.svd(centred_a @ centred_b.T, compute_uv=False)
    return float(singular.sum() / np.sqrt((len(centred_a) - 1) * (len(centred_b) - 1)))


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
    model: torch.nn.Module,
    datamodule: object,
    n: int | None,
    seed: int = 0,
    inception_weights: str | None = None,
    passes: object | None = None,
) -> tuple[dict[str, float], dict]:
    """test/fd, test/precision, test/recall (models with `sample`) and test/recon_fd on n test images;
    with `inception_weights` (a local file) also test/inception_fid (evaluation/inception.py).
    `passes`: the evaluations' shared passes (machinery/passes.py), which decode the codes they hold."""
    from autoencoders.evaluation.inception import inception_features, inception_network, weights_digest
    from autoencoders.evaluation.probe import subset
    from autoencoders.evaluation.reference import recipe_for, reference_network
    from autoencoders.machinery.passes import passes_of

    # A wrong weights file is refused before any work (the reference network may take minutes).
    inception = inception_network(inception_weights, model.device) if inception_weights else None
    passes = passes if passes is not None else passes_of(model, datamodule)
    reference = reference_network(
        datamodule.root,
        datamodule.stored("train"),  # bytes: hashed and converted per batch, no float copy of the split
        datamodule.stored("test"),
        datamodule.num_classes,
        recipe_for(getattr(datamodule, "name", "")),
    )
    chosen = subset(len(datamodule.labels("test")), n, seed)
    images = datamodule.pixels("test", chosen)[0]
    real = reference.features(images)
    reconstructions = passes.reconstructions("test", chosen)
    scores = {"test/recon_fd": frechet_distance(real, reference.features(reconstructions))}
    samples = None
    if isinstance(model, Sampler) and not is_conditional(model):
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
    if inception is not None and samples is None:
        log.info("test/inception_fid compares prior samples; %s has none, so it is skipped.", type(model).__name__)
    elif inception is not None:
        real, fake = inception_features(inception, images), inception_features(inception, samples)
        scores["test/inception_fid"] = frechet_distance(real, fake)
        used["inception_weights"] = weights_digest(inception_weights)
    return scores, used
