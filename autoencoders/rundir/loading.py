"""Objects back from configs and run directories: `instantiate` for a config block, and a
trained model from a run's config.yaml and one of its checkpoints.

`load_run(run_dir)` is the notebook entry point (re-exported as `autoencoders.load_run`);
`ae-eval` uses the same functions. Checkpoints are read with weights_only=True (nothing in them
is executed) and must belong to the run (rundir.checkpoints.check_belongs). The classes the run's
config.yaml and checkpoint name are checked before any is imported (rundir/trust.py): `trust`
names the modules beyond the shipped configs' that the user allows for this call.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from autoencoders.errors import USER_ERRORS, CheckpointError, ConfigError
from autoencoders.rundir.attempt import run_of_checkpoint
from autoencoders.rundir.checkpoints import FROM_DATA, check_belongs, current_class_path, load_checkpoint
from autoencoders.rundir.record import METRICS_FILE, read_record
from autoencoders.rundir.trust import check_target, check_targets

# The names --checkpoint takes for <run>/checkpoints/<name>.ckpt (interrupted: the one a signal stop saves).
CHECKPOINT_NAMES = ("best", "last", "interrupted")
# What each size from the data is, for the error when the data lacks it.
_DATA_SIZE_MEANING = {"input_shape": "an image shape", "num_classes": "class labels", "dataset_size": "a training set"}


def instantiate(node: DictConfig, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, but a bad config value surfaces as its own clear error
    instead of Hydra's InstantiationException wrapper around it. Class paths that moved
    (rundir.checkpoints.CLASS_ALIASES) are followed, so old run directories still load."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    node = OmegaConf.merge(node, {"_target_": current_class_path(node._target_)})
    try:
        return hydra_instantiate(node, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, USER_ERRORS):
            raise error.__cause__ from None
        raise


def constructor_arguments(klass: type) -> set[str]:
    """The keyword arguments the package's constructors along `klass`'s MRO accept (a model's own
    hyperparameters and the shared ones of its base classes)."""
    import inspect

    names: set[str] = set()
    for base in klass.__mro__:
        if "__init__" in vars(base) and base.__module__.startswith("autoencoders."):
            names.update(
                name
                for name, parameter in inspect.signature(base.__init__).parameters.items()
                if name != "self" and parameter.kind is not parameter.VAR_KEYWORD
            )
    return names


def data_arguments(model_class: type, datamodule: Any) -> dict[str, Any]:
    """The constructor arguments of `model_class` that the data decides (rundir.checkpoints.FROM_DATA),
    from the DataModule's attributes of the same names: input_shape for every model, num_classes
    (cvae), dataset_size (tcvae). Raises ConfigError when the data has no such value."""
    values = {}
    for name in sorted(FROM_DATA & constructor_arguments(model_class)):
        value = getattr(datamodule, name, None)
        if value is None:
            raise ConfigError(
                f"{model_class.__name__} needs {_DATA_SIZE_MEANING[name]} from the data ({name}), but "
                f"data {getattr(datamodule, 'name', type(datamodule).__name__)!r} has none. Choose a "
                f"dataset with {_DATA_SIZE_MEANING[name]}, or another model."
            )
        values[name] = list(value) if isinstance(value, tuple) else value
    return values


def resolve(target: str | Path, checkpoint: str | Path | None = None) -> tuple[Path, Path]:
    """(run directory, checkpoint file) from a run directory or a .ckpt path.

    `checkpoint` is "best" (default), "last", "interrupted" or a path; a .ckpt `target` is its own
    checkpoint, in <run>/checkpoints/. A named checkpoint the run lacks is refused here, naming
    those it has.
    """
    target = Path(target).expanduser()
    if target.suffix == ".ckpt" or target.is_file():
        if checkpoint is not None:
            raise CheckpointError(
                f"{target} is a checkpoint file already; pass its run directory to choose "
                "another checkpoint with --checkpoint."
            )
        return run_of_checkpoint(target), target
    if not (target / "config.yaml").is_file():
        raise CheckpointError(
            f"{target} is not a run directory (no config.yaml); pass the directory of a finished "
            "run, or one of its checkpoints/*.ckpt files."
        )
    name = str(checkpoint or "best")
    if name not in CHECKPOINT_NAMES:
        return target, Path(name).expanduser()
    path = target / "checkpoints" / f"{name}.ckpt"
    if not path.is_file():
        present = sorted(found.stem for found in (target / "checkpoints").glob("*.ckpt"))
        raise CheckpointError(
            f"{target} has no {name} checkpoint ({path} is missing); "
            + (
                f"its checkpoints are {', '.join(present)}: choose one with --checkpoint."
                if present
                else "it has no checkpoints at all (training was stopped or failed "
                "before its first epoch ended, or ran with checkpointing off); train it again."
            )
        )
    return target, path


def load_config(run_dir: Path, trust: Iterable[str] = ()) -> DictConfig:
    """The run's resolved config.yaml, whose every `_target_` is one the user may import
    (rundir.trust.check_targets; UntrustedCode otherwise)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise CheckpointError(
            f"{run_dir} has no config.yaml, so its model cannot be rebuilt; a checkpoint must sit "
            "in <run>/checkpoints/ beside the run's config.yaml."
        )
    cfg = OmegaConf.load(path)
    check_targets(cfg, path, trust)
    return cfg


