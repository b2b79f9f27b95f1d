"""Work your code hands to a pool of its own during a check: counted on the world's clock only while it will get a
worker without that clock moving (``submit_counted``), so what it does lands at the same simulated moment on every
run.

The check (``recorder``) and the grader's learner process (``sandbox.learner_threads``) hand a pool's work here; the
threads themselves are counted as :mod:`.watch` counts any thread of yours.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import importlib
import importlib.util
import sys
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from .watch import BLOCKING, HANDED_OVER, Counted, ends_with, handed_over, yours

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


# --- multiprocessing's ThreadPool: its apply_async counted as an executor's submit ----------------------------------


class _ThreadPoolWorkers:
    """A ``multiprocessing.pool.ThreadPool`` as ``submit_counted`` sees an executor: its worker threads."""

    def __init__(self, pool: Any) -> None:
        self._pool = weakref.ref(pool)

    @property
    def _threads(self) -> list[Any]:
        pool = self._pool()
        return list(getattr(pool, "_pool", ())) if pool is not None else []


_WORKERS: weakref.WeakKeyDictionary[Any, _ThreadPoolWorkers] = weakref.WeakKeyDictionary()
#: Given the function your code hands a ThreadPool and the frame that handed it, its counted job and counting, or None
#: when that work is no job of the check's (the check's, or the grader's learner process's: ``count_thread_pools``).
#: Given None for the function, it only answers (None, or a pair of Nones), counting nothing.
Counting = Callable[[Optional[Callable[..., Any]], Any], Optional[tuple[Any, Any]]]


def count_thread_pools(counting: Counting) -> None:
    """Once ``multiprocessing.pool`` is loaded (a workbook imports it before its check): work your code hands a
    ThreadPool (``apply_async``, and ``map_async``, ``starmap_async``, ``imap``, ``imap_unordered``, handed element by
    element) counts as work submitted to a ``ThreadPoolExecutor`` does, so what it does lands at the same simulated
    moment on every run (it landed wherever the machine's speed put it). A callback runs before the work stops
    counting: what your code does there counts too. Its waits are refused in your handler as ``Future.result()`` is."""
    _anyio_to_thread_as_asyncios()
    pool_module = sys.modules.get("multiprocessing.pool")
    thread_pool = getattr(pool_module, "ThreadPool", None)  # (loaded, and whole)
    if thread_pool is None or getattr(thread_pool.apply_async, "counting", None) is counting:
        return
    BLOCKING.update(f.__code__ for f in (pool_module.Pool.apply, pool_module.Pool.map, pool_module.Pool.starmap,
                                         pool_module.Pool.__exit__, pool_module.Pool.join, pool_module.ApplyResult.get,
                                         pool_module.ApplyResult.wait, pool_module.IMapIterator.next,
                                         MapResult.get, MapResult.wait, imap_results))
    apply_async = getattr(thread_pool.apply_async, "original", thread_pool.apply_async)
    map_async = getattr(thread_pool._map_async, "original", thread_pool._map_async)
    imap = getattr(thread_pool.imap, "original", thread_pool.imap)
    imap_unordered = getattr(thread_pool.imap, "original_unordered", thread_pool.imap_unordered)

    def counted_apply_async(self: Any, func: Callable[..., Any], args: Any = (), kwds: Any = None,
                            callback: Any = None, error_callback: Any = None) -> Any:
        made = counting(func, _handed_by(sys._getframe(1)))
        if made is None:
            return apply_async(self, func, args, {} if kwds is None else kwds, callback, error_callback)
        return _apply_counted(self, apply_async, made, args, {} if kwds is None else kwds, callback, error_callback)

    def counted_map_async(self: Any, func: Callable[..., Any], iterable: Any, mapper: Any, chunksize: Any = None,
                          callback: Any = None, error_callback: Any = None) -> Any:
        frame = _handed_by(sys._getframe(1))
        if counting(None, frame) is None:  # (asked only: is this work to count?)
            return map_async(self, func, iterable, mapper, chunksize, callback, error_callback)
        star, items = mapper is pool_module.starmapstar, list(iterable)
        applied = MapResult(len(items), callback, error_callback)
        for index, item in enumerate(items):
            applied.results.append(_apply_counted(
                self, apply_async, counting(func, frame), tuple(item) if star else (item,), {},
                functools.partial(applied.one_done, index), applied.failed))
        applied.one_done(None, None)  # (all handed over)
        return applied

    def counted_imap(self: Any, func: Callable[..., Any], iterable: Any, chunksize: int = 1,
                     *, unordered: bool = False) -> Any:
        frame = _handed_by(sys._getframe(1))
        if counting(None, frame) is None:
            return (imap_unordered if unordered else imap)(self, func, iterable, chunksize)
        return imap_results([_apply_counted(self, apply_async, counting(func, frame), (item,), {}, None, None)
                             for item in list(iterable)])

    for patched, original in ((counted_apply_async, apply_async), (counted_map_async, map_async),
                              (counted_imap, imap)):
        patched.counting, patched.original = counting, original  # type: ignore[attr-defined]
    counted_imap.original_unordered = imap_unordered  # type: ignore[attr-defined]  (patched again: the pool's own)
    thread_pool.apply_async, thread_pool._map_async, thread_pool.imap = counted_apply_async, counted_map_async, \
        counted_imap
    thread_pool.imap_unordered = functools.partialmethod(counted_imap, unordered=True)


def _apply_counted(pool: Any, apply_async: Callable[..., Any], made: Any, args: Any, kwds: Any, callback: Any,
                   error_callback: Any) -> Any:
    """``apply_async`` of the counted job ``made`` (its counting ends once its callback has run)."""
    job, counted = made
    workers = _WORKERS.setdefault(pool, _ThreadPoolWorkers(pool))
    applied: list[Any] = []

    def submit(_workers: Any, taken: Callable[..., Any]) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def done(value: Any) -> None:
            try:
                if callback is not None:
                    callback(value)
            finally:
                future.set_result(value)

        def failed(error: BaseException) -> None:
            try:
                if error_callback is not None:
                    error_callback(error)
            finally:
                future.set_exception(error)

        applied.append(apply_async(pool, taken, args, kwds, done, failed))
        return future

    submit_counted(workers, submit, job, counted)  # type: ignore[arg-type]
    return applied[0]


class MapResult:
    """multiprocessing's ``MapResult``, for work handed element by element: its results in order, once all are in
    (the callback given them then, or the error callback the first error)."""

    def __init__(self, count: int, callback: Any, error_callback: Any) -> None:
        self.results: list[Any] = []
        self._values: list[Any] = [None] * count
        self._callback, self._error_callback = callback, error_callback
        self._left, self._lock, self._failed = count + 1, threading.Lock(), False  # (+1: until all are handed over)

    def one_done(self, index: Optional[int], value: Any) -> None:
        with self._lock:
            if index is not None:
                self._values[index] = value
            self._left -= 1
            last = self._left == 0 and not self._failed
        if last and self._callback is not None:
            self._callback(list(self._values))

    def failed(self, error: BaseException) -> None:
        with self._lock:
            first, self._failed = not self._failed, True
        if first and self._error_callback is not None:
            self._error_callback(error)

    def ready(self) -> bool:
        return all(r.ready() for r in self.results)

    def successful(self) -> bool:
        return all(r.successful() for r in self.results)

    def wait(self, timeout: Optional[float] = None) -> None:
        for result in self.results:
            result.wait(timeout)

    def get(self, timeout: Optional[float] = None) -> list[Any]:
        return [result.get(timeout) for result in self.results]


def imap_results(results: list[Any]) -> Any:
    """What ``imap`` gives back for work handed element by element: each result as it is asked for, in order."""
    for result in results:
        yield result.get()


def _handed_by(frame: Any) -> Any:
    """The frame that handed the work, past the pool's own (``apply`` calls ``apply_async``)."""
    pool_file = getattr(sys.modules.get("multiprocessing.pool"), "__file__", None)
    while frame is not None and frame.f_code.co_filename == pool_file:
        frame = frame.f_back
    return frame


def _anyio_to_thread_as_asyncios() -> None:
    """Where anyio is installed (Jupyter brings it): its ``to_thread.run_sync``, on the kit's loops, runs as
    ``asyncio.to_thread`` does, in the loop's executor, whose work the kit counts. anyio's own worker threads, which
    anyio starts, were not counted: the clock ran on while they worked, and an awaited write landed wherever the
    machine's speed put it. (Loaded now, once: a handler may import anyio as an event comes, too late to be seen.)"""
    if "anyio" not in sys.modules and importlib.util.find_spec("anyio") is None:
        return
    try:  # (anyio loads its asyncio backend only when first used)
        backend = importlib.import_module("anyio._backends._asyncio").AsyncIOBackend
    except (ImportError, AttributeError):  # (another anyio than the one this was written for: left as it is)
        return
    if getattr(backend.run_sync_in_worker_thread, "ldkkit", False):
        return
    anyios = backend.run_sync_in_worker_thread

    async def run_sync_in_worker_thread(cls: Any, func: Callable[..., Any], args: tuple[Any, ...],
                                        abandon_on_cancel: bool = False, limiter: Any = None) -> Any:
        loop = asyncio.get_running_loop()
        if not type(loop).__module__.startswith("ldkkit."):
            return await anyios(func, args, abandon_on_cancel, limiter)
        async with limiter or cls.current_default_thread_limiter():
            return await loop.run_in_executor(None, functools.partial(contextvars.copy_context().run, func, *args))

    run_sync_in_worker_thread.ldkkit = True  # type: ignore[attr-defined]
    backend.run_sync_in_worker_thread = classmethod(run_sync_in_worker_thread)


def count_thread_pools_in_checks() -> None:
    """``count_thread_pools`` for ``check`` (each check asks: a workbook may import the pool after the kit)."""
    count_thread_pools(_counted_in_a_check)


def _counted_in_a_check(fn: Optional[Callable[..., Any]], frame: Any) -> Optional[tuple[Any, Any]]:
    """As ``recorder._submit`` counts an executor's work: handed while an event is handled, or by a job of it."""
    from .recorder import _RECORDING

    recorder = _RECORDING.get()
    if recorder is None or not (HANDED_OVER.get() is not None or frame is not None and yours(frame)):
        return None
    if fn is None:
        return None, None
    job, counted = recorder.counted(fn, own_thread=False)
    handed_over(counted)
    return job, counted
