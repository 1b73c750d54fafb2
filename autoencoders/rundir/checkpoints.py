"""Checkpoints: read safely, the newest usable one to resume from, and the one rule for whether
a checkpoint belongs to a run; and how training writes them: whole or not at all, under fixed
names, surviving a moved run.

That rule serves resume, `ae-eval` and `load_run` alike: a checkpoint belongs to a run when its
model class and every model hyperparameter equal the run's config.yaml, and, where a checkpoint
continues a run (resume), when the hash of the whole config it was trained under (`config_sha256`,
in checkpoints written since it existed) is the run's. Checkpoints are read with weights_only=True,
so nothing in them is executed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from autoencoders.atomic import atomic_write
from autoencoders.errors import CheckpointError
from autoencoders.rundir.attempt import checkpoint_dirs

INTERRUPTED_CHECKPOINT = "interrupted.ckpt"
CONFIG_HASH = "config_sha256"  # the checkpoint's key for the hash of the config it was trained under

# Class paths that moved: the name a checkpoint or an old config.yaml may hold -> today's name.
# (The models kept their modules when the package was split into wings, so none is listed yet.)
CLASS_ALIASES: dict[str, str] = {}

# Hyperparameters the data decides (the model is built with them), not config.yaml. Each is the
# DataModule attribute of the same name; a model takes those its constructor names (rundir.loading).
FROM_DATA = frozenset({"input_shape", "num_classes", "dataset_size"})


def current_class_path(path: str | None) -> str | None:
    """Today's import path of a class recorded under `path` (itself when it did not move)."""
    return CLASS_ALIASES.get(path, path) if path is not None else None


_LAST_READ: dict[tuple[str, int, int, int], dict[str, Any]] = {}  # the latest checkpoint read, by file identity


def load_checkpoint(path: Path) -> dict[str, Any]:
    """torch.load with weights_only=True (nothing from the file is executed), with clear errors.

    The latest one read is kept (keyed by path, inode, size and modification time): a resume checks its
    checkpoint, then takes its step, without reading the file twice. Callers only read it."""
    if not Path(path).is_file():
        raise CheckpointError(f"No checkpoint at {path}.")
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)  # a rewrite is a new inode
    if key in _LAST_READ:
        return _LAST_READ[key]
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
        _LAST_READ.clear()
        _LAST_READ[key] = loaded
        return loaded
    except Exception as error:  # truncated zip, wrong format, unsafe pickle: all mean "unusable"
        raise CheckpointError(
            f"Checkpoint {path} cannot be loaded ({type(error).__name__}: {str(error).splitlines()[0]}). "
            "It is corrupt or not an autoencoders checkpoint; use another checkpoint of the run "
            "(checkpoints/last.ckpt or best.ckpt) or start a new run."
        ) from None


def check_belongs(
    checkpoint: Mapping[str, Any], path: Path, model_cfg: Mapping[str, Any], config_sha256: str | None = None
) -> None:
    """Raise CheckpointError unless the checkpoint holds the model `model_cfg` describes (the
    run's `model:` block with its `_target_`): the same class and every hyperparameter equal.

    `config_sha256`: the hash of the run's whole config (rundir.resume.config_fingerprint), for a
    checkpoint that is to continue the run: one saved under another config (another run's, or
    before config.yaml was edited) is refused. Checkpoints older than the hash are judged by the
    model alone. Evaluating or loading a checkpoint needs only the model, and passes None."""
    wanted = current_class_path(model_cfg["_target_"])
    saved_class = current_class_path(checkpoint.get("model_class"))
    if saved_class != wanted:
        raise CheckpointError(
            f"Checkpoint {path} holds a {saved_class or 'non-autoencoders'} model, not {wanted}. Use a checkpoint "
            "of this run, or the run directory the checkpoint came from."
        )
    stored = checkpoint.get("hyper_parameters", {})
    configured = {key: value for key, value in model_cfg.items() if not key.startswith("_")}  # _target_, _recursive_
    keys = sorted((set(stored) | set(configured)) - FROM_DATA)
    differing = [
        f"{key}={stored.get(key)!r} in the checkpoint, {configured.get(key)!r} in the config"
        for key in keys
        if stored.get(key) != configured.get(key)
    ]
    if differing:
        raise CheckpointError(
            f"Checkpoint {path} was saved by a different model ({'; '.join(differing)}). A checkpoint belongs to the "
            "run whose config.yaml has its class and every model setting; use a checkpoint of this run, or start "
            "a new run for other model settings."
        )
    saved_config = checkpoint.get(CONFIG_HASH)
    if config_sha256 is not None and saved_config is not None and saved_config != config_sha256:
        raise CheckpointError(
            f"Checkpoint {path} was saved under another config than this run's (config hash {saved_config[:12]} "
            f"in the checkpoint, {config_sha256[:12]} for the run): it is another run's, or the run's config.yaml "
            "changed since. Resume from a checkpoint of this run, undo the edit of config.yaml, or start a new run."
        )


