"""Threads the learner's code starts while an event is handled, in the grader's learner process.

As in the check (``ldkkit.exercises.recorder``: ``counted``, ``_start``, ``_submit``), a thread the learner's own code
starts while an event is handled, or work it submits to a pool of its own, is a job: the clock waits for it while it
works, not while it waits on another thread, until the code that counts wakes it (``watch.Counted``). It runs in
the context it was started in, so its calls name the event, and what it starts or submits counts too.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import functools
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

from ..exercises.pools import count_thread_pools, submit_counted
from ..exercises.watch import (
    HANDED_OVER,
    Alarm,
    Counted,
    handed_over,
    sleeping_on,
    timer_run,
    yours,
)
from .virtual_loop import ORIGIN as _ORIGIN
from .virtual_loop import VirtualLoop

if TYPE_CHECKING:
    from .child import Learner

#: The learner's threads (and pool work) at work now, as the check watches each (``recorder._Clock``): the number of the
#: event whose handling started or woke it, and when it began to work (or woke from a sleep on the clock).
WORKING: dict[Counted, tuple[int, float]] = {}
#: Each of the learner's threads (and pool work) that has counted, with the number of the event whose handling started
#: or last woke it: a worker started in one play and woken by a later play's event works for that play, which the check
#: plays on for (``Learner.working``), as ``recorder._Clock`` does for the check's.
WORKED_FOR: dict[Counted, int] = {}


#: Errors raised in threads of the learner's own (the event's number, the error): told to the grader at the next idle.
THREAD_ERRORS: list[tuple[int, BaseException]] = []


class LoopClock:
    """The learner process's clock, in which the learner's threads count (``watch.Counted``)."""

    def __init__(self, loop: VirtualLoop) -> None:
        self.loop = loop

    @property
    def world(self) -> object:
        return self.loop

    def now_us(self) -> int:
        return self.loop.now_us

    def start(self, counted: Counted) -> Callable[[], None]:
        origin = _ORIGIN.get()  # (whoever starts or wakes it, in its context)
        WORKING[counted], WORKED_FOR[counted] = (origin, time.monotonic()), origin
        done = self.loop.job_started()

        def stop() -> None:
            WORKING.pop(counted, None)
            done()

        return stop

    def sleep(self, counted: Counted, seconds: float) -> bool:
        working = WORKING.pop(counted, None)  # (its own wait for the clock is no work, as in the check)
        slept = self.loop.sleep_job(seconds)
        if working is not None and slept and counted.counting:
            WORKING[counted] = (working[0], time.monotonic())
        return slept

    def alarm(self, alarm: Alarm, seconds: float) -> bool:
        return self.loop.alarm_job(alarm, seconds)


def counting(loop: VirtualLoop, fn: Callable[..., Any], own_thread: bool) -> tuple[Callable[..., Any], Counted]:
    """``fn`` as a job of ``loop`` from now, and its counting (to ``end`` if ``fn`` never runs; a pool's work ends
    when its future is done)."""
    counted = Counted(LoopClock(loop))
    counted.up()
    context = contextvars.copy_context()
    origin = context.run(_ORIGIN.get)

    def counted_fn(*args: Any, **kwargs: Any) -> Any:
        counted.bind()
        try:
            with sleeping_on(counted.sleep):  # (time.sleep on the loop's clock, as in the check)
                return context.run(fn, *args, **kwargs)
        except BaseException as e:  # a thread's own: the grader tells it, with its event, as the check does
            if not own_thread:
                raise  # (a pool's future holds it, for the learner's code)
            THREAD_ERRORS.append((origin, e))
            return None
        finally:
            if own_thread:
                counted.end()

    return counted_fn, counted


def count_threads(learner: Learner) -> None:
    """Make threads and pool work the learner's code starts while an event is handled jobs of the learner's loop (the
    world's now)."""
    start, submit = threading.Thread.start, concurrent.futures.ThreadPoolExecutor.submit

    def counting_start(self: threading.Thread) -> None:
        if not (_ORIGIN.get() and yours(sys._getframe(1))):
            return start(self)
        run = timer_run(self) if isinstance(self, threading.Timer) else self.run
        self.run, counted = counting(learner.loop, run, own_thread=True)  # type: ignore[method-assign]
        try:
            return start(self)
        except BaseException:  # (no thread to wait for: the sandbox's limit on threads, say)
            counted.end()
            raise

    def counting_submit(self: concurrent.futures.ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any,
                        **kwargs: Any) -> concurrent.futures.Future[Any]:
        if not (_ORIGIN.get() and (HANDED_OVER.get() is not None or _submitted_by_you(sys._getframe(1)))):
            return submit(self, fn, *args, **kwargs)
        job, counted = counting(learner.loop, fn, own_thread=False)
        handed_over(counted)
        return submit_counted(self, submit, job, counted, *args, **kwargs)

    threading.Thread.start = counting_start  # type: ignore[method-assign]
    concurrent.futures.ThreadPoolExecutor.submit = counting_submit  # type: ignore[method-assign]

    def counting_pool_work(fn: Optional[Callable[..., Any]], frame: Any) -> Optional[tuple[Any, Any]]:
        if not (_ORIGIN.get() and (HANDED_OVER.get() is not None or frame is not None and yours(frame))):
            return None
        if fn is None:  # (asked only)
            return None, None
        job, counted = counting(learner.loop, fn, own_thread=False)
        handed_over(counted)
        return job, counted

    learner.count_thread_pools = functools.partial(count_thread_pools, counting_pool_work)  # (once the cells ran)


def _submitted_by_you(frame: Any) -> bool:
    """Whether the learner's code submitted the work: itself, or through the pool's own helpers (``Executor.map``)."""
    while frame is not None and frame.f_code.co_filename == concurrent.futures._base.__file__:
        frame = frame.f_back
    return frame is not None and yours(frame)
