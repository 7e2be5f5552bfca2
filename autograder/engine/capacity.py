"""How many grading workers this machine holds: its cores and its memory.

Grades do not depend on ``--jobs`` (limits count CPU time, ``limits``), but more workers than
cores only make every notebook slower, and more workers than the memory holds make the kernels'
allocations fail inside students' cells (each worker's kernels may map ``memory_mb``). So the
default follows both (:func:`default_jobs`), and a ``--jobs`` past either gets a warning
(:func:`oversubscription_warnings`).
"""

from __future__ import annotations

import os


def cores() -> int:
    """The CPU cores this process may run on (its affinity mask: what a container or ``taskset``
    leaves it), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def available_memory_mb() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in MiB (what can be allocated without swapping), or
    None where there is no such file."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def default_jobs(memory_mb: int) -> int:
    """Workers for ``--jobs`` by default: one per core, no more than the available memory holds
    at ``memory_mb`` per worker, at least 1."""
    memory = available_memory_mb()
    by_memory = memory // memory_mb if memory and memory_mb else cores()
    return max(1, min(cores(), by_memory))


def oversubscription_warnings(jobs: int, memory_mb: int) -> list[str]:
    """One line per way ``jobs`` workers oversubscribe this machine (cores, memory), or none."""
    warnings = []
    if jobs > cores():
        warnings.append(f"warning: --jobs {jobs} is more than the {cores()} CPU cores here: grades stay the same "
                        "(the limits count CPU time), but every notebook takes longer; use --jobs "
                        f"{default_jobs(memory_mb)} or leave --jobs out")
    memory = available_memory_mb()
    if memory is not None and memory_mb and jobs * memory_mb > memory:
        warnings.append(f"warning: --jobs {jobs} x --memory-mb {memory_mb} is more than the {memory} MiB of memory "
                        "available here: a kernel's large allocations may fail inside a student's cell; use "
                        f"--jobs {default_jobs(memory_mb)} or a smaller --memory-mb")
    return warnings
