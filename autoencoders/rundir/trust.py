"""What opening a run directory trusts: the classes and functions a run names are checked as
strings before anything is looked up or imported.

A run directory is data: runs are shared between colleagues and downloaded from papers' pages.
Its config.yaml names code by `_target_` (the model, the data, loggers, callbacks, at any depth of
nesting) and its checkpoints record the model's class (`model_class`); importing or calling any
of them runs code, whatever loads the weights. So every such name read back from a run directory
(load_run, ae-eval, ae-predict, a resume, a sweep re-run, a DDP worker) passes `check_target`:

- allowed: the `_target_` values the shipped config tree (conf/) holds at that config path, read
  from its YAML files (`shipped_targets`, so the rule follows the configs), and the class paths
  that moved (rundir.checkpoints.CLASS_ALIASES);
- anything else only when the user allows it for this command, never from the run itself:
  `--trust MODULE` (ae-eval, ae-predict), `trust=[MODULE,...]` (ae-train resume=<run>),
  `load_run(..., trust=[...])`, or AE_TRUST=MODULE[,MODULE...] in the environment.

A new `ae-train` is the user's own command and is not restricted; the targets of the config it
composes count as allowed when it reopens its own run directory (a sweep re-run that resumes).

The hook for new kinds of `_target_` (say, a user network chosen under model.net): conf/ files
that land at that path make their targets allowed there, and whatever reads such a target from
a run calls `check_target(path, target, source, trust)` before importing it, as the rest does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from autoencoders.errors import UntrustedCode
from autoencoders.rundir.checkpoints import CLASS_ALIASES, current_class_path

TRUST_VARIABLE = "AE_TRUST"  # modules allowed for every command of this environment, comma-separated
TRUST_KEY = "trust"  # ae-train resume=<run> trust=[MODULE,...]: this resume's allowance, never recorded
_PACKAGE_HEADER = re.compile(r"^#\s*@package\s+(\S+)", re.MULTILINE)


def trusted(given: Iterable[str] | str | None = ()) -> tuple[str, ...]:
    """The modules the user allows for this command: `given` (one name or several) and those
    AE_TRUST names."""
    given = [given] if isinstance(given, str) else list(given or ())
    names = [*given, *os.environ.get(TRUST_VARIABLE, "").replace(",", " ").split()]
    stripped = (str(name).strip().rstrip(".") for name in names)
    return tuple(dict.fromkeys(name for name in stripped if name))


def check_target(
    path: str, target: Any, source: Path | str, trust: Iterable[str] | str | None = (), key: str = ""
) -> None:
    """Raise UntrustedCode unless `target`, the class or function a run names at config path
    `path` (e.g. "model", "data.root", "logger.csv", "model.net"), may be imported: conf/ puts it
    there, it is a moved class's old path, or the user allows its module (`trust`, AE_TRUST).

    `source`: the file it was read from, for the message; `key`: how that file names it, when not
    `<path>._target_` (a checkpoint's model_class)."""
    if isinstance(target, str) and (allowed_here(path, target) or _user_allows(target, trusted(trust))):
        return
    named = key or (f"{path}._target_" if path else "_target_")
    module = target.rsplit(".", 1)[0] if isinstance(target, str) else "<module>"
    allow = (
        f"--trust {module} (ae-eval, ae-predict), {TRUST_KEY}=[{module}] (ae-train resume=<run> ...), "
        f"load_run(..., trust=[{module!r}]) in Python, or {TRUST_VARIABLE}={module} in the environment"
    )
    raise UntrustedCode(
        f"{source} names {target!r} as {named}, which is not one the shipped configs (conf/) put at "
        f"{path or 'the top level'}, so it was neither imported nor run: a run directory is data, and the "
        f"code it names runs only when you allow it for this command. If you trust this run and that "
        f"code, allow its module: {allow}."
    )


def check_targets(node: Any, source: Path | str, trust: Iterable[str] | str | None = (), path: str = "") -> None:
    """check_target for every `_target_` of a config read from a run (a DictConfig, resolved as
    Hydra's instantiate would resolve it, or plain containers), at any depth of nesting."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, (DictConfig, ListConfig)):
        node = OmegaConf.to_container(node, resolve=True)
    modules = trusted(trust)
    for where, target in targets_in(node, path):
        check_target(where, target, source, modules)


def targets_in(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(config path, `_target_` value) of every mapping with a `_target_` in `node`, at any depth;
    list items are numbered (`data.root._args_.0`)."""
    if isinstance(node, Mapping):
        if "_target_" in node:
            yield path, node["_target_"]
        items: Iterable[tuple[Any, Any]] = node.items()
    elif isinstance(node, (list, tuple)):
        items = enumerate(node)
    else:
        return
    for name, value in items:
        if name != "_target_":
            yield from targets_in(value, f"{path}.{name}" if path else str(name))


def own_targets(cfg: Any) -> list[str]:
    """The targets of a config the user composed for this command (a new ae-train's), as the
    allowance with which it may reopen its own run directory (a sweep re-run, its DDP workers)."""
    from omegaconf import DictConfig, OmegaConf

    values = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    return sorted({target for _, target in targets_in(values) if isinstance(target, str)})


def allowed_here(path: str, target: str) -> bool:
    """Whether the shipped configs put `target` at `path` (a moved class by its old path too)."""
    return target in CLASS_ALIASES or current_class_path(target) in shipped_targets().get(path, frozenset())


def _user_allows(target: str, modules: tuple[str, ...]) -> bool:
    return any(target == module or target.startswith(module + ".") for module in modules)


@cache
def shipped_targets() -> dict[str, frozenset[str]]:
    """Config path -> the `_target_` values the shipped conf/ tree holds there."""
    from importlib.resources import files

    return targets_of_tree(files("autoencoders.conf"))


def targets_of_tree(root: Any) -> dict[str, frozenset[str]]:
    """Config path -> the `_target_` values of a config tree (a folder or package resources). Each
    YAML file is placed at its package (its `# @package` header, else its group's path: conf/logger/
    csv.yaml at `logger`), and a file a defaults list includes `@` another package there as well."""
    texts = dict(_config_files(root, ""))
    found: dict[str, set[str]] = {}
    for name, text in texts.items():
        group = name.rpartition("/")[0]
        header = _PACKAGE_HEADER.search(text)
        _place(name, _absolute_package(header.group(1), group) if header else group.replace("/", "."), texts, found, 0)
    return {path: frozenset(targets) for path, targets in found.items()}


def _config_files(folder: Any, prefix: str) -> Iterator[tuple[str, str]]:
    """(name without .yaml, text) of every config file under a resources folder."""
    for entry in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if entry.is_dir():
            yield from _config_files(entry, f"{prefix}{entry.name}/")
        elif entry.name.endswith(".yaml"):
            yield f"{prefix}{entry.name[: -len('.yaml')]}", entry.read_text()


def _place(name: str, package: str, texts: dict[str, str], found: dict[str, set[str]], depth: int) -> None:
    """Record the targets of config `name` at `package`, and follow its defaults placed elsewhere."""
    import yaml

    content = yaml.safe_load(texts[name]) or {}
    if not isinstance(content, dict) or depth > 8:
        return
    for where, target in targets_in({key: value for key, value in content.items() if key != "defaults"}, package):
        if isinstance(target, str):
            found.setdefault(where, set()).add(target)
    group = name.rpartition("/")[0]
    for entry in content.get("defaults") or []:
        for included, placed in _included(entry, group, package):
            if included in texts:
                _place(included, placed, texts, found, depth + 1)


def _included(entry: Any, group: str, package: str) -> Iterator[tuple[str, str]]:
    """(config name, package) of each config a defaults entry places at a package of its own
    (`/shared/model@_here_`, `net@encoder: mlp`); entries without `@` keep their own package."""
    if isinstance(entry, str):
        pairs = [(entry, None)]
    elif isinstance(entry, dict):
        pairs = [(str(key).removeprefix("override").strip(), value) for key, value in entry.items()]
    else:
        return
    for where, option in pairs:
        if "@" not in where:
            continue
        where, placed = where.split("@", 1)
        options = option if isinstance(option, list) else [option]
        for chosen in options:
            name = where if chosen is None else f"{where}/{chosen}"
            name = name[1:] if name.startswith("/") else f"{group}/{name}".strip("/")
            yield name, _relative_package(placed, package)


def _absolute_package(header: str, group: str) -> str:
    """A `# @package` header's package (`_global_`, `_group_` or a path)."""
    header = header.replace("_group_", group.replace("/", "."))
    return header.removeprefix("_global_").lstrip(".")


def _relative_package(placed: str, package: str) -> str:
    """A defaults entry's `@package`, which is relative to the including config's package."""
    if placed == "_here_":
        return package
    if placed.startswith("_global_"):
        return placed.removeprefix("_global_").lstrip(".")
    return f"{package}.{placed}" if package else placed
