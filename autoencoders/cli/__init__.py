"""The entry points; each parses its command line, calls one function of the package, and reports.

train.py       ae-train (Hydra's entry function hydra_main)
evaluate.py    ae-eval
compare.py     ae-compare
predict.py     ae-predict
ddp_worker.py  one worker process of a DDP run, started by the run's main process
"""

from __future__ import annotations

import atexit
import gc

_registered = False


def quick_exit() -> None:
    """At exit, after every atexit handler registered later has run (trackers, loggers; logging's
    own flush runs after this one), move every object out of the garbage collector's reach
    (`gc.freeze`), so the interpreter's last collections do not walk them one by one.

    After `import lightning` that walk is most of the interpreter's shutdown: 1.9-2.9 s of a
    1-epoch ae-train process on our shared 2-core machine, 0.3-0.5 s with the objects frozen
    (scripts/bench_startup.py, bench/results.md).
    Nothing is lost: files are closed by the code that wrote them and every handler still runs;
    only objects left in reference cycles are not finalized, which Python never promises at exit.
    """
    global _registered
    if not _registered:
        atexit.register(gc.freeze)
        _registered = True
