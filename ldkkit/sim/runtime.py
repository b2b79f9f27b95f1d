"""An asyncio event loop on the world's clock: the simulation's tokio runtime.

ldk-sample runs its event handler on tokio and spawns tasks from it (for example, to
call ``process_pending_htlc_forwards`` after a random delay). In ldkkit the same code is
written with ``asyncio``: ``asyncio.create_task`` and ``asyncio.sleep`` work inside a
handler, and under a virtual clock a sleep takes no real time at all.

The loop only runs while the world is asked to do something (``advance``, ``run``), in
the caller's thread, or in a helper thread when the caller already runs an event loop
(as a Jupyter kernel does). Time moves only within ``advance``: the loop jumps from one
due timer to the next until the target time, so runs are fast and repeatable.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import selectors
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterator, Sized
from typing import Any, Optional, TypeVar

from .clock import MICROS, VirtualClock

_T = TypeVar("_T")
_ROUNDING_SLACK_US = 10
#: More than float error, less than any wait a timer means (microseconds).
_SUB_MICROSECOND = 1e-3
#: How often (real seconds) the loop looks again while a job handed to a thread runs (its end wakes it sooner).
_JOB_POLL_S = 0.05


async def _called(fn: Callable[[], _T]) -> _T:
    return fn()


class DelegatingSelector(selectors.BaseSelector):
    """A real selector underneath; subclasses change only how ``select`` waits."""

    def __init__(self) -> None:
        self._real = selectors.DefaultSelector()

    def register(self, fileobj, events, data=None):  # type: ignore[no-untyped-def]
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj):  # type: ignore[no-untyped-def]
        return self._real.unregister(fileobj)

    def modify(self, fileobj, events, data=None):  # type: ignore[no-untyped-def]
        return self._real.modify(fileobj, events, data)

    def get_map(self):  # type: ignore[no-untyped-def]
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None):  # type: ignore[no-untyped-def]
        return self._real.select(timeout)


class _VirtualTimeSelector(DelegatingSelector):
    """Wraps a real selector; a wait for a timer jumps the virtual clock instead of sleeping."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self._runtime = runtime

    def select(self, timeout: float | None = None):  # type: ignore[no-untyped-def]
        runtime = self._runtime
        if timeout == 0 and runtime.clock.is_virtual and len(self._real.get_map()) <= 1:
            # The loop has callbacks ready, and no file but its self-pipe: whoever wrote to that pipe (a thread's
            # call_soon_threadsafe) queued its callback already, so there is nothing to learn from polling it. It
            # is read at the next wait. (A poll per step of the loop cost a system call each.)
            return []
        if not runtime.clock.is_virtual or timeout == 0:
            return self._real.select(timeout)
        # Time may only move once every participant (a background processor thread, say)
        # has finished what it was doing; what it sent meanwhile is handled first.
        if not runtime.wait_participants_idle():
            return self._real.select(0)
        ready = self._real.select(0)
        if ready:
            return ready
        # (rounded: a timer set for a whole microsecond, as every wait of the world's is, lands on it; its float
        # error would otherwise add one now and then. A handle is due within asyncio's clock resolution, 1 µs.)
        if runtime.jobs:  # work in a thread: time waits for it, in real time (its end wakes the loop)
            return self._real.select(_JOB_POLL_S)
        target = None if timeout is None else runtime.clock.now_us() + round(timeout * MICROS)
        if runtime.jump(target):
            return self._real.select(0)
        return self._real.select(timeout)


class _StepCatcher:
    """Stands for a loop while a task is built: what the task schedules first is its step."""

    step: Any = None

    def get_debug(self) -> bool:
        return False

    def call_soon(self, callback: Any, *args: Any, context: Any = None) -> None:
        self.step = callback


