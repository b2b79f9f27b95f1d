"""Watching your code while it runs: ``time.sleep`` and other blocking waits refused, each step of a task
you spawn timed, and whose code is on the stack (yours, or the kit's and its libraries').

The check (:mod:`.common`) hands your handler each event inside these watches; they never
judge anything themselves, they only stop what would block the node and say so.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import collections
import concurrent.futures
import contextlib
import contextvars
import inspect
import itertools
import queue
import sys
import sysconfig
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Protocol

from ..events import Event
from ..sim.clock import EPOCH_UNIX_SECONDS

if TYPE_CHECKING:
    from .recorder import Handling

KIT_DIR = str(Path(__file__).resolve().parent.parent)
LIBRARY_DIRS = tuple({sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")})


class HandlerStopped(BaseException):
    """Raised inside a handler that overran its time, to stop it (a BaseException, so
    ``except Exception`` in the handler does not swallow it)."""


class BlockingCall(Exception):
    """Raised inside a handler that calls ``time.sleep`` or waits on a thread: it would block every other event.
    ``call`` names what it called; ``caught``: your code caught the first one, and this is raised as it returns."""

    def __init__(self, message: str, call: str = "", caught: bool = False) -> None:
        super().__init__(message)
        self.call = call
        self.caught = caught


@dataclass(eq=False)
class TaskStep:
    """One step of a task your handler spawned (from one ``await`` to the next): watched for hangs
    while it runs (it is in the recorder's list of steps only meanwhile)."""

    event: Event  # the event whose handling spawned the task
    wall_started: float
    thread: int
    in_thread: bool = False  # work handed to a thread (asyncio.to_thread), watched from its start to its end


class Stepped:
    """Await a coroutine one step at a time, watching each step for ``time.sleep`` (and, in a
    spawned task, for running too long without pausing)."""

    def __init__(self, awaitable: Any, handling: Handling, steps: Optional[list[TaskStep]] = None) -> None:
        self._it = awaitable.__await__()
        self._handling = handling
        self._steps = steps

    def _begin(self) -> Optional[TaskStep]:
        if self._steps is None:
            self._handling.thread = threading.get_ident()
            self._handling.wall_started = time.monotonic()
            self._handling.step_began()
            return None
        step = TaskStep(self._handling.event, time.monotonic(), threading.get_ident())
        self._steps.append(step)
        return step

    def _end(self, step: Optional[TaskStep]) -> None:
        if step is not None:
            self._steps.remove(step)  # type: ignore[union-attr]  (a step is begun only with a list of them)
        else:
            self._handling.wall_started = None  # waiting now, on the simulation's clock

    def __await__(self) -> Any:
        # asyncio's Task resumes a coroutine with send(None), or throw(error) to cancel it: nothing else to pass on.
        throw: Optional[BaseException] = None
        while True:
            step = self._begin()
            with no_sleeping():
                try:
                    yielded = self._it.send(None) if throw is None else self._it.throw(throw)
                except StopIteration as stop:
                    return stop.value
                else:
                    if step is None:
                        self._handling.step_ended()  # (awaiting; once it returns, the recorder says when)
                finally:
                    self._end(step)
            try:
                yield yielded
                throw = None
            except BaseException as e:  # a cancellation, handed on to the coroutine
                throw = e


_local = threading.local()  # .kit: the kit's own code is running; .refused: what a watch refused meanwhile

#: Where Python's thread waits wait: ``threading.Event.wait``, ``queue.Queue.get``, ``Semaphore.acquire``,
#: ``Barrier.wait`` and ``concurrent.futures.Future.result`` all block in ``Condition.wait``.
CONDITION_WAIT = threading.Condition.wait.__code__
#: The waits refused when your code calls them: not a library's own (Jupyter's ``sys.stdout.flush()`` waits a
#: moment for its sending thread, and so does a logging handler that flushes it).
BLOCKING = {f.__code__ for f in (
    threading.Event.wait, threading.Condition.wait, threading.Condition.wait_for, threading.Semaphore.acquire,
    threading.Barrier.wait, queue.Queue.get, queue.Queue.put, queue.Queue.join, concurrent.futures.Future.result,
    concurrent.futures.Future.exception, concurrent.futures.wait, concurrent.futures.as_completed,
    concurrent.futures.ThreadPoolExecutor.shutdown, concurrent.futures.Executor.__exit__)} | {
    c for c in concurrent.futures.Executor.map.__code__.co_consts if getattr(c, "co_name", "") == "result_iterator"}
#: ``Thread.join`` waits in C, never in ``Condition.wait``: refused as it starts, if the thread is still running.
_THREAD_JOIN = threading.Thread.join.__code__


def set_profile(profile: Optional[Callable[..., Any]]) -> None:
    """``sys.setprofile``, one thread at a time. CPython refuses a call while another thread's is under way ("Cannot
    install a profile function while another profile function is being installed": its guard is one flag for the
    whole process), and a Python audit hook (workbook 7's failing disk adds one) lets another thread run meanwhile."""
    with _SETTING_PROFILE:
        sys.setprofile(profile)


_SETTING_PROFILE = threading.RLock()  # (re-entrant: a finalizer run by the call may set one too, and be refused)


@contextlib.contextmanager
def no_sleeping() -> Iterator[None]:
    """While your code runs, ``time.sleep`` and a blocking wait on a thread raise :class:`BlockingCall`. Caught by your
    code, it is raised again when the handler (or the task's step) returns: the call was refused all the same."""

    def watch(frame: Any, what: str, arg: Any) -> None:
        # (asked at every call and return while your handler runs, the kit's calls included: most are none of the
        # calls ``blocking_call`` looks at, and are told so here, at the cost of a comparison or two)
        if what == "call":
            code = frame.f_code
            may_block = code is _SLEEP or code is CONDITION_WAIT or code is _THREAD_JOIN
        else:
            may_block = what == "c_call" and arg is _REAL_SLEEP
        call = blocking_call(frame, what, arg) if may_block else None
        if call is not None and not getattr(_local, "kit", False):
            _local.refused = call
            raise BlockingCall(_refused(call), call)
        if previous is not None:
            previous(frame, what, arg)

    previous = sys.getprofile()
    _local.refused = None
    set_profile(watch)
    try:
        yield
    finally:
        set_profile(previous)
        refused, _local.refused = getattr(_local, "refused", None), None
    if refused is not None:  # (reached only if the body returned: your code caught the first one)
        raise BlockingCall(f"{_refused(refused)} (your code caught the error the check raised there, and went on)",
                           refused, caught=True)


def _refused(call: str) -> str:
    return f"it called {call}, which blocks the whole node"


def blocking_call(frame: Any, what: str, arg: Any) -> Optional[str]:
    """For a profile hook (``sys.setprofile``): the blocking call your code is making (``"time.sleep()"``,
    ``"Event.wait()"``), or None. (``no_sleeping``'s hook asks it only of a call to one of the codes tested here, and
    of ``time.sleep``'s own: a case added here is added there too.)"""
    if what == "c_call" and arg is _REAL_SLEEP:  # (``from time import sleep`` before the kit was imported)
        return "time.sleep()"
    if what == "call" and frame.f_code is _SLEEP and yours(frame.f_back):
        return "time.sleep()"
    if what == "call" and frame.f_code is CONDITION_WAIT and frame.f_locals.get("timeout") != 0:
        return _called_by_you(frame)
    if what == "call" and frame.f_code is _THREAD_JOIN and frame.f_locals.get("timeout") != 0 \
            and frame.f_locals["self"].is_alive():
        # (yours, or a pool's shutdown that waits for its threads: `with ThreadPoolExecutor() as pool:` at its end)
        return "Thread.join()" if yours(frame.f_back) else _called_by_you(frame)
    return None


def _called_by_you(frame: Any) -> Optional[str]:
    """The blocking call your code made that ended in this wait (``Event.wait()``), or None if your code called
    something else (a library's function, which waits for its own reasons)."""
    code = _blocking_call_of_yours(frame)
    return None if code is None else f"{getattr(code, 'co_qualname', code.co_name)}()"


def _blocking_call_of_yours(frame: Any) -> Optional[Any]:
    """The code of the blocking call your code made that ended in this wait, or None (see ``_called_by_you``)."""
    called = frame
    while frame is not None and not yours(frame):
        called, frame = frame, frame.f_back
    return called.f_code if frame is not None and called.f_code in BLOCKING else None


def yours(frame: Any) -> bool:
    """Whether a frame runs your code: neither the kit's nor a library's."""
    return not frame.f_code.co_filename.startswith((KIT_DIR, *LIBRARY_DIRS, "<frozen"))


# --- callbacks your code schedules on a loop itself (call_soon, call_later, call_at, asyncio.Task(coro)) -----------

_BASE_EVENTS = asyncio.base_events.__file__  # (the loop's call_later calls its call_at)


def scheduled_by_you(frame: Any) -> bool:
    """Whether your code scheduled a callback on a loop: itself (``call_soon``, ``call_at``, or building
    ``asyncio.Task(coro)``), or through the loop's own ``call_later``. Not asyncio's helpers (``asyncio.sleep``'s
    timer, a queue's wake-up): their work is a task's, watched as the task."""
    while frame is not None and frame.f_code.co_filename == _BASE_EVENTS:
        frame = frame.f_back
    return frame is not None and yours(frame)


def just_built(owner: Any) -> bool:
    """Whether a callback's owner is a task whose first step is being scheduled: built now (``asyncio.Task(coro)``)."""
    if not isinstance(owner, asyncio.Task):
        return False
    coro = owner.get_coro()
    return inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == inspect.CORO_CREATED


class Later:
    """A callback your code scheduled on a loop while an event was handled (``loop.call_later(60, claim, preimage)``):
    work still to do for that event until it has run or is cancelled, as a task is until done (a check waits for it,
    and a crash of your node cancels it). What it raises goes to ``failed``, as a task's error is told with its event
    (asyncio would only log it)."""

    __slots__ = ("callback", "failed", "handle", "ran")

    def __init__(self, callback: Callable[..., Any], failed: Callable[[BaseException], None]) -> None:
        self.callback, self.failed = callback, failed
        self.handle: Any = None
        self.ran = False

    def __call__(self, *args: Any) -> None:
        try:
            self.callback(*args)
        except Exception as e:
            self.failed(e)
        finally:
            self.ran = True

    def done(self) -> bool:
        return self.ran or self.handle.cancelled()

    def cancelled(self) -> bool:
        return bool(self.handle.cancelled())

    def cancel(self) -> bool:
        self.handle.cancel()
        return True

    def __repr__(self) -> str:
        return f"Later({self.callback!r})"


class BuiltStep:
    """A step of a task your code built directly (``asyncio.Task(coro)``), as its loop runs it: ``watch(step, args)``
    runs it watched, as ``Stepped`` runs a spawned task's (a task no factory made cannot be stepped from inside).
    ``__self__`` is the task, as the step's own is: the loop tells it by it."""

    __slots__ = ("__self__", "step", "watch")

    def __init__(self, task: Any, step: Callable[..., Any], watch: Callable[[Callable[..., Any], tuple[Any, ...]], Any]
                 ) -> None:
        self.__self__, self.step, self.watch = task, step, watch

    def __call__(self, *args: Any) -> Any:
        return self.watch(self.step, args)


def watch_built(stepping: dict[int, Any], task: Any, context: Any,
                watch: Callable[[Callable[..., Any], tuple[Any, ...]], Any]) -> Callable[[Callable[..., Any]], Any]:
    """Each step of ``task``, built directly and scheduled in ``context`` (its loop's ``stepping``), runs through
    ``watch`` (a :class:`BuiltStep`) until the task is done; another callback in its context (a done callback) does not.
    """
    key = id(context)

    def wrap(step: Callable[..., Any]) -> Any:
        return BuiltStep(task, step, watch) if getattr(step, "__self__", None) is task else step

    stepping[key] = wrap
    task.add_done_callback(lambda _: stepping.pop(key, None))
    return wrap


def refused_in(task: Any) -> bool:
    """Whether ``task`` ended with a blocking call refused in it (``BlockingCall``): told as its error, not again. (Its
    error is looked at, not taken: see ``task_failures.error_of``.)"""
    return bool(task.done() and not task.cancelled() and isinstance(getattr(task, "_exception", None), BlockingCall))


@contextlib.contextmanager
def sleeping_allowed() -> Iterator[None]:
    """The kit's own code, called by your handler, is not watched (and runs at full speed)."""
    previous, was = sys.getprofile(), getattr(_local, "kit", False)
    set_profile(None)
    _local.kit = True
    try:
        yield
    finally:
        _local.kit = was
        set_profile(previous)


def learner_on_stack() -> bool:
    """Whether code that is neither the kit's nor a library's (yours) is on the current stack."""
    frame: Optional[Any] = sys._getframe()  # this frame, the kit's: the walk may start here
    while frame is not None:
        if yours(frame):
            return True
        frame = frame.f_back
    return False


# --- time.sleep in a thread your code starts, during a check -------------------------------------------------------
# Such a thread is a job of the check's world (``Recorder.counted``): its time.sleep waits on the world's clock, as
# an await asyncio.sleep does, so a thread that sleeps (a lookup, a heartbeat) acts at the same moment on every run.
# Anywhere else, time.sleep is Python's own.

_REAL_SLEEP = time.sleep
_job = threading.local()  # .sleep: how this thread, a job of a world, sleeps


def _sleep(seconds: float) -> None:
    sleep = getattr(_job, "sleep", None)
    if sleep is None:
        return _REAL_SLEEP(seconds)
    return sleep(seconds)


_sleep.__doc__ = _REAL_SLEEP.__doc__
_SLEEP = _sleep.__code__
time.sleep = _sleep


def timer_run(timer: threading.Timer) -> Callable[[], None]:
    """A Timer's run, its interval waited on the world's clock."""
    def run() -> None:
        time.sleep(timer.interval)
        if not timer.finished.is_set():
            timer.function(*timer.args, **timer.kwargs)
        timer.finished.set()

    return run


@contextlib.contextmanager
def sleeping_on(sleep: Any) -> Iterator[None]:
    """In this thread, ``time.sleep`` is ``sleep`` (a world's clock) meanwhile."""
    _job.sleep = sleep
    try:
        yield
    finally:
        _job.sleep = None


# --- threads of yours, counted as jobs of a world's clock --------------------------------------------------------
# A thread your code starts while an event is handled (or work it hands to a pool of its own) is a job of the check's
# world (``Recorder.counted``): the clock waits while it works, so what it does lands at the same simulated moment on
# every run, however loaded the machine. Not while it waits in ``Condition.wait`` for another thread (a worker idle
# on its queue waits for your next event, as a task does at an await): it counts again as it is woken, from the
# moment of the ``notify``, if the code that woke it counts itself (your handler, a task it spawned, such a thread).
# ``Event.wait``, ``Queue.get``, ``Future.result`` and the rest all wait in ``Condition.wait``. A timed
# ``Event.wait`` or ``Condition.wait`` of yours also ends once its timeout has passed on the world's clock (``Alarm``).

class Clock(Protocol):
    """A world's clock, as a thread of yours counts in it (``Recorder``'s, or the grader's learner process's)."""

    @property
    def world(self) -> object:
        """What this clock is the clock of (two clocks of one world hold the same time still)."""

    def now_us(self) -> int:
        """The world's time now, in microseconds since the simulation began (``VirtualClock.now_us``)."""

    def start(self, counted: Counted) -> Callable[[], None]:
        """Count ``counted`` as a job until the function returned is called (from any thread)."""

    def sleep(self, counted: Counted, seconds: float) -> bool:
        """``time.sleep`` on this clock, from ``counted``'s thread: it does not count meanwhile, and counts again as it
        wakes, at the same moment on every run. False, at once, if the clock's world is gone."""

    def alarm(self, alarm: Alarm, seconds: float) -> bool:
        """From ``alarm``'s thread, about to wait: ``alarm.start`` on this clock's loop, and ``alarm.set()`` should the
        world go first. False, at once, if it is gone."""


#: Set while the kit hands your work to a pool on your code's behalf (``asyncio.to_thread``, ``loop.run_in_executor``,
#: while an event is handled): that work counts as if your code had submitted it to a pool of its own, and its counting
#: is added to the list (left empty, if the pool is none the kit counts in: the kit counts it itself).
HANDED_OVER: contextvars.ContextVar[Optional[list[Counted]]] = contextvars.ContextVar("ldkkit_handed_over",
                                                                                       default=None)


def handed_over(counted: Counted) -> bool:
    """Whether the kit is handing over the work ``counted`` counts, on your code's behalf: it is told so, once."""
    handed = HANDED_OVER.get()
    if handed is None:
        return False
    handed.append(counted)
    HANDED_OVER.set(None)  # (this one only: what the work submits in its turn is judged as usual)
    return True


#: Set while your handler's code runs (and in tasks it spawns, and work it hands to ``asyncio.to_thread``): the clock
#: that waits for it, in which a thread of yours it wakes counts again.
CLOCK: contextvars.ContextVar[Optional[Clock]] = contextvars.ContextVar("ldkkit_clock", default=None)


class Counted:
    """One thread of yours, counted as a job of a world's clock while it works: ``up`` (by its starter, or the code that
    wakes it, with that code's clock), ``down`` (as it waits), from any thread; nothing once it has ``end``-ed."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.thread = 0  # (its ident, once it runs)
        self.step: Optional[TaskStep] = None  # (watched for hangs meanwhile: the clock's to set)
        self._stop: Optional[Callable[[], None]] = None
        self._lock = threading.Lock()
        self.ended = False
        self.asleep = False  # (in time.sleep, on its clock: it counts again as it wakes)
        self.alarmed = False  # (in a timed wait, woken by its clock at the latest: ``Alarm``)
        #: Called (from its thread, or whoever woke it) after it starts or stops counting, or falls asleep or wakes:
        #: a pool's worker it occupies (``submit_counted``) frees up without its clock moving only while it works.
        self.on_change: Optional[Callable[[], None]] = None

    @property
    def counting(self) -> bool:
        return self._stop is not None

    @property
    def at_work(self) -> bool:
        """Working, asleep on its clock, or in a timed wait on it: not idle, waiting for work (see ``Alarm``)."""
        return self.counting or self.alarmed

    def up(self, clock: Optional[Clock] = None) -> None:
        with self._lock:
            started = self._stop is None and not self.ended
            if started:
                self.clock = clock or self.clock  # (a worker of yours works for whoever woke it)
                self._stop = self.clock.start(self)
        if started:
            self._changed()

    def down(self) -> None:
        with self._lock:
            stop, self._stop = self._stop, None
        if stop is not None:
            stop()
            self._changed()

    def _changed(self) -> None:
        on_change = self.on_change
        if on_change is not None:
            on_change()

    def end(self) -> None:
        """It is done (its function returned, or never will run): it counts no more, whoever wakes it."""
        with self._lock:
            self.ended = True
        self.down()

    def bind(self) -> None:
        """The current thread is the one counted."""
        self.thread = threading.get_ident()
        if self.step is not None:
            self.step.thread = self.thread
        _job.counted = self

    def sleep(self, seconds: float) -> None:
        """``time.sleep`` in its thread: on the world's clock while it counts (a thread of its own, or work in a pool),
        as ``await asyncio.sleep`` waits in a task; in real time once it no longer counts, or the world is gone."""
        if not self.counting:
            return _REAL_SLEEP(seconds)
        self.asleep = True
        self._changed()
        try:
            with self.unbound():
                slept = self.clock.sleep(self, seconds)
        finally:
            self.asleep = False
            self._changed()  # (counting again: work queued behind it counts again before it goes on)
        if slept:
            return None
        self.end()  # the world is gone: it no longer counts, and sleeps for real
        return _REAL_SLEEP(seconds)

    @contextlib.contextmanager
    def unbound(self) -> Iterator[None]:
        """Meanwhile its thread's waits are the clock's own (it sleeps on the world's clock), not waits for work."""
        _job.counted = None
        try:
            yield
        finally:
            _job.counted = self


def ends_with(future: concurrent.futures.Future[Any], counted: Counted) -> None:
    """A pool's work counts until its future is done and has told everyone waiting on it: after every callback (an
    ``asyncio.wrap_future``'s hands the result to a loop: the clock must not move before it has), and every thread
    it woke (``notify`` counts them first)."""
    invoke = future._invoke_callbacks  # type: ignore[attr-defined]  (what set_result and cancel call, at the end)

    def invoke_then_end() -> None:
        try:
            invoke()
        finally:
            counted.end()

    future._invoke_callbacks = invoke_then_end  # type: ignore[attr-defined]
    if future.done():  # (done before this was in place: its callbacks have run)
        counted.end()


def counted_here() -> Optional[Counted]:
    counted = getattr(_job, "counted", None)
    return None if counted is None or counted.ended else counted


def _clock_here() -> Optional[Clock]:
    """The clock the running code holds still, if any: a thread of yours while it counts, or your handler's code."""
    counted = counted_here()
    if counted is not None:
        return counted.clock if counted.counting else None
    return CLOCK.get()


# --- the time your code reads, during a check --------------------------------------------------------------------
# Where your code runs as a job of a world (your handler, a task it spawned, a thread of yours while it counts),
# time.monotonic() and time.time() read the world's clock, as its time.sleep and asyncio.sleep wait on it: a thread
# that sleeps until a moment it measured ("retry for five seconds") acts at the same simulated moment on every run,
# whatever the machine's speed. Anywhere else, and for the kit's and libraries' own code, they are Python's own.
# (``from time import monotonic`` made before the kit was imported keeps Python's own, as for time.sleep.)

_REAL_MONOTONIC, _REAL_TIME = time.monotonic, time.time


def _world_now_us(caller: Any) -> Optional[int]:
    clock = _clock_here()
    return None if clock is None or not yours(caller) else clock.now_us()


def _monotonic() -> float:
    now_us = _world_now_us(sys._getframe(1))
    return _REAL_MONOTONIC() if now_us is None else now_us / 1_000_000


def _time() -> float:
    now_us = _world_now_us(sys._getframe(1))
    return _REAL_TIME() if now_us is None else EPOCH_UNIX_SECONDS + now_us / 1_000_000


_monotonic.__doc__, _time.__doc__ = _REAL_MONOTONIC.__doc__, _REAL_TIME.__doc__
time.monotonic, time.time = _monotonic, _time  # type: ignore[assignment]


class _Waiters(collections.deque):  # type: ignore[type-arg]
    """A Condition's waiters, each known by the thread of yours (its ``Counted``) waiting, if it is one."""

    def __init__(self, waiters: Any) -> None:
        super().__init__(waiters)
        self.counted: dict[Any, Counted] = {}

    def append(self, waiter: Any) -> None:  # (by Condition.wait, in the waiting thread)
        counted = counted_here()
        if counted is not None and not isinstance(waiter, Alarm):  # (an alarm counts its thread itself)
            self.counted[waiter] = counted
        super().append(waiter)

    def remove(self, waiter: Any) -> None:
        self.counted.pop(waiter, None)
        super().remove(waiter)


_condition_wait, _condition_notify = threading.Condition.wait, threading.Condition.notify


def _wait(self: threading.Condition, timeout: Optional[float] = None) -> bool:
    counted = counted_here()
    # Only a wait your code makes (Queue.get, Future.result, Event.wait...) is a wait for another thread of yours: a
    # library's own (Thread.start waits for the thread to run) is work, and whoever ends it may not count.
    call = _blocking_call_of_yours(sys._getframe()) if (counted is not None or _thread_of_yours()) \
        and timeout != 0 else None
    if call is not None:
        counted = counted or _adopted()
        # (the condition's lock is held: no notify comes between these)
        if not isinstance(self._waiters, _Waiters):  # type: ignore[attr-defined]
            self._waiters = _Waiters(self._waiters)  # type: ignore[attr-defined]
        if call in _WAITS_ONCE and timeout is not None and timeout > 0 and counted.counting:  # type: ignore[union-attr]
            return _wait_on_the_clock(self, counted, timeout)  # type: ignore[arg-type]
        counted.down()  # type: ignore[union-attr]
    return _condition_wait(self, timeout)


def _thread_of_yours() -> bool:
    """Whether this thread runs a function of yours (its ``target``, or the ``run`` of a Thread class of yours)."""
    thread = threading.current_thread()
    run = getattr(thread, "_target", None) or type(thread).run
    code = getattr(run, "__code__", None)
    return code is not None and not code.co_filename.startswith((KIT_DIR, *LIBRARY_DIRS, "<frozen"))


def _adopted() -> Counted:
    """This thread of yours, which no check started (a worker started when a cell ran, before the check), waiting for
    work: from now on it counts as a thread started while an event is handled does, from the moment code that counts
    wakes it, on that code's clock. Otherwise the world's clock would run on while it works, and what it does would
    land at a moment that depends on the machine's speed."""
    counted = Counted(_NO_CLOCK)
    counted.bind()
    _job.sleep = counted.sleep  # (real time until it counts: see Counted.sleep)
    return counted


class _NoClock:
    """The clock of a thread adopted while it waits: none, until code that counts wakes it (``Counted.up``)."""

    world = None

    def start(self, counted: Counted) -> Callable[[], None]:
        raise AssertionError("an adopted thread counts only on the clock of the code that wakes it")

    def now_us(self) -> int:
        raise AssertionError("an adopted thread reads real time until it counts")

    def sleep(self, counted: Counted, seconds: float) -> bool:
        raise AssertionError("an adopted thread sleeps in real time until it counts")

    def alarm(self, alarm: Alarm, seconds: float) -> bool:
        raise AssertionError("an adopted thread waits in real time until it counts")


_NO_CLOCK = _NoClock()


class Alarm:
    """A timed wait of a thread of yours (``Event.wait(timeout)``, ``Condition.wait(timeout)``) ends at the ``notify``
    it waits for or once ``timeout`` has passed on its world's clock, whichever comes first, as ``time.sleep`` there
    waits on that clock: it stops counting meanwhile, and counts again from the moment it is woken. It is the wait's
    own entry in the condition's waiters, released once, by whichever comes first (or by the world's end)."""

    def __init__(self, counted: Counted) -> None:
        self.counted = counted
        self.why: Optional[str] = None  # what released it: "notify", "clock", "gone" (the world), "abandoned"
        self._cancel: Callable[[], None] = lambda: None  # takes its wake-up on the clock back
        self._guard = threading.Lock()
        self._lock = threading.Lock()
        self._lock.acquire()

    def start(self, loop: Any, seconds: float, forget: Callable[[], None]) -> bool:
        """From its thread: on ``loop`` (the world's), set its wake-up ``seconds`` on, then stop counting; ``forget``
        is called once it needs no word of the world's end. False, at once, if the loop is closed."""

        def ring() -> None:  # (on the loop, when the time has come: it counts again from now, before it goes on)
            forget()
            self._end("clock", self.counted.up)

        def arm() -> None:  # (on the loop, where time stands still: the wake-up is set before it stops counting)
            with self._guard:
                if self.why is None:
                    handle = loop.call_later(max(0.0, seconds), ring)
                    self._cancel = lambda: (forget(), _soon(loop, handle.cancel))
                    self.counted.alarmed = True
                    self.counted.down()

        return _soon(loop, arm)

    def acquire(self) -> None:
        self._lock.acquire()

    def release(self) -> None:
        """By ``Condition.notify``, in the notifying thread: counted again in its clock (if it counts), as any thread
        of yours it wakes."""
        clock = _clock_here()
        if self._end("notify", lambda: clock is not None and self.counted.up(clock)):
            self._cancel()

    def set(self) -> None:
        """By the world, as it closes: the wait goes on in real time, as ``time.sleep`` does once its world is gone."""
        self._end("gone", lambda: None)

    def abandon(self) -> None:
        """By its thread, if the wait ended otherwise (an exception raised in it): nothing wakes it any more."""
        if self._end("abandoned", lambda: None):
            self._cancel()

    def _end(self, why: str, then: Callable[[], Any]) -> bool:
        with self._guard:
            if self.why is not None:
                return False
            self.why = why
            self.counted.alarmed = False
            then()
            self._lock.release()
        return True


def _soon(loop: Any, callback: Callable[[], Any]) -> bool:
    try:
        loop.call_soon_threadsafe(callback)
        return True
    except RuntimeError:  # the loop is closed: its world is gone
        return False


def _wait_on_the_clock(condition: threading.Condition, counted: Counted, timeout: float) -> bool:
    """``Condition.wait(timeout)`` of a thread of yours that counts: see :class:`Alarm`."""
    if not condition._is_owned():  # type: ignore[attr-defined]
        raise RuntimeError("cannot wait on un-acquired lock")
    alarm = Alarm(counted)
    if not counted.clock.alarm(alarm, timeout):  # the world is gone: it no longer counts, and waits in real time
        counted.end()
        return _condition_wait(condition, timeout)
    waiters = condition._waiters  # type: ignore[attr-defined]
    waiters.append(alarm)
    saved = condition._release_save()  # type: ignore[attr-defined]
    try:
        alarm.acquire()
    finally:
        condition._acquire_restore(saved)  # type: ignore[attr-defined]
        alarm.abandon()  # (nothing, once released)
        if alarm.why != "notify":  # (a notify takes its waiter out itself)
            with contextlib.suppress(ValueError):
                waiters.remove(alarm)
    if alarm.why == "gone":
        counted.end()
        return _condition_wait(condition, timeout)
    return alarm.why == "notify"


def _notify(self: threading.Condition, n: int = 1) -> None:
    waiters = self._waiters  # type: ignore[attr-defined]
    clock = _clock_here() if isinstance(waiters, _Waiters) and waiters.counted else None
    if clock is not None and self._is_owned():  # type: ignore[attr-defined]
        for waiter in itertools.islice(waiters, n):  # (the ones Condition.notify wakes: the first n)
            if waiter in waiters.counted:
                waiters.counted[waiter].up(clock)
    _condition_notify(self, n)


def blocked_in_a_wait(frame: Any) -> bool:
    """Whether a thread whose current frame this is waits, in C, for another thread (which may never come): an
    exception raised in it would stay pending for ever (and CPython's eval loop would keep looking for it, in every
    thread). One that works, or sleeps, is stopped instead."""
    return frame is not None and frame.f_code in _WAITS


_wait.__doc__, _notify.__doc__ = _condition_wait.__doc__, _condition_notify.__doc__
_WAITS = {CONDITION_WAIT, _wait.__code__, threading.Thread._wait_for_tstate_lock.__code__}
BLOCKING.add(_wait.__code__)  # (your code's Condition.wait() now calls this first)
#: The waits that end after ``timeout`` on the world's clock (:class:`Alarm`): one wait each. Not those that wait again
#: until real time has passed the limit (``Queue.get``, ``Condition.wait_for``...), which would make many.
_WAITS_ONCE = {threading.Event.wait.__code__, _wait.__code__}
threading.Condition.wait = _wait  # type: ignore[method-assign]
threading.Condition.notify = _notify  # type: ignore[method-assign]


# --- coroutines your code makes and drops, never awaited ---------------------------------------------------------
#: What is told of a coroutine of yours dropped before it ever ran (``_dropped``), by its function's name: the check's
#: recorder (``Recorder.unawaited``) and the grader's learner process register here.
DROPPED: list[Callable[[str], None]] = []
_warn_unawaited = warnings._warn_unawaited_coroutine  # type: ignore[attr-defined]


def _dropped(coro: Any) -> None:
    """Python's own "coroutine ... was never awaited" (CPython calls ``warnings._warn_unawaited_coroutine``): an async
    function your code called without ``await`` ran none of its code, so what it was to do was never done."""
    code = getattr(coro, "cr_code", None)
    if code is not None and not code.co_filename.startswith((KIT_DIR, *LIBRARY_DIRS, "<frozen")):
        for tell in DROPPED:
            tell(getattr(coro, "__qualname__", code.co_name))
    _warn_unawaited(coro)


warnings._warn_unawaited_coroutine = _dropped  # type: ignore[attr-defined]
