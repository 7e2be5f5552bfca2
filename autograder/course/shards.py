"""Shards of a course, and the locks that keep grading runs on one course apart.

**Shards.** ``grade --course PATH --shard K/N`` grades only the students of shard ``K`` of ``N``
(``0 <= K < N``, numbered from 0 as SLURM's ``--array=0-(N-1)`` and Kubernetes'
``JOB_COMPLETION_INDEX`` are). A student's shard is the first 8 bytes of the SHA-256 of their id
(UTF-8), read as a big-endian integer, modulo ``N``: the same on every machine and in every Python
run (Python's own ``hash()`` of a string is salted per process), so ``N`` processes started
anywhere, by any scheduler, each with its own ``K``, grade every student exactly once. All of a
student's notebooks are in the same shard, so no two shards ever write the same rows of the
gradebook or the same ``autograded/<student>/`` folder.

**Locks** (``fcntl.flock`` on a file in ``COURSE/.xai-kit/``; released by the kernel when the
process ends, however it ends, so a crashed run never leaves a stale lock):

- a SQLite gradebook (the default) takes one writer: every run on the course, sharded or not,
  takes ``grade.lock``; a second run waits for the first, saying who holds it, and then grades
  what is still new (shards on one SQLite course therefore run one after the other);
- a database server (PostgreSQL) takes concurrent writers, each merge one transaction: a run
  takes ``grade-shard-K-of-N.lock`` only, so shards run side by side and a shard started twice
  (a scheduler's retry while the first still runs) waits for itself.

flock works across machines on NFSv4 and most cluster file systems that hold a shared course
folder; on one without it, ``flock`` raises and the run stops with that error before grading.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

from autograder.course.folder import Course, CourseError


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``Shard(0, 1)``: every student)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"K/N"`` (e.g. ``"3/10"``), checked; a clear :class:`CourseError` otherwise."""
        index, slash, count = str(text).partition("/")
        try:
            shard = cls(int(index), int(count))
        except ValueError:
            shard = None
        if not slash or shard is None or shard.count < 1 or not 0 <= shard.index < shard.count:
            raise CourseError(f"--shard takes K/N with 0 <= K < N (shards are numbered from 0, as SLURM's "
                              f"--array=0-(N-1) and Kubernetes' JOB_COMPLETION_INDEX are), not {text!r}")
        return shard

    def holds(self, student: str) -> bool:
        return shard_of(student, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(student: str, count: int) -> int:
    """The shard (``0 .. count-1``) of ``student``: stable across machines and Python runs."""
    return int.from_bytes(hashlib.sha256(student.encode("utf-8")).digest()[:8], "big") % count


def lock_name(course: Course, shard: Shard) -> str:
    """The lock a run on ``course`` takes: one for the whole course on SQLite, one per shard on a server."""
    return "grade.lock" if course.db_is_sqlite else f"grade-shard-{shard.index}-of-{shard.count}.lock"


@contextmanager
def grading_lock(course: Course, shard: Shard = Shard()):
    """Hold the run's lock (see the module docstring) while the block runs; wait for it, once said on
    stderr, when another run holds it. The lock file names its holder (pid, host, start)."""
    path = course.state_folder / lock_name(course, shard)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 4096, 0).decode(errors="replace").strip() or "unknown"
            print(f"another `grade --course` run holds {path} ({holder}); "
                  f"{'a SQLite gradebook takes one writer: ' if course.db_is_sqlite else ''}"
                  "waiting for it to finish (Ctrl-C stops waiting)", file=sys.stderr, flush=True)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "shard": str(shard),
                  "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(holder).encode(), 0)
        yield
    finally:
        os.close(descriptor)  # releases the lock


@contextmanager
def locked_file(path):
    """An exclusive ``flock`` on ``path + ".lock"`` while the block runs (short read-modify-writes)."""
    descriptor = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)