def _task_step_type() -> type:
    """The type of a task's steps as it schedules them (``TaskStepMethWrapper``, of asyncio's C tasks): a loop tells a
    task's step by it at once, where ``getattr(callback, "__self__", None)`` raised and caught an AttributeError for
    every other callback."""

    async def nothing() -> None:
        return None

    catcher, coro = _StepCatcher(), nothing()
    task = asyncio.Task(coro, loop=catcher)  # type: ignore[arg-type]
    task._log_destroy_pending = False  # type: ignore[attr-defined]
    coro.close()
    return type(catcher.step)


_TASK_STEP = _task_step_type()
_call_soon, _call_at = asyncio.SelectorEventLoop.call_soon, asyncio.SelectorEventLoop.call_at


class _VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, runtime: Runtime) -> None:
        super().__init__(_VirtualTimeSelector(runtime))
        self._runtime = runtime
        self._clock_resolution = 1 / MICROS
        #: Its tasks, for ``Runtime.close``: ``asyncio.all_tasks`` looks through every task of the process, those of
        #: worlds gone but not yet collected too (hundreds, at each of a check's forty closes). Each is known by the
        #: step it schedules (``call_soon``), so one built directly (``asyncio.Task(coro)``, no ``create_task``) too.
        self.tasks: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        #: A check's (``Recorder.scheduling``), asked of each callback scheduled while ``scheduling_while`` is set (an
        #: event is handled): given how it is scheduled (the loop's own method), the callback, its arguments and
        #: context, it schedules it, and counts one your code scheduled as a task.
        self.scheduling: Optional[Callable[..., Any]] = None
        self.scheduling_while: Optional[contextvars.ContextVar[Any]] = None
        #: The tasks your code built directly (``asyncio.Task(coro)``), by the id of their context: given a callback
        #: scheduled in it, each gives back its step watched (``Recorder.watch_built``), as a spawned task's steps are.
        self.stepping: dict[int, Callable[[Callable[..., Any]], Callable[..., Any]]] = {}

    def call_soon(self, callback: Callable[..., Any], *args: Any, context: Any = None) -> asyncio.Handle:
        """asyncio's, but a task's first step makes it one of ``tasks``, and a callback scheduled while an event is
        handled goes through ``scheduling``. (asyncio's own body: a check calls it thousands of times.)"""
        if type(callback) is _TASK_STEP:
            task = callback.__self__
            # (its first step, however it was built: asyncio.Task(coro) has no create_task. Its coroutine is not
            # suspended then; Python 3.10's has no cr_suspended, and every step adds it again, to no harm)
            if isinstance(task, asyncio.Task) and not getattr(task.get_coro(), "cr_suspended", False):
                self.tasks.add(task)
        if self.stepping and context is not None:
            watch = self.stepping.get(id(context))
            if watch is not None:
                callback = watch(callback)
        during = self.scheduling_while
        if during is not None and during.get() is not None:
            return self.scheduling(functools.partial(_call_soon, self), callback, args, context)  # type: ignore[misc]
        if self._debug:  # type: ignore[attr-defined]
            return _call_soon(self, callback, *args, context=context)
        self._check_closed()  # type: ignore[attr-defined]
        return self._call_soon(callback, args, context)  # type: ignore[attr-defined,no-any-return]

    def time(self) -> float:
        return self._runtime.clock.now_us() / MICROS

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any, context: Any = None) -> Any:
        """A wait shorter than the clock's microsecond ends one microsecond later, not at once: otherwise a loop
        that sleeps "the rest" until a moment between two microseconds would wait for ever, time never moving."""
        now_us = self._runtime.clock.now_us()
        if when * MICROS - now_us > _SUB_MICROSECOND and round(when * MICROS) <= now_us:
            when = (now_us + 1) / MICROS
        during = self.scheduling_while
        if during is not None and during.get() is not None:
            return self.scheduling(functools.partial(_call_at, self, when), callback, args, context)  # type: ignore[misc]
        return _call_at(self, when, callback, *args, context=context)

    def run_in_executor(self, executor: Any, func: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        """Work handed to a thread (``asyncio.to_thread``) is a job: the clock stands still while it works, so what it
        does lands at the same moment on every run. While a check hands your handler an event, the check counts it
        (``hand_over``: its ``time.sleep`` then waits on this clock); otherwise the runtime counts it until done."""
        runtime = self._runtime
        with runtime.hand_over() if runtime.hand_over is not None else contextlib.nullcontext(()) as counted:
            future = super().run_in_executor(executor, func, *args)
        if not counted:
            runtime.job_started()
            future.add_done_callback(runtime._job_done)
        return future


class Turn:
    """The world's turn (``Runtime.turn``): a lock that knows its holder, so that a participant woken by the holder is
    told as the turn is given back, not before. Woken at once, its thread would only run to the turn and wait there:
    two more thread switches for nothing, each woken thread first waking the CPU the holder runs on (the world wakes
    a sleeping processor from its turn at most of its steps; the capstone's plays under a processor blocked 1,875
    times, a third of them so)."""

    def __init__(self, cond: threading.Condition) -> None:
        self._lock = threading.Lock()
        self._cond = cond
        self._cond_lock = cond._lock  # type: ignore[attr-defined]  # (see Runtime.cond_lock)
        self._holder: int | None = None
        self.rouse_pending = False  # participants were woken by the holder: notify them as it lets go

    def acquire(self) -> None:
        self._lock.acquire()
        self._holder = threading.get_ident()

    def release(self) -> None:
        self._holder = None
        self._lock.release()
        if self.rouse_pending:
            with self._cond_lock:
                self.rouse_pending = False
                self._cond.notify_all()

    def locked(self) -> bool:
        return self._lock.locked()

    def held_here(self) -> bool:
        return self._holder == threading.get_ident()

    __enter__ = acquire  # (not a method calling it: the world takes its turn at every block)

    def __exit__(self, *exc: object) -> None:
        self.release()


class Participant:
    """Something outside the world's loop (a background processor) that time must wait for.

    It is *idle* while it waits for a deadline or for a wake-up; the world moves time
    only when every participant is idle, so a run stays repeatable.
    """

    def __init__(self, runtime: Runtime, name: str) -> None:
        self.runtime = runtime
        self.name = name
        self.idle = False
        self.deadline_us: int | None = None
        self.wake_pending = False  # set by wake-up callbacks, for waiters that check it
        #: Work the runtime may do for it while it sleeps, when its deadline comes (its quiet timers):
        #: called with the time and the moment before which nothing else happens in the world, it returns
        #: its next deadline, or None to be woken as usual.
        self.on_deadline: Callable[[int, int], int | None] | None = None
        self.ticking = False  # the runtime is doing that work: it stays asleep until that is over
        #: Work the runtime may do for it when the world wakes it while it sleeps (a block asks its manager to be
        #: persisted): called with the time, it returns its next deadline, or None to be woken as usual.
        self.on_wake: Callable[[int], int | None] | None = None
        self.wake_deferred = False  # woken by the world, which does that work before it goes on
        #: Set when its processor is asked to stop: a wait on the world must not outlive that.
        self.stopping = False
        #: Its processor awaits a handler's coroutine that the world runs (``handler_started``): LDK's loop is then
        #: inside ``process_pending_events``, and does nothing else until the handler returns.
        self.in_handler = False

    def stop(self) -> None:
        self.stopping = True
        self.wake()

    def wake(self) -> None:
        """Wake it, or, as it sleeps on the virtual clock, leave that to the world's next step
        (``Runtime.run_deferred_wakes``, before the world goes on or time moves): when the world's own thread wakes
        it and it has ``on_wake`` work, the world does that work at the point where the woken thread would first get
        the turn; when a thread outside the world's turn wakes it (the story's or a cell's, connecting a peer or
        sending a payment), its work waits for the world's next step, so that it never overlaps that thread's next
        call into a node (which would then land before or after it, as the threads were scheduled)."""
        runtime = self.runtime
        with runtime.cond_lock:
            if self.in_handler and not self.stopping:  # (what woke it, a future now complete, is its loop's to see)
                return
            if (self.idle and not self.ticking and not self.stopping and runtime.clock.is_virtual
                    and (self.on_wake is not None or not runtime.holds_turn())):
                self.wake_deferred = True
                return
            self.idle = False
            runtime.rouse()

    def handler_started(self) -> None:
        """Its processor hands an event to a handler whose coroutine the world runs, and waits for it: until
        ``handler_done``, the world neither wakes it nor does its loop's work for it (``on_wake``). LDK's processor
        is inside ``process_pending_events`` meanwhile: it persists nothing and runs no timer until the handler
        returns, so a node that crashes mid-event has on disk what it had before the event."""
        with self.runtime.cond_lock:
            self.in_handler = True

    def handler_done(self) -> None:
        """The handler's coroutine is over (from any thread): its processor goes on with its own iteration."""
        with self.runtime.cond_lock:
            self.in_handler = False
            self.idle = False
            self.runtime.rouse()

    def wait(self, deadline_us: int | None, ready: Callable[[], bool]) -> None:
        """Block until woken, ``ready()`` holds, or the world's clock reaches ``deadline_us``.

        ``ready`` is checked under the lock that ``wake`` takes, so no wake-up is lost.
        """
        runtime = self.runtime
        with runtime.cond_lock:
            if ready() or (deadline_us is not None and runtime.clock.now_us() >= deadline_us):
                return
            self.deadline_us = deadline_us
            self.idle = True
            runtime.cond.notify_all()
            if runtime.clock.is_virtual:
                runtime.cond.wait_for(lambda: not self.idle and not self.ticking)
            else:  # real time: the deadline passes by itself
                timeout = None if deadline_us is None else max(0.0, (deadline_us - runtime.clock.now_us()) / MICROS)
                runtime.cond.wait_for(lambda: not self.idle, timeout)
            self.idle = False
            self.deadline_us = None


class Runtime:
    """Runs the world's coroutines on its clock."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.allowed_until_us = clock.now_us()
        self.loop = _VirtualTimeLoop(self)
        self._lock = threading.RLock()
        #: The lock of ``cond``, taken directly where nothing waits: a Condition's own ``with`` is two Python-level
        #: calls, and the world takes it a dozen times a block (as ``wakers.Notifier`` does its own).
        self.cond_lock = threading.RLock()
        self.cond = threading.Condition(self.cond_lock)
        self.participants: list[Participant] = []
        #: How long (real seconds) a participant may stay busy before the world reports it as stuck.
        self.stuck_after_s = 30.0
        #: Held by whoever changes the world: its loop while it runs, a participant while it works.
        #: So a background processor thread never acts in the middle of a block or a message.
        self.turn = Turn(self.cond)
        #: The thread inside :meth:`call`'s function, if any: the loop runs in it next.
        self._caller: int | None = None
        #: Run when :meth:`call`'s function returns, before the loop: the world's persists left for then
        #: (``World._persist_quietly``).
        self.after_call: list[Callable[[], None]] = []
        #: Jobs handed to threads from the loop (``run_in_executor``), not yet done: the clock waits for them.
        self.jobs = 0
        self._jobs_lock = threading.Lock()  # (a job starts on any thread: the one that starts or wakes it)
        self._jobs_done: Optional[asyncio.Future[None]] = None
        #: Jobs' threads asleep on the world's clock (``sleep_job``, ``alarm_job``): woken (``set()``) when the world
        #: closes, if not before.
        self._sleepers: set[Any] = set()
        #: Entered around each such job's hand-over, if set: what it yields is not empty if the job submitted meanwhile
        #: is counted by whoever set it (a check counts the learner's work as pool work of theirs, watched for hangs).
        self.hand_over: Optional[Callable[[], contextlib.AbstractContextManager[Sized]]] = None
        #: Whether a background processor on this runtime prints a handler's error as it stops (a check says
        #: so in its verdict instead: the learner started no processor to stop() or join()).
        self.announce_errors = True

    # --- participants ------------------------------------------------------------------------

    def join(self, name: str) -> Participant:
        with self.cond_lock:
            participant = Participant(self, name)
            self.participants.append(participant)
            return participant

    def leave(self, participant: Participant) -> None:
        with self.cond_lock:
            if participant in self.participants:
                self.participants.remove(participant)
            self.cond.notify_all()

    def in_call_with_nothing_queued(self) -> bool:
        """Whether this thread is inside :meth:`call`'s function and nothing waits on the loop yet: what would be
        queued now would run first once the function returns (see ``after_call``)."""
        return self._caller == threading.get_ident() and not self.loop._ready  # type: ignore[attr-defined]

    def holds_turn(self) -> bool:
        """Whether this thread is the world's, in its turn: running the loop, or inside :meth:`call`."""
        thread = threading.get_ident()
        return thread == self._caller or thread == self.loop._thread_id  # type: ignore[attr-defined]

    def run_deferred_wakes(self) -> None:
        """Do the work of the participants the world woke as they slept (``Participant.on_wake``), here, where
        their threads would have taken the turn: one that has more to do is woken after all."""
        while True:
            with self.cond_lock:  # (a plain loop: most calls find none, at every step of the world)
                for p in self.participants:
                    if p.wake_deferred:
                        break
                else:
                    return
                p.wake_deferred = False
                p.ticking = True  # (its thread, should anything wake it meanwhile, waits until this is done)
            later = None
            try:
                if p.on_wake is not None:
                    later = p.on_wake(self.clock.now_us())  # (components' locks: not ours)
            finally:
                with self.cond_lock:
                    p.ticking = False
                    if later is not None and p.idle:  # still asleep, until then
                        p.deadline_us = later
                    else:
                        p.idle = False
                        self.rouse()

    def rouse(self) -> None:
        """Tell the participants set busy (``cond`` held): now, or as this thread gives the turn back if it holds it
        (see ``Turn``)."""
        if self.turn.held_here():
            self.turn.rouse_pending = True
        else:
            self.cond.notify_all()

    def wait_participants_idle(self) -> bool:
        """Wait until no participant is busy. False if one was (what it sent comes first); raises if one stays
        busy for ``stuck_after_s`` real seconds (its work is stuck)."""
        self.run_deferred_wakes()
        if self.all_idle():
            return True
        give_up = time.monotonic() + self.stuck_after_s
        while True:
            self.turn.release()  # the loop's thread holds it: hand it to the busy participants
            try:
                with self.cond_lock:  # (a wake left to the world meanwhile, by a thread outside its turn: done below)
                    done = self.cond.wait_for(self._asleep_or_left_to_the_world, give_up - time.monotonic())
                    busy = [p.name for p in self.participants if not p.idle]  # named now: it may finish soon
            finally:
                self.turn.acquire()  # (a participant still at work holds the turn until it is done)
            if not done:
                raise RuntimeError(
                    f"the world cannot move time on: {', '.join(busy)} has been busy for more than "
                    f"{self.stuck_after_s:g} s of real time. Is its event handler stuck?"
                )
            self.run_deferred_wakes()
            if self.all_idle():
                return False

    def _asleep_or_left_to_the_world(self) -> bool:
        return all(p.idle for p in self.participants) or any(p.wake_deferred for p in self.participants)

    def job_started(self) -> Callable[[], None]:
        """Count a job run on a thread of its own (not ``run_in_executor``'s): the clock stands still until the
        function returned is called, from any thread, when it is done."""
        with self._jobs_lock:
            self.jobs += 1

        def done() -> None:
            try:
                self.loop.call_soon_threadsafe(self._job_done, None)
            except RuntimeError:  # the world is gone: nothing waits for it any more
                pass

        return done

    def sleep_job(self, seconds: float) -> bool:
        """From a job's thread: sleep ``seconds`` on the world's clock (``time.sleep`` in a thread your code started,
        during a check). The job stops counting until then, and counts again as it wakes, so time moves on meanwhile
        and what it does next lands at the same moment on every run. False, at once, if the world is gone."""
        woken = threading.Event()

        def fall_asleep() -> None:  # (on the loop: its wake-up is set before it stops counting, so time cannot pass it)
            self.loop.call_later(max(0.0, seconds), wake)
            self._job_done(None)

        def wake() -> None:
            with self._jobs_lock:
                self.jobs += 1
            self._sleepers.discard(woken)
            woken.set()

        self._sleepers.add(woken)
        try:
            self.loop.call_soon_threadsafe(fall_asleep)
        except RuntimeError:  # the world is gone: nothing left to wait for
            return False
        woken.wait()
        return not self.loop.is_closed()

    def alarm_job(self, alarm: Any, seconds: float) -> bool:
        """From a job's thread, about to wait with a time limit (``Event.wait(timeout)``): ``alarm.start`` on the
        world's loop (see ``exercises.watch.Alarm``), and ``alarm.set()`` if the world closes first. False if it is
        gone."""
        self._sleepers.add(alarm)
        if alarm.start(self.loop, seconds, lambda: self._sleepers.discard(alarm)):
            return True
        self._sleepers.discard(alarm)
        return False

    def _job_done(self, _future: Any) -> None:
        with self._jobs_lock:
            self.jobs -= 1
        if not self.jobs and self._jobs_done is not None and not self._jobs_done.done():
            self._jobs_done.set_result(None)

    async def _jobs_finished(self) -> None:
        """Until no job handed to a thread is left running."""
        while self.jobs:
            self._jobs_done = self.loop.create_future()
            await self._jobs_done

    def jump(self, target_us: int | None) -> bool:
        """Move the clock to the next thing due, within what ``advance`` allows. True if it moved.

        A participant whose deadline work the runtime can do while it sleeps (``on_deadline``) is not
        woken, and the clock goes straight on to the next deadline, until one needs the loop or a
        participant awake. That work runs without the runtime's lock, since it takes components' locks.
        """
        moved = False
        while not self.jobs:
            with self.cond_lock:  # (one pass over the participants each, not a list per question: a stop per block)
                first_us = target_us
                for p in self.participants:
                    if p.deadline_us is not None and (first_us is None or p.deadline_us < first_us):
                        first_us = p.deadline_us
                if first_us is None:
                    break
                next_us = max(first_us, self.clock.now_us())
                if next_us > self.allowed_until_us + _ROUNDING_SLACK_US:
                    break
                self.clock.move_to(next_us)
                moved = True
                quiet: list[Participant] = []
                due, others_us = 0, target_us  # (the first deadline of anything not due now)
                for p in self.participants:
                    if p.deadline_us is None:
                        continue
                    if p.deadline_us > next_us:
                        others_us = p.deadline_us if others_us is None else min(others_us, p.deadline_us)
                        continue
                    due += 1
                    if p.on_deadline is not None and p.idle:
                        p.ticking = True
                        quiet.append(p)
                    else:
                        p.idle = False
                woken = len(quiet) < due
                if woken:  # a sleeper whose deadline the runtime works through stays asleep: no need to wake it
                    self.rouse()
                # A lone sleeper may go on through its own deadlines until anything else falls due.
                horizon_us = others_us if due == 1 else next_us
            for p in quiet:
                woken |= not self._tick(p, next_us, horizon_us)
            if woken or (target_us is not None and next_us >= target_us):
                break
        return moved

    def skip_to(self, target_us: int) -> bool:
        """From a coroutine on the loop: move the clock to ``target_us`` at once, as waiting for it would, if
        nothing else is ready or due before it (a timer that would only wake to wait again). True if the
        clock is there; otherwise the caller sleeps until then, as usual.

        It moves time as the loop's selector does (``jump``), without the loop's round trip through a timer.
        """
        loop = self.loop
        if not self.clock.is_virtual or loop._ready or self.jobs:  # type: ignore[attr-defined]
            return False
        scheduled = loop._scheduled  # type: ignore[attr-defined]  # asyncio's heap of timers
        if scheduled and round(scheduled[0].when() * MICROS) <= target_us:
            return False
        if not self.participants:  # no one else's deadlines to work through: what jump would do, in short
            # (Unreached while the advance's own timer is in the heap, as it is until time reaches its end;
            # kept so that this path never moves time further than jump would.)
            if target_us > self.allowed_until_us + _ROUNDING_SLACK_US:  # pragma: no mutate
                return False
            self.clock.move_to(max(target_us, self.clock.now_us()))
            return True
        if not self.all_idle():
            return False
        self.jump(target_us)
        return self.clock.now_us() >= target_us

    def _tick(self, p: Participant, now_us: int, horizon_us: int | None) -> bool:
        """Do ``p``'s deadline work while it sleeps, and its next ones before ``horizon_us`` (nothing else is due
        until then, so the clock may go straight there); False if it must wake up after all."""
        until_us = self.allowed_until_us + _ROUNDING_SLACK_US + 1  # (time may not pass it: advance's end)
        if horizon_us is not None:
            until_us = min(until_us, horizon_us)
        while True:
            later = p.on_deadline(now_us, until_us)  # type: ignore[misc]
            if later is None or later <= now_us or later >= until_us or not p.idle:  # something else comes first
                break
            self.clock.move_to(later)
            now_us = later
        with self.cond_lock:
            p.ticking = False
            asleep = later is not None and later > now_us and p.idle
            if asleep:  # still asleep: its thread, waiting for "not idle", has nothing to see
                p.deadline_us = later
            else:
                p.idle = False
                self.rouse()
        return asleep

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coro`` on the loop to completion, then let everything it started settle."""
        with self._lock:
            return self._run_settled(coro)

    def call(self, fn: Callable[[], _T]) -> _T:
        """``run`` for a plain function: called here, in the world's turn, with the loop run only to settle what it
        set off (a node or a processor woken), as ``run`` would settle it. Mining is such a call, a thousand times a
        check, and most blocks set nothing off: the loop's round trip was a third of a block's time. Where this
        thread already runs an event loop (a Jupyter kernel's), as ``run``, on the helper thread."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            with self._lock, self.turn:  # (world_turn, inline: one call less of contextlib's, at every block)
                self.wait_participants_idle()
                caller, self._caller = self._caller, threading.get_ident()
                try:
                    result = fn()
                    for work in self.after_call:
                        work()
                    self.run_deferred_wakes()
                finally:
                    self._caller = caller
                if self.loop._ready or not self.all_idle():  # type: ignore[attr-defined]
                    self.loop.run_until_complete(self._settle())
                return result
        return self.run(_called(fn))

    def all_idle(self) -> bool:
        """Whether every participant is asleep with nothing left for the world to do for it (``cond``'s lock is
        re-entrant: a holder may ask too)."""
        with self.cond_lock:
            for p in self.participants:
                if not p.idle or p.wake_deferred:
                    return False
            return True

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of (virtual) time pass, running whatever falls due on the way."""
        with self._lock:
            target = self.clock.now_us() + round(seconds * MICROS)
            if self.clock.is_virtual:
                self.allowed_until_us = target
            try:
                self._run_settled(asyncio.sleep(seconds))
            finally:
                self.allowed_until_us = self.clock.now_us()

    def _run_settled(self, coro: Coroutine[Any, Any, _T]) -> _T:
        try:
            return self._in_loop_thread(self._run_and_settle(coro))
        except BaseException:
            coro.close()  # (never started if the world's turn was not had: closed, Python warns of no lost coroutine)
            raise

    async def _run_and_settle(self, coro: Coroutine[Any, Any, _T]) -> _T:
        result = await coro
        await self._settle()
        return result

    async def _settle(self) -> None:
        """Yield until nothing else is ready to run at this instant, participants included."""
        loop = asyncio.get_running_loop()
        for _ in range(100_000):
            await asyncio.sleep(0)
            if loop._ready:  # type: ignore[attr-defined]  # asyncio's queue of ready callbacks
                continue
            self.wait_participants_idle()  # what they send lands in the ready queue
            if self.jobs:
                await self._jobs_finished()
                continue
            if not loop._ready:  # type: ignore[attr-defined]
                return

    def _in_loop_thread(self, coro: Coroutine[Any, Any, _T]) -> _T:
        try:
            return self._on_loop(coro)
        except BaseException:
            if asyncio.iscoroutine(coro):  # (as in _run_settled; a gathering future needs no closing)
                coro.close()
            raise

    def _on_loop(self, coro: Coroutine[Any, Any, _T]) -> _T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            with self.world_turn():
                return self.loop.run_until_complete(coro)
        # This thread already runs a loop (a Jupyter kernel does): use a helper thread.
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                with self.world_turn():
                    box["result"] = self.loop.run_until_complete(coro)
            except BaseException as e:  # re-raised in the caller's thread below
                box["error"] = e

        thread = threading.Thread(target=work, name="ldkkit-world")
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["result"]

    @contextlib.contextmanager
    def world_turn(self) -> Iterator[None]:
        """The world's turn, once every participant is asleep again. What changes a node from outside the world's
        turn (a peer connected, a payment sent from a cell) wakes its processor there and then; the world's next
        step waits for that work, as for the work of a wake of its own, so that it lands before the step on every
        run (taking the turn first, a loaded machine's world mined a block before the woken thread persisted)."""
        with self.turn:
            self.wait_participants_idle()
            yield

    def participant_turn(self) -> Turn:
        """A participant's work happens in its turn: never while the world itself changes."""
        return self.turn

    @contextlib.contextmanager
    def turn_released(self) -> Iterator[None]:
        """Give the turn back while waiting for the world (to run a coroutine, say)."""
        self.turn.release()
        try:
            yield
        finally:
            self.turn.acquire()

    def call_soon_threadsafe(self, callback: Any, *args: Any) -> None:
        """Run ``callback`` on the loop soon, from any thread. From the loop's own thread that is a plain
        ``call_soon``: the loop is awake, so there is no need to wake it through its self-pipe. So it is from
        inside :meth:`call`, which runs the loop itself once its function returns (every block wakes nodes)."""
        loop = self.loop
        thread = threading.get_ident()
        if loop._thread_id == thread or self._caller == thread:  # type: ignore[attr-defined]
            loop.call_soon(callback, *args)
        else:
            loop.call_soon_threadsafe(callback, *args)

    def close(self) -> None:
        """Cancel what is still pending (handler tasks waiting for time) and close the loop."""
        if self.loop.is_closed():
            return
        for sleeper in list(self._sleepers):  # (their threads go on, and meet a world that is gone)
            sleeper.set()
        tasks = {task for task in list(self.loop.tasks) if not task.done()}  # (asyncio.all_tasks, of this loop's)
        for task in tasks:
            task.cancel()
        if tasks:
            self._in_loop_thread(_ended(tasks))
        self.loop.close()


#: How long (in real time: the world's clock no longer moves) a world being closed waits for its cancelled tasks.
CLOSE_WAIT_S = 2.0


async def _ended(tasks: set[asyncio.Task[Any]]) -> None:
    """Let cancelled tasks end: those awaiting a thread's work get its answer. One that goes on when cancelled (under
    a shield of its own, say) is left after ``CLOSE_WAIT_S``: the world is gone, and a check must end."""
    deadline = time.perf_counter() + CLOSE_WAIT_S
    while not all(task.done() for task in tasks) and time.perf_counter() < deadline:
        await asyncio.sleep(0)
        if not all(task.done() for task in tasks):
            threading.Event().wait(0.001)  # (a thread's answer, call_soon_threadsafe, comes in meanwhile)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # (taken: asyncio would log it, once collected, at a moment no run repeats)
