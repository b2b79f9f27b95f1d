"""The learner process's asyncio loop: it runs on the grader's world clock, in steps.

The grader says what time it is; the loop runs what is due then and says when it next needs to run. Work the
learner's code starts on other threads (``asyncio.to_thread``, threads and pools started while an event is handled)
is counted as jobs, and the clock waits for them, as the check's world does (``Runtime.jobs``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import weakref
from collections.abc import Callable
from typing import Any, Optional

from ..exercises.watch import HANDED_OVER, Counted
from ..sim.runtime import DelegatingSelector

#: The number of the event whose handler call (or spawned task) is running: calls name it.
ORIGIN: contextvars.ContextVar[int] = contextvars.ContextVar("ldkkit_origin", default=0)
#: The task running the current hand-over's handler (``Learner.hand_over``): its own code, not a task it spawned.
HANDLER_TASK: list[Optional[asyncio.Task[Any]]] = [None]


def by_the_handler() -> bool:
    """Whether the handler's own code runs now (in its task, not in a task, callback or thread it started): told to
    the grader with each call (``recorder.CALLED_BY_HANDLER``)."""
    try:
        return asyncio.current_task() is HANDLER_TASK[0] is not None
    except RuntimeError:  # (no loop runs in this thread: a thread of the learner's)
        return False

#: How often (real seconds) the loop looks again while a job runs on another thread (its end wakes it sooner).
_JOB_POLL_S = 0.05


class _SteppingSelector(DelegatingSelector):
    """Never waits for time: when the loop has nothing due, it stops, and the grader decides when it goes on.
    While jobs run on other threads it waits for them in real time, as the check's world does (time stands still)."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: Optional[VirtualLoop] = None

    def select(self, timeout: float | None = None):  # type: ignore[no-untyped-def]
        if timeout != 0 and self.loop is not None:
            if self.loop.jobs:
                return self._real.select(_JOB_POLL_S)  # (a job's end wakes the loop through its self-pipe)
            self.loop.stop()  # idle until the world's clock reaches the next timer
        return self._real.select(0)


class VirtualLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose clock is the grader's world clock, run in steps."""

    def __init__(self) -> None:
        selector = _SteppingSelector()
        super().__init__(selector)
        selector.loop = self
        self.now_us = 0
        self._clock_resolution = 2e-6
        #: Work on other threads that the clock waits for, as the check's world waits for it (``Runtime.jobs``):
        #: ``run_in_executor``'s, and threads or pool work the handler's code started (``learner_threads.counting``).
        self.jobs = 0
        self._jobs_lock = threading.Lock()  # (a thread of the learner's starts a job, the loop ends it)
        #: Jobs' threads asleep on this loop's clock (``sleep_job``), each with its wake-up; those a new world woke.
        self._sleepers: dict[threading.Event, Callable[[], None]] = {}
        self._gone: weakref.WeakSet[threading.Event] = weakref.WeakSet()
        #: The learner's (``child.Learner._scheduling``), as the check's world has the check's: given how a callback is
        #: scheduled (this loop's method), the callback, its arguments and context, it schedules it, and counts one the
        #: learner's code scheduled while an event was handled as a task.
        self.scheduling: Optional[Callable[..., Any]] = None
        #: The tasks the learner's code built directly (``asyncio.Task(coro)``), by the id of their context: each gives
        #: back a step of its own scheduled in it watched (``child.Learner._watch_built``), as the check's world does.
        self.stepping: dict[int, Callable[[Callable[..., Any]], Callable[..., Any]]] = {}

    def call_soon(self, callback: Callable[..., Any], *args: Any, context: Any = None) -> asyncio.Handle:
        if self.stepping and context is not None:
            watch = self.stepping.get(id(context))
            if watch is not None:
                callback = watch(callback)
        if self.scheduling is None:
            return super().call_soon(callback, *args, context=context)
        return self.scheduling(super().call_soon, callback, args, context)  # type: ignore[no-any-return]

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any, context: Any = None) -> Any:
        if self.scheduling is None:
            return super().call_at(when, callback, *args, context=context)
        return self.scheduling(functools.partial(super().call_at, when), callback, args, context)

    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """``asyncio.to_thread``: a job until done (its completion, on this loop, is what the handler awaits). While an
        event is handled, counted as work the learner's code submits to a pool of its own
        (``learner_threads.counting``), as the check's world counts it (``Recorder.handing_over``)."""
        handed: list[Counted] = []
        token = HANDED_OVER.set(handed) if ORIGIN.get() else None
        try:
            future = super().run_in_executor(executor, func, *args)
        finally:
            if token is not None:
                HANDED_OVER.reset(token)
        if handed:
            return future
        with self._jobs_lock:
            self.jobs += 1
        future.add_done_callback(self.job_done)
        return future

    def job_started(self) -> Callable[[], None]:
        """Count a job on a thread of its own; the function returned ends it, from any thread."""
        with self._jobs_lock:
            self.jobs += 1

        def done() -> None:
            try:
                self.call_soon_threadsafe(self.job_done)
            except RuntimeError:  # the loop is closed: nothing waits for it any more
                pass

        return done

    def job_done(self, *_: Any) -> None:
        with self._jobs_lock:
            self.jobs -= 1

    def sleep_job(self, seconds: float) -> bool:
        """From a job's thread: ``time.sleep`` on this loop's clock, as the check's world does (``Runtime.sleep_job``).
        The job stops counting until then, and counts again as it wakes. False if a new world came meanwhile."""
        woken = threading.Event()

        def fall_asleep() -> None:  # (on the loop: its wake-up is set before it stops counting)
            self.call_later(max(0.0, seconds), wake)
            self.job_done()

        def wake() -> None:
            with self._jobs_lock:
                self.jobs += 1
            self._sleepers.pop(woken, None)
            woken.set()

        self._sleepers[woken] = wake
        try:
            self.call_soon_threadsafe(fall_asleep)
        except RuntimeError:  # the loop is closed
            self._sleepers.pop(woken, None)
            return False
        woken.wait()
        return woken not in self._gone

    def alarm_job(self, alarm: Any, seconds: float) -> bool:
        """From a job's thread, about to wait with a time limit: as the check's world does (``Runtime.alarm_job``)."""
        self._sleepers[alarm] = alarm.set
        if alarm.start(self, seconds, lambda: self._sleepers.pop(alarm, None)):
            return True
        self._sleepers.pop(alarm, None)
        return False

    def _wake_sleepers(self) -> None:
        """A new world: threads asleep on the old one's clock wake now, counting (until they end, told it is gone)."""
        for woken, wake in list(self._sleepers.items()):
            self._gone.add(woken)
            wake()

    def time(self) -> float:
        return self.now_us / 1_000_000

    def step(self, now_us: int) -> None:
        """Run everything due at ``now_us``; return when nothing more is (or a handler finished)."""
        self.now_us = now_us
        self.run_forever()

    def settle(self, now_us: int) -> None:
        """``step``, again until no job runs on another thread: the grader hears of nothing before (so time waits)."""
        self.step(now_us)
        while self.jobs:
            self.step(now_us)

    def next_us(self) -> Optional[int]:
        """When this loop next has something to run: now if callbacks are ready, else its first timer."""
        if self._ready:  # type: ignore[attr-defined]
            return self.now_us
        timers = [h.when() for h in self._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
        return None if not timers else max(self.now_us, round(min(timers) * 1_000_000))

    def cancel_everything(self) -> None:
        """A new world: what the old one's handler spawned is cancelled, as the old world's loop did."""
        for task in asyncio.all_tasks(self):
            task.cancel()
        for _ in range(3):
            self.run_forever()
        for handle in list(self._scheduled):  # type: ignore[attr-defined]
            handle.cancel()
        self._wake_sleepers()
