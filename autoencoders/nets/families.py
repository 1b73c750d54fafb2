"""Networks from `model.net`: a shipped family's name or a mapping with a `_target_`, built into an
encoder and a decoder sized from the data's input shape; their shapes checked on real images and
their size measured.

`model.net` is the `model/net` config group (conf/model/net/<family>.yaml): `_target_` names the
encoder class and the other keys are its sizes, passed to the encoder and to the decoder, which
mirrors it by default (the encoder class's `mirror`). `model.net.decoder` sets the decoder apart:
its keys replace the shared ones, and its own `_target_` names another decoder class. A plain
string (`model.net=conv`, and the config.yaml and checkpoints of runs made before networks were
configs) names a shipped family at its defaults.

Every encoder is built as `Encoder(input_shape, out_dim, **sizes)` (`condition_dim=` too for a
conditional model) and maps images (B, C, H, W) (and, when conditional, (B, condition_dim)
conditions) to (B, out_dim); every decoder as `Decoder(input_shape, latent_dim, **sizes)` and
maps (B, latent_dim) to images of the input shape in [0, 1]. Models that need two encoder heads
(the VAE's mean and log-variance) ask for out_dim = 2 * latent_dim; a conditional model's decoder
takes [z, condition], so it is built for latent_dim + condition_dim inputs.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from autoencoders.errors import ConfigError
from autoencoders.schema import check_value, shipped_nets

InputShape = tuple[int, int, int]


def net_config(net: str | Mapping[str, Any]) -> dict[str, Any]:
    """`model.net` as a plain mapping: a shipped family's YAML for a name, a copy of a mapping."""
    check_value("model.net", net)
    if isinstance(net, str):
        return shipped_nets()[net]
    return OmegaConf.to_container(net, resolve=True) if isinstance(net, DictConfig) else dict(net)


def family_name(net: str | Mapping[str, Any]) -> str:
    """The shipped family `model.net` names (mlp, conv ...), else its `_target_`: the user's class."""
    if isinstance(net, str):
        return net
    targets = {config["_target_"]: name for name, config in shipped_nets().items()}
    return targets.get(net["_target_"], net["_target_"])


def import_class(path: str, key: str) -> type[nn.Module]:
    """The nn.Module class at `path` ("package.module.Class"), or a ConfigError naming `key`."""
    module_name, _, name = str(path).rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(
            f"{key}={path}: cannot import its module {module_name!r} ({type(error).__name__}: {error}). "
            "A network of your own must be importable where the run trains and wherever it is reopened: "
            "install its package, or put its folder on PYTHONPATH."
        ) from None
    found = vars(module).get(name)
    if not (isinstance(found, type) and issubclass(found, nn.Module)):
        raise ConfigError(f"{key}={path}: {module_name} has no nn.Module class {name!r}.")
    return found


def _construct(cls: type[nn.Module], key: str, *args: Any, **kwargs: Any) -> nn.Module:
    try:
        inspect.signature(cls).bind(*args, **kwargs)
    except TypeError as error:
        raise ConfigError(
            f"{key}: {cls.__module__}.{cls.__qualname__} cannot be built with the sizes "
            f"{sorted(kwargs)} ({error}). Its constructor must take (input_shape, "
            f"{'out_dim' if key == 'model.net' else 'latent_dim'}, ...) and every key of {key} (docs/models.md, Networks)."
        ) from None
    return cls(*args, **kwargs)


