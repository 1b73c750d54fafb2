"""Deprecated: the runs wing was split into wings of one job each (CHANGELOG.md, 0.2.0).

`autoencoders.runs.<module>` still imports, for one release, as the module it became, with a
DeprecationWarning: old scripts, notebooks and the Hydra callbacks in an old run's saved
.hydra/hydra.yaml (`autoencoders.runs.job.OutputDirectoryCheck`) keep working. New code imports
the new names.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

MOVED = {
    "checkpointing": "autoencoders.rundir.checkpoints",
    "checkpoints": "autoencoders.rundir.checkpoints",
    "ddp": "autoencoders.distributed.ddp",
    "evaluate_run": "autoencoders.evaluation.finished_run",
    "job": "autoencoders.training.job",
    "loading": "autoencoders.rundir.loading",
    "lock": "autoencoders.rundir.lock",
    "logs": "autoencoders.console",
    "processes": "autoencoders.distributed.processes",
    "progress": "autoencoders.console",
    "record": "autoencoders.rundir.record",
    "report": "autoencoders.console",
    "resume": "autoencoders.rundir.resume",
    "signals": "autoencoders.training.signals",
    "sweep": "autoencoders.training.sweep",
    "torch_setup": "autoencoders.distributed.torch_setup",
    "train": "autoencoders.training.pipeline",
    "trainer": "autoencoders.training.trainer",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `autoencoders.runs.<old>` and hands out the module it moved to (the same object, so
    classes compare equal and isinstance works across old and new names)."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        prefix, _, name = fullname.rpartition(".")
        if prefix != __name__ or name not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name.rpartition(".")[2]]
        warnings.warn(
            f"{spec.name} moved to {new}; import it from there (the old name goes in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        pass  # the module it moved to is already executed


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())


def __getattr__(name: str) -> ModuleType:  # `from autoencoders.runs import job`
    if name in MOVED:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