def usable_checkpoint(
    run_dir: Path, model_cfg: Mapping[str, Any], config_sha256: str | None = None
) -> tuple[Path | None, dict[str, Any], list[str]]:
    """The newest checkpoint of the run (its own, or a stopped resume's in <run>/attempt/) that
    loads and belongs to it, that checkpoint, and one line per newer checkpoint passed over,
    saying why. (None, {}, lines) when none is usable."""
    folders = checkpoint_dirs(run_dir)
    candidates = sorted(
        (path for folder in folders for path in folder.glob("*.ckpt")),
        key=lambda path: path.stat().st_mtime_ns,
        reverse=True,
    )
    skipped = []
    for path in candidates:
        try:
            saved = load_checkpoint(path)
            check_belongs(saved, path, model_cfg, config_sha256)
        except CheckpointError as error:
            shown = path.name if path.parent == folders[0] else path.relative_to(run_dir)
            skipped.append(f"skipped {shown}: {error}")
            continue
        return path, saved, skipped
    return None, {}, skipped


class ConfigStamp(Callback):
    """Every checkpoint the run writes carries the hash of the run's whole config (`config_sha256`)."""

    def __init__(self, config_sha256: str | None) -> None:
        self.config_sha256 = config_sha256

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        if self.config_sha256 is not None:
            checkpoint[CONFIG_HASH] = self.config_sha256


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoint files written whole or not at all (autoencoders/atomic.py): a full disk (ENOSPC)
    leaves the previous checkpoint intact instead of a truncated one that no resume can load."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        with atomic_write(Path(path), "wb") as handle:
            torch.save(checkpoint, handle)


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that never versions its file name (best.ckpt stays best.ckpt) and finds the
    files its saved state names where they are now: in its own folder (a resume that continues a
    stopped one in <run>/attempt/), else in the run's checkpoints/ (the run was moved or copied, or
    this resume writes into <run>/attempt/; rundir/attempt.py). Lightning's own forgets its best
    score when the folder differs, and the next epoch would count as a new best whatever its loss."""

    def __init__(self, run_dir: Path | None = None, **kwargs: Any) -> None:
        super().__init__(enable_version_counter=False, **kwargs)
        self.run_dir = run_dir

    @property
    def state_key(self) -> str:
        # The key Lightning's own class uses, so checkpoints written before this class still restore it.
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def located(self, path: str | None) -> str | None:
        """Where the checkpoint a saved state names (by its file name) is now."""
        if not path or self.dirpath is None:
            return path
        here = Path(self.dirpath) / Path(path).name
        if here.is_file() or self.run_dir is None:
            return str(here)
        return str(Path(self.run_dir) / "checkpoints" / Path(path).name)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("dirpath") is not None and self.dirpath is not None:
            state_dict = {
                **state_dict,
                "dirpath": self.dirpath,
                "best_model_path": self.located(state_dict.get("best_model_path")),
                "kth_best_model_path": self.located(state_dict.get("kth_best_model_path")),
                "last_model_path": self.located(state_dict.get("last_model_path")),
                "best_k_models": {
                    self.located(path): score for path, score in (state_dict.get("best_k_models") or {}).items()
                },
            }
        super().load_state_dict(state_dict)