def build_nets(
    net: str | Mapping[str, Any], input_shape: InputShape, latent_dim: int, encoder_out: int, condition_dim: int = 0
) -> tuple[nn.Module, nn.Module]:
    """Encoder and decoder of `model.net` for images of `input_shape`; with `condition_dim` > 0,
    both also take that many condition inputs (see the module docstring)."""
    sizes = net_config(net)
    encoder_class = import_class(sizes.pop("_target_"), "model.net._target_")
    apart = dict(sizes.pop("decoder", None) or {})
    if "_target_" in apart:
        decoder_class = import_class(apart.pop("_target_"), "model.net.decoder._target_")
    elif isinstance(vars(encoder_class).get("mirror"), type):
        decoder_class = vars(encoder_class)["mirror"]
    else:
        raise ConfigError(
            f"model.net._target_={encoder_class.__module__}.{encoder_class.__qualname__} names no decoder of "
            "its own (a class attribute `mirror`); set model.net.decoder._target_ to your decoder class."
        )
    conditions = {"condition_dim": condition_dim} if condition_dim else {}
    encoder = _construct(encoder_class, "model.net", tuple(input_shape), encoder_out, **conditions, **sizes)
    decoder_sizes = {**sizes, **apart}
    decoder = _construct(
        decoder_class, "model.net.decoder", tuple(input_shape), latent_dim + condition_dim, **decoder_sizes
    )
    return encoder, decoder


class _Evaluating:
    """Modules in eval mode, without gradients, for one look (batch norm's statistics untouched)."""

    def __init__(self, *modules: nn.Module) -> None:
        self.modules, self.modes = modules, [module.training for module in modules]

    def __enter__(self) -> None:
        self.grad = torch.is_grad_enabled()
        torch.set_grad_enabled(False)
        for module in self.modules:
            module.eval()

    def __exit__(self, *exc: object) -> None:
        torch.set_grad_enabled(self.grad)
        for module, mode in zip(self.modules, self.modes):
            module.train(mode)


def check_shapes(
    encoder: nn.Module, decoder: nn.Module, images: Tensor, encoder_out: int, latent_in: int, condition_dim: int = 0
) -> None:
    """One forward pass of each network on real images (and zero codes): ConfigError naming the
    shape expected and the shape got, before any training. Draws no random numbers."""
    batch = len(images)
    conditions = (images.new_zeros(batch, condition_dim),) if condition_dim else ()
    with _Evaluating(encoder, decoder):
        code = encoder(images, *conditions)
        if tuple(code.shape) != (batch, encoder_out):
            raise ConfigError(
                f"model.net: the encoder turned images of shape {tuple(images.shape)} into {tuple(code.shape)}; "
                f"the model needs ({batch}, {encoder_out}), one row of out_dim={encoder_out} numbers per image. "
                "Make the encoder's last layer give out_dim outputs."
            )
        decoded = decoder(images.new_zeros(batch, latent_in))
        if tuple(decoded.shape) != tuple(images.shape):
            raise ConfigError(
                f"model.net.decoder: codes of shape ({batch}, {latent_in}) became {tuple(decoded.shape)}; the "
                f"model needs images of the data's shape {tuple(images.shape)}. Make the decoder end in the "
                "input's shape (and in [0, 1], e.g. with a sigmoid)."
            )


def network_size(
    encoder: nn.Module, decoder: nn.Module, input_shape: InputShape, latent_in: int, condition_dim: int = 0
) -> dict[str, int]:
    """Parameters of each network and the multiply-adds of encoding and decoding one image
    (convolutions and matrix products, counted by torch's FlopCounterMode: flops / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(encoder.parameters()).device
    image = torch.zeros(1, *input_shape, device=device)
    conditions = (image.new_zeros(1, condition_dim),) if condition_dim else ()
    counted = {}
    with _Evaluating(encoder, decoder):
        for name, module, inputs in (
            ("encoder", encoder, (image, *conditions)),
            ("decoder", decoder, (image.new_zeros(1, latent_in),)),
        ):
            counter = FlopCounterMode(display=False)
            with counter:
                module(*inputs)
            counted[name] = counter.get_total_flops() // 2
    return {
        "encoder_parameters": sum(p.numel() for p in encoder.parameters()),
        "decoder_parameters": sum(p.numel() for p in decoder.parameters()),
        "multiply_adds": counted["encoder"] + counted["decoder"],
    }
