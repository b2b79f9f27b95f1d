"""Work your code hands to a pool of its own during a check: counted on the world's clock only while it will get a
worker without that clock moving (``submit_counted``), so what it does lands at the same simulated moment on every
run.

The check (``recorder``) and the grader's learner process (``sandbox.learner_threads``) hand a pool's work here; the
threads themselves are counted as :mod:`.watch` counts any thread of yours.
"""

from __future__ import annotations

import concurrent.futures
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .watch import Counted, ends_with

# Work waiting in a pool's queue counts (the clock waits for it) while the workers it waits for are free or at work: it
# then gets one at the same moment on every run. Not while they wait on its world's clock (asleep on it, or waiting for
# your next event): counted, it would hold the clock they wait for. It counts again before one of them goes on (wakes,
# or returns its work), while that one still holds the clock.


@dataclass(eq=False)
class _Queued:
    counted: Counted
    held: bool = False  # not counted: the workers it waits for wait on its clock


@dataclass(eq=False)
class _Pool:
    running: list[Counted] = field(default_factory=list)  # work of yours a worker took, not yet returned
    queued: list[_Queued] = field(default_factory=list)  # work of yours no worker took yet, in the queue's order


_POOLS: weakref.WeakKeyDictionary[Any, _Pool] = weakref.WeakKeyDictionary()
_POOLS_LOCK = threading.RLock()  # (re-entrant: a change it makes may be told back to it)


def _goes_on(running: Counted, world: object) -> bool:
    """Whether work a worker runs will free it without ``world``'s clock moving: it works, or waits on another world."""
    return running.clock.world is not world or (running.counting and not running.asleep)


def _balance(executor: Any, pool: _Pool) -> None:
    """(With ``_POOLS_LOCK``.) Count the queued work that gets a worker without its clock moving, and only that."""
    free = len(getattr(executor, "_threads", ())) - len(pool.running)
    for i, queued in enumerate(pool.queued):
        world = queued.counted.clock.world
        counts = i < free + sum(_goes_on(running, world) for running in pool.running)
        if counts and queued.held:
            queued.held = False
            queued.counted.up()
        elif not counts and not queued.held:
            queued.held = True
            queued.counted.down()


def submit_counted(executor: concurrent.futures.ThreadPoolExecutor, submit: Callable[..., Any],
                   job: Callable[..., Any], counted: Counted, *args: Any, **kwargs: Any) -> Any:
    """``submit(executor, job, ...)``: work of yours, counted from now (``counted``) until its future is done, except
    while it waits in the queue for workers that wait on its clock."""
    with _POOLS_LOCK:
        pool = _POOLS.setdefault(executor, _Pool())
        queued = _Queued(counted)
        pool.queued.append(queued)

    def rebalance() -> None:
        with _POOLS_LOCK:
            _balance(executor, pool)

    def taken(*a: Any, **k: Any) -> Any:
        with _POOLS_LOCK:
            if queued in pool.queued:
                pool.queued.remove(queued)
            pool.running.append(counted)
            if queued.held:  # (a worker no one foresaw: one busy with work not of yours, say)
                queued.held = False
                counted.up()
            counted.on_change = rebalance
        try:
            return job(*a, **k)
        finally:
            with _POOLS_LOCK:
                counted.on_change = None
                pool.running.remove(counted)
                _balance(executor, pool)  # (the next takes its worker: counted before this one ends)

    def forget(_: Any) -> None:  # (cancelled before a worker took it)
        with _POOLS_LOCK:
            if queued in pool.queued:
                pool.queued.remove(queued)
                _balance(executor, pool)

    try:
        future = submit(executor, taken, *args, **kwargs)
    except BaseException:  # (a pool shut down)
        with _POOLS_LOCK:
            pool.queued.remove(queued)
        counted.end()
        raise
    future.add_done_callback(forget)
    ends_with(future, counted)
    rebalance()  # (after the submit: it may have started a worker)
    return future
