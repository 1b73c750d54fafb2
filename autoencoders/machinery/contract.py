"""The model contract: what every model provides, and the optional capabilities that the shared
loop, the evaluations, the views, ae-predict and the data module ask for.

Every model derives `ModelContract` (through `AutoencoderBase`, machinery/base.py). Its abstract
methods are what each model must say; its class attributes are the declared capabilities, with
the defaults a model overrides. The optional methods are runtime-checkable protocols: a model has
the capability when it defines the method, and code outside this module asks
`isinstance(model, Sampler)` or one of the functions below, never `getattr`/`hasattr` on a model
(tests/machinery/test_contract.py scans the package for that).

Units throughout: images are float tensors (N, C, H, W) with pixels in [0, 1]; codes are
(N, latent_dim); loss terms are batch means; log-densities and likelihood terms are in nats per
image. `*condition` is `(labels,)` for a conditional model and empty for the others
(`inference.condition`). The adding-a-model guide (docs/adding-a-model.md) lists the same contract.

This module imports nothing heavy (no torch, no Lightning): the data module asks it too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from autoencoders.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import Tensor

Shape = tuple[int, ...]  # or a torch.Size, which is one

# The models whose prior is a choice (model.prior), named in the sentence that refuses it elsewhere.
SWAPPABLE_PRIOR_MODELS = "vae, tcvae, iwae and cvae"


class ModelContract(ABC):
    """What every model provides. The loop calls these; the views and evaluations read them."""

    # --- declared capabilities: class attributes a model overrides -----------------------------
    # Numbers per latent dimension the encoder emits (2 for a Gaussian posterior's mean and log-variance).
    encoder_outputs: int = 1
    # True when the reconstruction `loss_terms` returns is random (a posterior sample); then
    # val/test `mse` measures `reconstruct`, the deterministic one.
    stochastic_reconstruction: bool = False
    # True when the model takes the images' class labels beside them: encode(x, y), decode(z, y),
    # loss_terms(x, y), sample(n, y, generator); the loop and the views pass them.
    conditional: bool = False
    # Independent batches of data.batch_size stacked in one training batch (the factorvae: 2, its
    # second minibatch); val and test batches are always single draws.
    training_draws: int = 1
    # The model.prior names this model may be built with; () for a model with no continuous prior
    # over its codes (the plain, denoising, sparse and contractive autoencoders, the vqvae).
    prior_choices: tuple[str, ...] = ()
    # p(z) over the codes (machinery/priors.py: sample, log-density, KL from a diagonal Gaussian),
    # set by models with a continuous prior; None for the others. The samples grid decodes its draws.
    prior: Prior | None = None
    # Set by the shared loop: the training loss at the last read (progress bar), and what the
    # checkpoint the weights came from said of itself (epoch, global_step, epoch_metrics).
    running_loss: float | None = None
    loaded_checkpoint: dict[str, Any] | None = None

    # --- what every model says ----------------------------------------------------------------
    @abstractmethod
    def encode(self, x: Tensor, *condition: Tensor) -> Tensor:
        """The deterministic code of images x (the posterior mean for a probabilistic encoder),
        (N, latent_dim): the probe, projector, scatter, interpolation and traversal use it."""

    @abstractmethod
    def decode(self, z: Tensor, *condition: Tensor) -> Tensor:
        """Images (N, C, H, W) in [0, 1] from codes z (N, latent_dim)."""

    def reconstruct(self, x: Tensor, *condition: Tensor) -> Tensor:
        """The deterministic reconstruction, decode(encode(x)): what val/test `mse` measures."""
        return self.decode(self.encode(x, *condition), *condition)

    @abstractmethod
    def loss_terms(self, x: Tensor, *condition: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Batch-mean loss terms and the reconstruction they used. "loss" is the objective; every
        term is logged as train/<term>, val/<term>, test/<term>, in the units its docstring states."""

    def on_evaluation_batch(self, stage: str, x: Tensor, batch_idx: int, *condition: Tensor) -> dict[str, Tensor]:
        """Called on every val/test batch: extra batch-mean terms to log as `<stage>/<term>` (none
        by default); a model may also accumulate epoch statistics here (the vae's active units)."""
        return {}


