"""A run's objects from its checked config, and the checks that need them, before any training:
`prepare(cfg)` builds the DataModule and the model and refuses, in one paragraph, a setting that
passed the config's own checks but cannot work with this data on this machine (it would fail
later, after the training it wasted):

- a model too big for the machine's memory: sized first on torch's meta device (no memory),
  so model.latent_dim=2147483647 is refused instead of failing inside an allocation;
- the iwae's importance samples (model.samples) of one batch must fit in memory;
- what the evaluations need of the data and the model (evaluation/suite.py's check_evaluation).

train() calls it; so can a test or a notebook that wants the objects without training.
"""

from __future__ import annotations

from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class
from omegaconf import DictConfig

from autoencoders.errors import ConfigError
from autoencoders.evaluation.suite import check_evaluation
from autoencoders.machine import memory as machine_memory
from autoencoders.models.iwae import importance_sampling_bytes
from autoencoders.nets.families import family_name
from autoencoders.rundir.checkpoints import current_class_path
from autoencoders.rundir.loading import data_arguments, instantiate
from autoencoders.rundir.record import RunRecord

# Bytes each float32 parameter holds while training with Adam: the weight, its gradient, two moments.
TRAINING_BYTES_PER_PARAMETER = 4 * 4


def prepare(cfg: DictConfig, record: RunRecord | None = None) -> tuple[Any, Any]:
    """The run's DataModule (set up for fitting) and model, checked against each other, the
    evaluations and the machine; what they are goes into `record` when given."""
    datamodule = build_data(cfg, record)
    model = build_model(cfg, datamodule, record)
    check_evaluation(cfg.eval, model, datamodule)
    check_importance_samples(cfg, model, datamodule)
    return datamodule, model


def build_data(cfg: DictConfig, record: RunRecord | None = None) -> Any:
    """The run's DataModule, set up for fitting; its description goes into the record."""
    datamodule = instantiate(cfg.data, seed=cfg.seed)
    datamodule.setup("fit")
    if record is not None:
        record.update(data=datamodule.describe())
    return datamodule


def build_model(cfg: DictConfig, datamodule: Any, record: RunRecord | None = None) -> Any:
    """The run's model, sized by the data (input shape, and the class count or training-set size
    of models that need them: rundir.loading.data_arguments); its name and size go into the record.
    The name is the `model` group's option (mlp, vae ...), kept when the run resumes."""
    model_class = get_class(current_class_path(cfg.model._target_))
    arguments = data_arguments(model_class, datamodule)
    check_model_fits(cfg, arguments)
    model = instantiate(cfg.model, **arguments, _convert_="all", _recursive_=False)
    model.check_network(datamodule.pixels("train", slice(0, 2))[0])
    if record is not None:
        name = record.current("model", {}).get("name") or _chosen_option("model", cfg.model._target_)
        size = {"parameters": sum(p.numel() for p in model.parameters()), **model.network_size()}
        record.update(model={"name": name, "target": cfg.model._target_, "network": family_name(cfg.model.net), **size})
    return model


def check_model_fits(cfg: DictConfig, arguments: dict[str, Any]) -> None:
    """Build the model on the meta device (shapes only, no memory, ~15 ms) and refuse one whose
    training state (weights, gradients, Adam's moments) is more than the machine's memory, or
    that torch cannot even lay out (a size past what it counts, a buffer it makes on the CPU)."""
    import torch
    from hydra.errors import InstantiationException

    sizes = sorted(
        ((key, value) for key, value in cfg.model.items() if isinstance(value, int) and not isinstance(value, bool)),
        key=lambda item: -item[1],
    )
    largest = ", ".join(f"model.{key}={value}" for key, value in sizes[:3])
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):  # initialisation draws nothing from the run's RNG
            sized = instantiate(cfg.model, **arguments, _convert_="all", _recursive_=False)
    except InstantiationException as error:
        if not _too_big(error.__cause__):
            raise
        first = str(error.__cause__).strip().splitlines()[0]
        raise ConfigError(
            f"The model cannot be built that large ({first}). Its sizes: {largest}; make them smaller."
        ) from None
    parameters = sum(p.numel() for p in sized.parameters())
    buffers = sum(b.numel() * b.element_size() for b in sized.buffers())  # the vqvae's moving-average codebook
    memory, needed = machine_memory(), parameters * TRAINING_BYTES_PER_PARAMETER + buffers
    if memory is not None and needed > memory:
        raise ConfigError(
            f"The model would have {parameters:,} parameters and {buffers / 2**30:,.1f} GiB of buffers: training it "
            f"needs at least {needed / 2**30:,.0f} GiB (weights, gradients and Adam's two moments), more than this "
            f"machine's {memory / 2**30:.1f} GiB of memory. Its sizes: {largest}; make them smaller."
        )


def _too_big(error: BaseException | None) -> bool:
    """Whether torch refused an allocation or a size, not another fault of the model's code."""
    text = str(error).lower()
    return isinstance(error, MemoryError) or (
        isinstance(error, RuntimeError) and ("allocate" in text or "overflow" in text or "out of memory" in text)
    )


def check_importance_samples(cfg: DictConfig, model: Any, datamodule: Any) -> None:
    """The iwae decodes model.samples codes of every image of a batch in one step: they must fit."""
    samples = cfg.model.get("samples")
    if not isinstance(samples, int):
        return
    images = min(cfg.data.batch_size, len(datamodule.labels("train")))
    channels, height, width = model.input_shape
    needed = importance_sampling_bytes(samples, images, model.hparams.latent_dim, channels * height * width)
    memory = machine_memory()
    if memory is not None and needed > memory:
        raise ConfigError(
            f"model.samples={samples} needs at least {needed / 2**30:,.1f} GiB at once for one training step "
            f"({images} images of {channels}×{height}×{width}, data.batch_size={cfg.data.batch_size}), more than this "
            f"machine's {memory / 2**30:.1f} GiB of memory. Use fewer samples (Burda et al. 2016 train with "
            "k = 5 and 50) or a smaller data.batch_size."
        )


def _chosen_option(group: str, fallback: str) -> str:
    """The option chosen for a config group (e.g. model=vae), when running under Hydra."""
    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.choices.get(group, fallback))
    return fallback
