"""Per-image reference losses, written out plainly: what the models' fused batch means must equal."""

from torch import Tensor

from autoencoders.losses import reconstruction


def squared_error(x_hat: Tensor, x: Tensor) -> Tensor:
    """Sum of squared pixel errors per image."""
    return (x_hat - x).pow(2).flatten(1).sum(1)


# model.loss -> the per-image sum over pixels whose per-pixel batch mean the model trains on.
PER_IMAGE_LOSSES = {"mse": squared_error, "bce": reconstruction.binary_cross_entropy}
