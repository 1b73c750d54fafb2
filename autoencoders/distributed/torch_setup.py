"""Process set-up every run shares: the thread policy (threads per job of a sweep, per process
of a DDP run), denormals, and Lightning's CUDA check."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


def resolve_threads(torch_threads: int | None, processes: int = 1) -> int:
    """Threads for torch: the configured number, or automatic (see threads_per_job),
    shared by the `processes` a DDP run starts on this machine."""
    if torch_threads is not None:
        return torch_threads
    launcher = HydraConfig.get().launcher if HydraConfig.initialized() else None
    return max(1, threads_per_job(launcher) // processes)


def threads_per_job(launcher: DictConfig | None) -> int:
    """Automatic torch threads: the cores but one, divided among a parallel launcher's jobs,
    at least 1 and at most 4; on Ray, the CPUs Ray gave the job's task.

    The spare core is deliberate: when anything else runs (TensorBoard, another job, the OS),
    intra-op threads that need every core stall. On 2 cores an mlp step went from 5.5 ms to
    92 ms with 2 threads under load, while 1 thread costs ~10 % when the machine is quiet.
    """
    if launcher is not None and "RayLauncher" in str(launcher.get("_target_", "")):
        return _ray_task_cpus()
    cores = os.cpu_count() or 1
    jobs = 1
    if launcher is not None and "joblib" in str(launcher.get("_target_", "")):
        n_jobs = int(launcher.get("n_jobs", -1))
        jobs = cores if n_jobs < 1 else n_jobs
    return max(1, min(4, (cores - 1) // jobs))


def _ray_task_cpus() -> int:
    """The CPUs Ray assigned to the task running this job (a task asks for 1 unless the launcher's
    `ray.remote.num_cpus` says more)."""
    import ray

    if not ray.is_initialized():
        return 1
    return max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))


def set_up_torch(threads: int) -> None:
    """torch's intra-op threads, and denormal floats flushed to zero on the CPU.

    Late in training, Adam's running averages and some gradients fall into float32's denormal
    range (below 1.2e-38), where x86 arithmetic is many times slower: the mlp's CPU time per
    step grew from 10.7 to 16.8 ms over 9 epochs here, and stayed at 10.7 with flushing.
    Zero instead of a denormal changes nothing a float32 model can resolve. torch's worker
    threads copy the setting when they start, so call this before torch's first parallel
    operation, as train() and ae-eval do (later, only the calling thread gets it).
    """
    import torch

    torch.set_flush_denormal(True)
    torch.set_num_threads(threads)


@contextmanager
def cuda_check_without_nvml() -> Iterator[None]:
    """Within the block, torch's "is CUDA available?" uses its cached CUDA runtime answer.

    Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 on import, so that merely asking does not
    initialize CUDA before a fork. torch's optimizers ask on every step, and on a machine
    without an NVIDIA driver the NVML route loads (and fails to load) libnvidia-ml each time:
    66 µs a step here, 1 % of an mlp step. Training and testing fork nothing (no DataLoader
    workers), and the device is chosen by then.
    """
    saved = os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = saved
