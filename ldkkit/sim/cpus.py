"""Keeping the world and its participants' threads on one CPU while they take turns (Linux's CPU affinity).

Not LDK's: the simulation's own concern. A play hands the turn between the world's thread and a background
processor's hundreds of times, and only one of them runs at a time.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def one_cpu() -> Iterator[None]:
    """Keep this thread, and the threads it starts meanwhile (a background processor's), on the CPU it is on.

    The world and a participant's thread take turns, hundreds of times a check, and only one of them runs at a
    time. On two CPUs each hand-over wakes the other CPU, where the woken thread at once waits for the GIL that
    the waker still holds: the capstone's plays under a ``BackgroundProcessor`` spent a fifth of their CPU time in
    the kernel, and take a seventh less on one CPU (``bench/where_time_goes.py``). The thread's CPUs are given back
    on leaving (a thread or process started meanwhile that outlives the block keeps the one CPU). Linux only:
    elsewhere, and where the CPU cannot be told or the kernel refuses, nothing changes.
    """
    allowed, cpu = _allowed_cpus(), _current_cpu()
    pinned = allowed is not None and cpu in allowed and len(allowed) > 1 and _set_cpus({cpu})
    try:
        yield
    finally:
        if pinned:
            _set_cpus(allowed)  # type: ignore[arg-type]


def _set_cpus(cpus: set[int]) -> bool:
    """Give this thread these CPUs; False if the kernel refuses (a container's limits, CPUs taken meanwhile): the
    thread then stays where it is, and the play only runs as before. Not inside ``one_cpu``'s ``yield``, so that an
    error of the play is never shown as raised while handling this one."""
    try:
        os.sched_setaffinity(0, cpus)  # (0: this thread; a thread starts with its creator's CPUs)
        return True
    except OSError:
        return False


def _allowed_cpus() -> set[int] | None:
    try:
        return os.sched_getaffinity(0)
    except (AttributeError, OSError):  # not Linux
        return None


def _current_cpu() -> int | None:
    """The CPU this thread last ran on: field 39 of ``/proc/thread-self/stat`` (the 37th after the name's ")")."""
    try:
        with open("/proc/thread-self/stat", "rb") as stat:
            return int(stat.read().rpartition(b")")[2].split()[36])
    except (OSError, IndexError, ValueError):
        return None
