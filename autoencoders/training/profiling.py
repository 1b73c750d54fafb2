"""The Trainer's profiler when the config asks for none: one that does nothing, cheaply.

Lightning wraps every hook it calls (each callback's, the model's, the strategy's: about a
hundred per training step with our callbacks) in `trainer.profiler.profile(name)`. Its default,
PassThroughProfiler, inherits that method as a generator-based context manager: one generator
per call, ~1 µs each, about 0.1 ms per step that measures nothing. `NoProfiler` hands back one
shared do-nothing context instead. `++trainer.profiler=simple` (or any other) replaces it as
before.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from lightning.pytorch.profilers import PassThroughProfiler

_NOTHING = nullcontext()  # reusable: entering and leaving it keeps no state


class NoProfiler(PassThroughProfiler):
    """PassThroughProfiler without the generator per profiled action."""

    def profile(self, action_name: str) -> AbstractContextManager:
        return _NOTHING
