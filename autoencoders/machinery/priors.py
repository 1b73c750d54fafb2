"""The prior p(z) over a model's codes, as a part: draws, log-density and the KL from a
diagonal-Gaussian posterior, each per latent dimension and in nats.

`model.prior` chooses it for the vae, tcvae, iwae and cvae (`prior_choices` in the contract);
every other model with a continuous prior (hvae's top level, factorvae, aae, wae) uses `normal`:

normal   N(0, I), the default: every number is the one the models gave before the prior was a part.
laplace  Laplace(0, 1) per dimension, density exp(-|z|) / 2. Scale 1 is the standard Laplace and
         the prior disent's Laplace latent distribution uses (`LatentDistsHandlerLaplace`); it has
         no setting to tune, like N(0, I), at the price of variance 2 instead of 1, so codes may
         spread about sqrt(2) wider (the traversal view scales by the codes' own spread).

Both KLs from q(z|x) = N(mu, diag(exp(logvar))) are in closed form: the Laplace's needs the
folded normal's mean E|z| (`densities.gaussian_laplace_kl_per_dim`). A one-sample Monte-Carlo
estimate, log q(z|x) - log p(z), would be unbiased but would add its variance to every step's
loss and to kl_dim/<j>, and the free-bits floor (a max over a noisy batch mean) would be biased
upward; the exact value has neither. A prior without a closed form would implement `kl_per_dim`
by drawing from the posterior (reparameterized) inside it; the callers need not change.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from autoencoders.losses import densities
from autoencoders.machinery.contract import Prior, Shape, check_prior


def _drawn(
    draw: Callable[..., Tensor],
    shape: Shape,
    generator: torch.Generator | None,
    device: torch.device | str | None,
    dtype: torch.dtype | None,
) -> Tensor:
    """`draw(shape, ...)` (torch.randn, torch.rand) as `Prior.sample` describes."""
    if generator is None:
        return draw(tuple(shape), dtype=dtype, device=device)
    drawn = draw(tuple(shape), generator=generator, dtype=dtype, device=generator.device)
    return drawn if device is None else drawn.to(device)


class StandardNormal(Prior):
    """N(0, I): closed-form KL 0.5 (mu^2 + sigma^2 - 1 - log sigma^2) per dimension."""

    name = "normal"

    def sample(
        self,
        shape: Shape,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        return _drawn(torch.randn, shape, generator, device, dtype)

    def log_density_per_dim(self, z: Tensor) -> Tensor:
        return densities.standard_normal_log_density_per_dim(z)

    def kl_per_dim(self, mu: Tensor, logvar: Tensor) -> Tensor:
        return densities.gaussian_kl_per_dim(mu, logvar)


class StandardLaplace(Prior):
    """Laplace(0, 1) per dimension: log p(z_d) = -|z_d| - log 2; the closed-form KL of
    `densities.gaussian_laplace_kl_per_dim`."""

    name = "laplace"
    scale = 1.0

    def sample(
        self,
        shape: Shape,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        # The inverse CDF, as torch.distributions.Laplace.rsample: u uniform on (-1, 1),
        # z = -scale sign(u) log(1 - |u|); drawn from torch.rand so a generator can be given.
        u = _drawn(torch.rand, shape, generator, device, dtype) * 2 - 1
        u = u.clamp(min=torch.finfo(u.dtype).eps - 1)  # u = -1 would give an infinite draw
        return -self.scale * u.sign() * torch.log1p(-u.abs())

    def log_density_per_dim(self, z: Tensor) -> Tensor:
        return densities.laplace_log_density_per_dim(z, self.scale)

    def kl_per_dim(self, mu: Tensor, logvar: Tensor) -> Tensor:
        return densities.gaussian_laplace_kl_per_dim(mu, logvar, self.scale)


PRIORS: dict[str, Prior] = {prior.name: prior for prior in (StandardNormal(), StandardLaplace())}


def build_prior(model_class: type, name: str) -> Prior:
    """The prior `name` for a model of `model_class`; ConfigError when that model cannot take it."""
    check_prior(model_class, name)
    return PRIORS[name]
