"""Several of the run's callbacks as one, for Lightning's sake.

Lightning calls every hook of every callback: six per training step (batch start and end, before
and after backward, before the optimizer step and before zero_grad), whether a callback defines
the hook or not, each call wrapped in the profiler and preceded by a look-up of the callback's
state key. With a dozen callbacks that is ~70 calls a step, nearly all of them to empty hooks.
The learning-rate monitor, the views and the signal stop need only a few hooks, two of them a
training batch's end (Throughput counts images; GracefulStop checks for a signal), so they are
grouped: Lightning sees one callback, which calls, for each hook, only the members that define
it, in order.

Members keep no state in checkpoints (a group's state would be saved under the group's key);
the constructor checks that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import MethodType
from typing import Any

import lightning as L

from autoencoders.machinery.optim import listens

# Every hook Lightning calls on a callback (its Callback class defines each as a no-op).
HOOKS = ("setup", "teardown", *sorted(name for name in vars(L.Callback) if name.startswith("on_")))
_STATE = ("state_dict", "load_state_dict")


class CallbackGroup(L.Callback):
    """Callbacks called as one, in the order given, each only for the hooks it defines."""

    def __init__(self, callbacks: Iterable[L.Callback]) -> None:
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            if any(listens(callback, name) for name in _STATE):
                raise ValueError(f"{type(callback).__name__} keeps state in checkpoints: it cannot be grouped")
        self.members: dict[str, list[Callable]] = {
            name: [getattr(callback, name) for callback in self.callbacks if listens(callback, name)] for name in HOOKS
        }
        for name, members in self.members.items():
            if not members:  # Lightning calls Callback's no-op, and `listens` sees that no member does
                setattr(self, name, MethodType(getattr(L.Callback, name), self))


def _forward(name: str) -> Callable:
    def hook(self: CallbackGroup, *args: Any, **kwargs: Any) -> None:
        for member in self.members[name]:
            member(*args, **kwargs)

    hook.__name__ = hook.__qualname__ = name
    return hook


for _name in HOOKS:
    setattr(CallbackGroup, _name, _forward(_name))
