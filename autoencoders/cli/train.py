"""`ae-train`: the command line around a run.

    ae-train [overrides]                       one run (Hydra composes conf/ and the overrides)
    ae-train -m [sweep overrides]              a multirun; a failing job never stops the others
    ae-train resume=<run-dir> [key=value ...]  continue an interrupted or finished run
    ae-train resume=<run-dir>/checkpoints/<file>.ckpt [key=value ...]   ... from that checkpoint
    ae-train resume=<run-dir> trust=[mymodule]  ... of a run naming classes of your own module

Errors end as one paragraph and exit code 1 (the traceback only with HYDRA_FULL_ERROR=1);
SIGINT/SIGTERM end with resumable checkpoints and exit code 128 + the signal number.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from autoencoders.cli import quick_exit
from autoencoders.errors import RunInterrupted
from autoencoders.training.sweep import FAILURES, SWEEP_SUMMARY, job_dirname

# A per-process token in run directory names (conf/train.yaml): two runs started in the same
# second differ. use_cache keeps one value per composed config, so every reference agrees.
OmegaConf.register_new_resolver(
    "run_token", lambda: f"{os.getpid()}{secrets.token_hex(2)}", use_cache=True, replace=True
)
# Sweep job folders (conf/train.yaml): their overrides, shortened with a hash past the file system's limit.
OmegaConf.register_new_resolver("job_dirname", job_dirname, replace=True)


@hydra.main(config_path="pkg://autoencoders.conf", config_name="train", version_base="1.3")
def hydra_main(cfg: DictConfig) -> dict[str, float] | float | None:
    """One Hydra job (autoencoders.training.job.run_job; imported here, so that --help stays light)."""
    from autoencoders.training import job

    return job.run_job(cfg)


def main() -> None:
    """Console entry point of `ae-train`."""
    quick_exit()
    FAILURES.clear()
    SWEEP_SUMMARY.clear()
    resume = [arg for arg in sys.argv[1:] if arg.startswith("resume=")]
    try:
        if resume:
            from autoencoders.training import job

            target = Path(resume[0].split("=", 1)[1]).expanduser()
            others = [arg for arg in sys.argv[1:] if not arg.startswith("resume=")]
            if target.suffix == ".ckpt":  # <run>/checkpoints/<file>.ckpt (or <run>/attempt/checkpoints/)
                from autoencoders.rundir.attempt import run_of_checkpoint

                job.resume_run(run_of_checkpoint(target), others, checkpoint=target)
            else:
                job.resume_run(target, others)
        else:
            hydra_main()
    except RunInterrupted as stopped:
        print(f"ae-train: {stopped}", file=sys.stderr)
        sys.exit(128 + stopped.signal_number)
    except KeyboardInterrupt:  # Ctrl-C before any run directory was touched (imports, composing)
        print("ae-train: stopped by SIGINT before the run started; nothing was kept.", file=sys.stderr)
        sys.exit(130)
    if SWEEP_SUMMARY:  # a sweep: its jobs' errors were logged as they failed; here, the list
        print(f"ae-train: {len(SWEEP_SUMMARY)} run(s) did not complete:", file=sys.stderr)
        for line in SWEEP_SUMMARY:
            print(f"  {line}", file=sys.stderr)
    if FAILURES or SWEEP_SUMMARY:  # a single run printed its error once, as it failed
        sys.exit(1)


if __name__ == "__main__":
    main()
