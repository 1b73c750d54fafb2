"""The beta-TCVAE (Chen et al. 2018): the VAE whose KL term is
split into index-code mutual information, total correlation and dimension-wise KL, and whose
`beta` weighs only the total correlation.

Config `model=tcvae`. The training-set size the estimator needs comes from the data.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from autoencoders.errors import ConfigError
from autoencoders.losses import total_correlation
from autoencoders.models.vae import VAE


class TCVAE(VAE):
    """The VAE (same networks, likelihood, posterior and prior) with the objective, per image in nats,

        loss = recon + mi + beta * tc + dwkl       (alpha = gamma = 1 in the paper's notation)

    mi, tc and dwkl are estimated from the minibatch, normalised by the training-set size
    `dataset_size` (`total_correlation.total_correlation_decomposition`), batch means; `tc_estimator` picks
    the paper's minibatch-weighted sampling (mws, eq. 5, the default) or its stratified sampling
    (mss, appendix C.2). Both give the same gradients up to their sampling; their values differ:
    mws's weights 1/(NM) sum to 1/N, which adds constants to the estimates, (D - 1) log N to tc
    (where a total correlation of 0 would read 0), log N to mi and -D log N to dwkl, so compare
    mws values between runs on the same data, not with 0; mss's weights sum to 1, and its tc
    reads near 0 when the aggregate posterior factorises. dwkl is taken against the model's
    prior's log-density (N(0, I) or Laplace(0, 1), model.prior), so the three still sum to
    log q(z|x) - log p(z). With beta = 1 the loss is the VAE's with
    a one-sample Monte-Carlo KL in place of the closed form. `kl` (closed form) and
    `elbo` = -(recon + kl) are logged as for the VAE.
    `kl_warmup_epochs` ramps the whole regularizer mi + beta * tc + dwkl; free bits (a floor per
    latent dimension) do not apply to this split, so `free_bits` must stay 0.
    """

    def __init__(self, *, dataset_size: int, tc_estimator: str = "mws", **settings: Any) -> None:
        super().__init__(**settings)
        if self.hparams.free_bits != 0:
            raise ConfigError(
                f"model.free_bits={self.hparams.free_bits!r} is not allowed for the tcvae: free bits "
                "floor each latent dimension's KL, which the tcvae splits into mi, tc and dwkl "
                "instead. Use model.free_bits=0, or model=vae for free bits."
            )

    def regularizer(self, mu: Tensor, logvar: Tensor, z: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        parts = total_correlation.total_correlation_decomposition(
            z, mu, logvar, self.hparams.dataset_size, self.hparams.tc_estimator, self.prior.log_density
        )
        terms = {name: value.mean() for name, value in parts.items()}
        penalty = terms["mi"] + self.hparams.beta * terms["tc"] + terms["dwkl"]
        return self.warmup_fraction() * penalty, terms
