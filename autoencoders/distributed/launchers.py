"""What a multirun's launcher needs before its first job: an absolute sweep directory (Ray's and
Slurm's workers may run in another working directory, where a relative one would put their runs
out of the driver's sight), and for Hydra's Ray launcher its cluster settings and, for a cluster
it joins, the connection, made here so that a refused one is one paragraph."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from autoencoders.errors import ConfigError


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
        # token authentication (Ray >= 2.52; the default for local clusters from 2.59). It cannot be
        # kept on loopback: Ray 2.60 has no bind address, and rewrites a node address of 127.0.0.1
        # to the machine's own (ray._private.services.resolve_ip_for_localhost).
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        return
    if "object_store_memory" not in init:
        # The launcher always asks Ray for a small object store, which Ray refuses when it joins an
        # existing cluster (`hydra.launcher.ray.init.address`); the cluster's own setting then stands.
        with open_dict(init):
            init.object_store_memory = None
    join_cluster(OmegaConf.to_container(init, resolve=True))


def join_cluster(init: Mapping[str, Any]) -> None:
    """ray.init with the launcher's settings (the launcher then finds Ray running and uses this
    connection). A cluster that demands a token this driver does not have is a ConfigError
    saying what to set, not Ray's traceback."""
    import ray

    try:
        ray.init(**init)
    except Exception as error:
        if demands_token(error):
            raise ConfigError(token_missing(str(init.get("address")))) from None
        raise


def demands_token(error: BaseException) -> bool:
    """Whether `error` (from ray.init) means the cluster refused this driver for its token: Ray's
    AuthenticationError itself (RAY_AUTH_MODE=token here, no token), or the ConnectionError Ray
    raises after its retries when every one was refused so (RAY_AUTH_MODE unset here, or a wrong
    token); its cause holds the AuthenticationError only as text."""
    from ray.exceptions import AuthenticationError

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, AuthenticationError) or "AuthenticationError" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def token_missing(address: str) -> str:
    """The paragraph for a driver the cluster refused for its token."""
    mode = os.environ.get("RAY_AUTH_MODE") or "unset"
    token = "set" if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH") else "not set"
    return (
        f"The Ray cluster at hydra.launcher.ray.init.address={address} uses token authentication and refused "
        f"this driver (here RAY_AUTH_MODE is {mode}; RAY_AUTH_TOKEN/RAY_AUTH_TOKEN_PATH are {token}). Run ae-train "
        "with RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN (or in the file RAY_AUTH_TOKEN_PATH "
        "names, or ~/.ray/auth_token); `ray get-auth-token` on the head node prints it. No job was started."
    )