def load_model(cfg: DictConfig, path: Path, trust: Iterable[str] = ()) -> tuple[Any, dict[str, Any]]:
    """The model of `cfg.model` (a config load_config checked) with the weights of checkpoint
    `path`, in eval mode, on the CPU; also the checkpoint itself. Raises CheckpointError for a
    corrupt file or another model's, UntrustedCode for a class the user has not allowed."""
    from hydra.utils import get_class

    saved = load_checkpoint(path)
    if saved.get("model_class") is not None:  # the checkpoint's strings are data too
        check_target("model", saved["model_class"], path, trust, key="its model_class")
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    check_belongs(saved, path, model_cfg)
    model_class = get_class(current_class_path(model_cfg.pop("_target_")))
    model_cfg = {key: value for key, value in model_cfg.items() if not key.startswith("_")}  # Hydra's own (_recursive_)
    stored = saved.get("hyper_parameters", {})
    from_data = sorted(FROM_DATA & constructor_arguments(model_class))  # what the data gave when it was trained
    for name in from_data:
        if stored.get(name) is None:
            raise CheckpointError(f"Checkpoint {path} records no {name}; it was not written by autoencoders.")
    model = model_class(**{name: stored[name] for name in from_data}, **model_cfg)
    try:
        model.load_state_dict(saved["state_dict"])
    except (KeyError, RuntimeError) as error:
        raise CheckpointError(
            f"Checkpoint {path} does not hold this model's weights ({str(error).splitlines()[0]})."
        ) from None
    return model.eval(), saved


def load_run(run_dir: str | Path, checkpoint: str | Path | None = None, trust: Iterable[str] = ()) -> torch.nn.Module:
    """The trained model of a run directory, in eval mode: its best checkpoint, or `checkpoint`
    ("last", "best" or a path); `run_dir` may also be a checkpoint file in <run>/checkpoints/.
    `trust`: modules whose classes the run may name beyond the shipped configs' (your own model
    class, say), as ae-eval's --trust; AE_TRUST in the environment adds to them (rundir/trust.py).

    It has encode (deterministic codes; the posterior mean for the vae), decode, reconstruct
    and, for the vae, sample(n). Gradients stay on; wrap calls in torch.no_grad() for speed.
    """
    run_dir, path = resolve(run_dir, checkpoint)
    if (run_dir / METRICS_FILE).is_file():
        read_record(run_dir)  # a record of a newer layout is refused before anything loads
    model, _ = load_model(load_config(run_dir, trust), path, trust)
    return model
