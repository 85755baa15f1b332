"""How much of a machine one task may take: CPU threads, and how many model-holding tasks run at once.

Every model-holding stage (Spleeter and ina on TensorFlow, Resemblyzer on
torch, Whisper on CTranslate2, DNSMOS on onnxruntime) would start one thread
per core by default. Two such tasks side by side on a worker would then run
twice as many threads as there are cores and slow each other down, and enough
of them would run the worker out of memory. So the numbers are settings
(`resources:`), and their automatic values are computed here, from the
machine's cores and memory, the same way for the Airflow pool, the Celery
worker's concurrency and each task's threads:

- `tasks_per_worker`: min(cores, memory / task_memory_gb), at least 1;
- `heavy_slots` (the `nr4dl_heavy` pool, over all workers): tasks_per_worker,
  right for one machine; set it to the sum over the workers in scale-out;
- threads of one task in Airflow: cores / tasks_per_worker; outside Airflow
  (`nr4dl process`, the benchmark) one task has the machine: every core.

Cores and memory are the smaller of the machine's and the container's limits
(cgroup v2, or v1 where a host still mounts it, as Docker and podman do on
such hosts), so a worker in a container with `cpus:` or a memory limit sizes
itself to them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import os
from pathlib import Path

from nr4dl_tasks.core.settings import ResourceSettings, Settings

CGROUP_MEMORY_LIMIT = Path("/sys/fs/cgroup/memory.max")
CGROUP_CPU_LIMIT = Path("/sys/fs/cgroup/cpu.max")  # "<quota> <period>" or "max <period>" (cgroup v2)
# cgroup v1: the quota (-1: none) and its period in two files; no memory limit reads as a huge number
CGROUP_V1_CPU_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_CPU_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
CGROUP_V1_MEMORY_LIMIT = Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")


def _cgroup_limit(path: Path) -> list[int] | None:
    """The numbers of a cgroup v2 limit file, or None where there is no such file or no limit ("max")."""
    try:
        fields = path.read_text().split()
        return None if not fields or fields[0] == "max" else [int(f) for f in fields]
    except (OSError, ValueError):
        return None


def _cpu_quota() -> list[int] | None:
    """A container's CPU quota as [quota, period] (cgroup v2, else v1), or None where it has none."""
    if quota := _cgroup_limit(CGROUP_CPU_LIMIT):
        return quota
    v1 = [_cgroup_limit(CGROUP_V1_CPU_QUOTA), _cgroup_limit(CGROUP_V1_CPU_PERIOD)]
    return [v1[0][0], v1[1][0]] if v1[0] and v1[1] and v1[0][0] > 0 else None


def cores() -> int:
    """Cores this process may use: its CPU affinity (taskset, a cpuset), or a container's CPU quota if lower."""
    count = len(os.sched_getaffinity(0)) or 1
    if (quota := _cpu_quota()) and len(quota) == 2:
        count = min(count, max(1, math.ceil(quota[0] / quota[1])))
    return count


def memory_gb() -> float:
    """Memory of this machine, or of its container when a cgroup limit is lower, in GB (2**30 bytes)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if limit := _cgroup_limit(CGROUP_MEMORY_LIMIT) or _cgroup_limit(CGROUP_V1_MEMORY_LIMIT):
        total = min(total, limit[0])
    return total / 2**30


def tasks_per_worker(cfg: ResourceSettings) -> int:
    """Tasks one worker runs at once: the setting, or as many as its cores and memory allow."""
    return cfg.tasks_per_worker or max(1, min(cores(), int(memory_gb() // cfg.task_memory_gb)))


def heavy_slots(cfg: ResourceSettings) -> int:
    """Slots of Airflow's nr4dl_heavy pool: the setting, or what one machine holds."""
    return cfg.heavy_slots or tasks_per_worker(cfg)


def threads(settings: Settings) -> int:
    """CPU threads the running task gives its math libraries: the setting, or every core (one task at a time)."""
    return settings.resources.threads or cores()


def shared_worker(settings: Settings) -> Settings:
    """The settings of a task that shares its worker with others (an Airflow task): unless `resources.threads`
    is set, it takes its share of the cores, cores / tasks_per_worker."""
    cfg = settings.resources
    if cfg.threads:
        return settings
    share = max(1, cores() // tasks_per_worker(cfg))
    return settings.model_copy(update={"resources": cfg.model_copy(update={"threads": share})})


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    lib = ctypes.CDLL(name) if name else None
    return lib if lib is not None and hasattr(lib, "malloc_trim") else None  # glibc only


def return_freed_memory() -> None:
    """Give the memory a stage has freed back to the system (glibc's malloc_trim).

    glibc keeps freed heap pages for reuse; after one stage's batches of
    network activations they stay counted in the process's RSS through every
    later stage of the file (1.3 GB after CAM++'s turn windows in batches of
    64 on the benchmark's 10-minute input, docs/throughput.md). Once per stage;
    after every clip of that measurement it made the windows 50 % slower.
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
