"""What a multirun's launcher needs before its first job: an absolute sweep directory (Ray's and
Slurm's workers may run in another working directory, where a relative one would put their runs
out of the driver's sight), and for Hydra's Ray launcher its cluster settings."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, open_dict


def prepare_launcher(config: DictConfig) -> None:
    """Adjust a multirun's composed config (with its `hydra` node) before the launcher starts."""
    with open_dict(config.hydra):
        config.hydra.sweep.dir = str(Path(str(config.hydra.sweep.dir)).expanduser().absolute())
    launcher = config.hydra.get("launcher") or {}
    init = (launcher.get("ray") or {}).get("init") if "RayLauncher" in str(launcher.get("_target_", "")) else None
    if init is None:
        return
    if not init.get("address"):
        # A cluster the launcher starts itself: Ray's head listens on every interface, so it takes
        # token authentication (Ray >= 2.52; the default for local clusters from 2.59).
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    elif "object_store_memory" not in init:
        # The launcher always asks Ray for a small object store, which Ray refuses when it joins an
        # existing cluster (`hydra.launcher.ray.init.address`); the cluster's own setting then stands.
        with open_dict(init):
            init.object_store_memory = None
