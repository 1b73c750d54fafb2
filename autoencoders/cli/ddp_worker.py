"""One worker process of a run that several processes train (DDP), started by the run's main
process on the same machine (autoencoders/distributed/ddp.py), not by users:

    python -m autoencoders.cli.ddp_worker <run-dir> --threads N [--checkpoint <file>] [--trust <target> ...]

It continues with the run's own config (config.yaml and its resumes) and the checkpoint the main
process resumes from, importing no class beyond the shipped configs' and those the main process
trains with (--trust, rundir/trust.py), and exits like ae-train: 0, 1 for a failure, 128 + N after signal N.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from autoencoders.cli import quick_exit
from autoencoders.errors import RunInterrupted, describe


def main(argv: list[str] | None = None) -> None:
    quick_exit()
    parser = argparse.ArgumentParser(prog="autoencoders.cli.ddp_worker", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--trust", action="append", default=[])
    args = parser.parse_args(argv)
    from autoencoders.console import log_to_console
    from autoencoders.rundir.resume import attempt_config
    from autoencoders.training.pipeline import train_worker

    log_to_console()
    try:
        train_worker(attempt_config(args.run_dir, args.trust), args.run_dir, args.checkpoint, args.threads)
    except RunInterrupted as stopped:
        sys.exit(128 + stopped.signal_number)
    except Exception as error:  # noqa: BLE001 - the main process reports the run's failure; this one says its own
        logging.getLogger("autoencoders").error("DDP worker of %s failed: %s", args.run_dir, describe(error))
        sys.exit(1)


if __name__ == "__main__":
    main()