class Prior(ABC):
    """p(z) over codes of any number of dimensions (the last one), factorised across them: what
    every prior provides (the ones there are: machinery/priors.py)."""

    name: str

    @abstractmethod
    def sample(
        self,
        shape: Shape,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Draws of `shape` in `dtype` on `device`: from `generator` on its own device (then
        moved), so a seeded generator gives the same draws wherever the model is; without one,
        from the global RNG on `device`."""

    @abstractmethod
    def log_density_per_dim(self, z: Tensor) -> Tensor:
        """log p(z_d) for each element of z, nats."""

    def log_density(self, z: Tensor) -> Tensor:
        """log p(z), summed over the last dimension, nats; broadcasts over leading ones."""
        return self.log_density_per_dim(z).sum(-1)

    @abstractmethod
    def kl_per_dim(self, mu: Tensor, logvar: Tensor) -> Tensor:
        """KL(N(mu, exp(logvar)) || p) for each latent dimension, (B, latent_dim), nats."""


# --- optional capabilities: a model has one when it defines the methods -----------------------
@runtime_checkable
class Variational(Protocol):
    """A diagonal-Gaussian posterior q(z|x) = N(mu, diag(exp(logvar))) beside the model's prior:
    with a likelihood (hparams.loss) it gives test/nll, the importance-weighted estimate."""

    def posterior(self, x: Tensor, *condition: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z|x), each (N, latent_dim)."""


@runtime_checkable
class ImportanceWeighted(Protocol):
    """Models whose latent variables are more than one diagonal Gaussian (the hvae's two levels)
    give test/nll's importance weights themselves."""

    def log_importance_weights(
        self, x: Tensor, samples: int, generator: torch.Generator | None = None, labels: Tensor | None = None
    ) -> Tensor:
        """(samples, N) log p(x, z_k) - log q(z_k|x) for z_k drawn from the posterior, in nats."""


@runtime_checkable
class Sampler(Protocol):
    """Models with a prior draw new images: test/fd, test/precision and test/recall score them
    (sample quality), and a conditional model's give test/class_consistency."""

    def sample(self, n: int, *args: Any, generator: torch.Generator | None = None) -> Tensor:
        """n images (n, C, H, W) in [0, 1] drawn from the model, with `generator` when given (a
        conditional model's second argument is the classes y). Called in eval mode."""


@runtime_checkable
class GridSampler(Protocol):
    """Models whose images/samples grid is not decode(prior draws): the cvae (a row per class),
    the hvae (drawn top-down), the vqvae (its code prior)."""

    def sample_grid(self, n_images: int, columns: int, generator: torch.Generator | None = None) -> Tensor:
        """The grid's images, row by row in rows of `columns`, drawn with `generator`."""


@runtime_checkable
class Tokenizer(Protocol):
    """Models with a discrete code (the vqvae): ae-predict writes each image's tokens beside its code."""

    positions: int  # tokens per image

    def token_indices(self, z: Tensor) -> Tensor:
        """(N, positions) int64: the codebook index of each token of codes z (N, latent_dim)."""


# --- asking the contract --------------------------------------------------------------------
def is_conditional(module: Any) -> bool:
    """Whether `module` takes the images' class labels beside them (any module: False unless declared)."""
    return getattr(module, "conditional", False) is True


def training_draws(trainer: Any) -> int:
    """Batches stacked per training batch for the model `trainer` trains (1 without a trainer, or
    for a module that does not keep the contract)."""
    module = getattr(trainer, "lightning_module", None)
    return module.training_draws if isinstance(module, ModelContract) else 1


def prior_of(model: Any) -> Prior | None:
    """The model's continuous prior p(z), or None when it has none."""
    return model.prior if isinstance(model, ModelContract) else None


def estimates_likelihood(model: Any) -> bool:
    """Whether test/nll applies: the model gives its own importance weights, or it has a Gaussian
    posterior and a continuous prior for the shared estimator (evaluation/likelihood.py)."""
    return isinstance(model, ImportanceWeighted) or (isinstance(model, Variational) and prior_of(model) is not None)


def decodes_codes(model: Any) -> bool:
    """Whether the model's `reconstruct` is the contract's decode(encode(x)), so stored codes can
    be decoded instead of encoding the images again (machinery/passes.py)."""
    return getattr(type(model), "reconstruct", None) is ModelContract.reconstruct


def check_prior(model_class: type, name: str) -> None:
    """Raise ConfigError, one sentence, when `model_class` cannot be built with prior `name`."""
    choices = model_class.prior_choices if issubclass(model_class, ModelContract) else ()
    if name in choices:
        return
    if not choices:
        raise ConfigError(
            f"model.prior={name!r} does not apply to {model_class.__name__}, which has no continuous prior over its "
            f"codes; model.prior chooses the prior of the {SWAPPABLE_PRIOR_MODELS} (normal or laplace), so remove it."
        )
    raise ConfigError(
        f"model.prior={name!r} is not available for {model_class.__name__}, whose prior is its own "
        f"({', '.join(choices)} only); a prior of choice (normal or laplace) is for the {SWAPPABLE_PRIOR_MODELS}, "
        "so remove the override or choose one of those models."
    )
