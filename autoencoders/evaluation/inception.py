"""The standard FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to
a Local Nash Equilibrium") through torch-fidelity's InceptionV3, from a local weights file only:
`eval.inception_weights=<path>` records `test/inception_fid` beside test/fd.

torch-fidelity (an optional extra: `pip install 'autoencoders[fid]'`) ports the TensorFlow graph
the FID was defined with: images as uint8 RGB, resized to 299 × 299 by its TF-compatible bilinear
interpolation, the 2048 pool features. The distance is sample_quality.frechet_distance, the
formula of torch-fidelity's `fid_statistics_to_metric` (a test holds them equal), which with fewer
images than 2,048 features takes an n × n route instead of a 2,048 × 2,048 eigenproblem. The
extractor downloads its weights when given no path; here it is always given one, checked first,
so nothing is ever downloaded. The file is torch-fidelity's own release asset
(weights-inception-2015-12-05-6726825d.pth), fetched once by hand on a machine with internet.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import torch
from torch import Tensor

from autoencoders.errors import ConfigError

KEY = "eval.inception_weights"
WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS_FILE}"
FEATURES = "2048"  # torch-fidelity's FID layer: the pool3 features of the TF graph
BATCH = 32


def _refusal(path: str, why: str) -> ConfigError:
    return ConfigError(
        f"{KEY}={path}: {why} It must be the state dict of torch-fidelity's FID InceptionV3 "
        f"({WEIGHTS_FILE}: fetch it once on a machine with internet, {WEIGHTS_URL}, and copy it here); "
        f"nothing is downloaded at run time. Or drop {KEY} (test/fd needs no Inception)."
    )


def check_inception_weights(path: str | None) -> None:
    """The cheap part of the check, at a run's start: torch-fidelity installed, the file there."""
    if path is None:
        return
    if importlib.util.find_spec("torch_fidelity") is None:
        raise ConfigError(
            f"{KEY} needs torch-fidelity, which is not installed: pip install 'autoencoders[fid]' "
            f"(or pip install torch-fidelity), or drop {KEY}."
        )
    if not Path(path).expanduser().is_file():
        raise _refusal(path, "there is no such file.")


def inception_network(path: str, device: torch.device | str = "cpu") -> torch.nn.Module:
    """torch-fidelity's FID feature extractor with the weights in `path`. The file is read as
    tensors only first (torch-fidelity then reads it itself, and would accept any pickle)."""
    check_inception_weights(path)
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    file = str(Path(path).expanduser())
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # not a torch file, or one holding more than tensors
        raise _refusal(path, f"it cannot be read as a file of tensors ({type(error).__name__}).") from error
    if not isinstance(state, dict) or "fc.weight" not in state:
        raise _refusal(path, "it is not an InceptionV3 state dict (no 'fc.weight').")
    try:
        network = FeatureExtractorInceptionV3("inception-v3-compat", [FEATURES], feature_extractor_weights_path=file)
    except RuntimeError as error:  # load_state_dict: missing, unexpected or mis-shaped tensors
        first = str(error).strip().splitlines()[0]
        raise _refusal(path, f"its tensors do not fit the network ({first}).") from error
    return network.to(device)


def weights_digest(path: str) -> str:
    """The first 16 hex digits of the file's sha256: recorded, so ae-compare flags other weights."""
    digest = hashlib.sha256()
    with open(Path(path).expanduser(), "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def inception_features(network: torch.nn.Module, images: Tensor) -> Tensor:
    """The 2048 pool features (N, 2048) of images in [0, 1] (N, C, H, W), grey as three equal channels."""
    device = next(network.parameters()).device
    parts = []
    with torch.no_grad():
        for chunk in images.split(BATCH):
            pixels = (chunk.float().clamp(0, 1) * 255).round().to(torch.uint8)
            if pixels.shape[1] == 1:
                pixels = pixels.expand(-1, 3, -1, -1)
            parts.append(network(pixels.to(device))[0].double().cpu())
    return torch.cat(parts)
