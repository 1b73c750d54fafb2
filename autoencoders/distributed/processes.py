"""Which process of a run this is. Several processes run one run under DDP: global rank 0 is the
run itself (it holds the run directory's lock and writes the record, config.yaml, the views and
the evaluations); the others are its workers, which train and test their shard and write nothing
of their own. Light on purpose: the job decides its role before torch is imported.
"""

from __future__ import annotations

import os


def global_rank() -> int:
    """This process's global rank, from the variables Lightning's launcher, torchrun or Slurm set
    (0 for a process nobody started as a worker)."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ:
        return int(os.environ["SLURM_PROCID"])
    node, per_node = int(os.environ.get("NODE_RANK", "0")), int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return node * per_node + int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    return global_rank() == 0


def cluster_job() -> str | None:
    """The cluster job step this process belongs to when a cluster started the run's processes
    (Slurm's srun, torchrun), so that they can find each other's decisions; None otherwise."""
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_JOB_ID" in os.environ:
        return f"slurm-{os.environ['SLURM_JOB_ID']}.{os.environ.get('SLURM_STEP_ID', '0')}.{os.environ.get('SLURM_RESTART_COUNT', '0')}"
    if "TORCHELASTIC_RUN_ID" in os.environ:
        return f"torchrun-{os.environ['TORCHELASTIC_RUN_ID']}.{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    return None
