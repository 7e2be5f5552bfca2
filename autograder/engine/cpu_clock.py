"""The CPU time of a process tree: what the grader's cell and notebook limits count.

Why CPU time, not the wall clock. A wall-clock limit measures the machine as much as the
notebook: on a machine whose cores are busy with other work (an instructor's other jobs, or
``--jobs`` higher than the cores), a correct cell that needs 30 s of computation may take 200 s to
get it, and a 120 s limit fails it. The CPU time Linux charges to the kernel's processes
(``utime + stime`` in ``/proc/<pid>/stat``) is what the cell itself computed: about the same
quietly and under load, so the same notebook gets the same grade on any machine at any load. A
wall-clock limit several times larger stays behind it as a backstop, for cells that wait
without computing (``time.sleep``, a blocked read) and so never use CPU.

How the tree is counted (:class:`ProcessTreeClock`). The roots are given (a kernel's launcher,
the zygote that forks the kernels, bwrap around it); every sample walks ``/proc`` for their
descendants (a sandboxed kernel lives in its own PID namespace, but this namespace's ``/proc``
shows it with its outside pid). Each process's ``utime + stime`` is kept as a per-process
maximum, keyed by pid *and* start time (a reused pid is another process), so the sum never goes
down when a process dies: what it used stays counted. ``cutime``/``cstime`` (the CPU of reaped
children) are not added: those children were counted while they lived, and adding them again
would count them twice. A process once seen stays followed after its parent dies (reparented to a
subreaper outside the roots, it is still found). What a process used after the last sample
before it died is lost (at most one polling interval, ~0.5 s, per process that dies), and a
process that starts and dies between two samples is not seen at all: the count can be a little
low, never high.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

#: Clock ticks per second of the utime/stime fields of /proc/<pid>/stat.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: How often the grader samples a running cell's or notebook's clock.
POLL_SECONDS = 0.5


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), or None when the
    process is gone. (The name, in parentheses, may hold spaces and parentheses itself.)"""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_table() -> dict[int, tuple[int, int, int]]:
    """``{pid: (parent pid, start time, utime + stime in ticks)}`` of every process this PID
    namespace's ``/proc`` shows (empty where there is no ``/proc``)."""
    table = {}
    try:
        entries = [entry for entry in os.listdir("/proc") if entry.isdigit()]
    except FileNotFoundError:
        return table
    for entry in entries:
        fields = _stat_fields(int(entry))
        if fields is None:
            continue
        try:  # after the name: state ppid ... utime(12) stime(13) ... starttime(20)
            table[int(entry)] = (int(fields[1]), int(fields[19]), int(fields[11]) + int(fields[12]))
        except (IndexError, ValueError):
            continue
    return table


def _tree(roots: Iterable[int], table: dict) -> set[int]:
    """The pids of ``roots`` and of every process below them, as far as ``table`` holds them."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, pending = set(), list(roots)
    while pending:
        pid = pending.pop()
        if pid not in found:
            found.add(pid)
            pending.extend(children.get(pid, []))
    return found & table.keys()


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (not ``pid`` itself), read from /proc; empty where there is none."""
    return sorted(_tree([pid], process_table()) - {pid})


class ProcessTreeClock:
    """CPU seconds used by the processes of ``roots`` and all their descendants since this clock
    was made (see the module's docstring for what is counted and why).

    ``roots``: pids, or a callable returning them (asked at every sample: a kernel restarted
    under a new launcher is found). A root that does not exist counts nothing. :meth:`seconds`
    never decreases.
    """

    def __init__(self, roots):
        self._roots = roots if callable(roots) else (lambda pids=tuple(roots): pids)
        self._most: dict[tuple[int, int], int] = {}  # (pid, start time): the most ticks seen
        self._start_ticks = 0
        self._start_ticks = self._sample()

    def _sample(self) -> int:
        table = process_table()
        followed = [pid for pid, start in self._most if pid in table and table[pid][1] == start]
        for pid in _tree([*self._roots(), *followed], table):
            _, start, ticks = table[pid]
            key = (pid, start)
            self._most[key] = max(self._most.get(key, 0), ticks)
        return sum(self._most.values()) - self._start_ticks

    def seconds(self) -> float:
        """CPU seconds (user + system) the tree has used since the clock was made."""
        return self._sample() / CLOCK_TICKS

    def processes(self) -> int:
        """How many processes the clock has seen (alive or not)."""
        return len(self._most)


def launcher_pid(kernel_manager) -> int | None:
    """The pid of the process a jupyter_client kernel manager started for its kernel (the
    kernelspec's program: the kernel itself, or the pre-warmed launcher), or None."""
    process = getattr(getattr(kernel_manager, "provisioner", None), "process", None)
    return getattr(process, "pid", None)
