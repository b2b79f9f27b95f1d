"""The queue behind ``process_pending_events``: LDK's ``EventsProvider`` contract, written once.

Mirrors the event handling shared by ``ChannelManager`` and ``ChainMonitor``
(``lightning::events::EventsProvider`` and LDK's ``process_events_body``):

- events go to the handler one at a time, oldest first;
- an event leaves the queue only once the handler has returned normally;
- ``ReplayEvent`` (returned or raised) stops processing: that event and the ones after it
  are handed over again next time;
- any other exception also leaves the event queued, and reaches the caller as an
  :class:`EventHandlerError` that names the event;
- the handler may call back into the component, and events it causes are handled in the
  same call; calling ``process_pending_events`` from inside the handler returns at once;
- "repeated events" (a ChannelMonitor's fee-bump requests) come last, only if nothing asked
  for a replay, and what the handler answers them is ignored (``repeated``).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from typing import Any

from ..wakers import Future, Notifier
from . import Event, ReplayEvent


class EventHandlerError(Exception):
    """The event handler raised. ``event`` is the event it was handling; it stays queued."""

    def __init__(self, event: Event, error: BaseException) -> None:
        self.event = event
        self.error = error
        super().__init__(
            f"your event handler raised {type(error).__name__} while handling {type(event).__qualname__}: {error}\n"
            f"  event: {event!r}\n"
            "  Nothing is lost: the event stays queued and will be handed to the handler again. "
            "Fix the handler (the last lines of its traceback point at the line that failed), then process "
            "events again."
        )


class EventQueue:
    """A component's pending events, and the one correct way to hand them to a handler."""

    def __init__(self, owner: str, notifier: Notifier | None = None) -> None:
        self.owner = owner  # pragma: no mutate  (a label for whoever inspects a queue: nothing reads it)
        #: How plain code runs an async handler's coroutine: the world sets its own runtime,
        #: so that tasks the handler spawns (asyncio.create_task) live on.
        self.runner: Callable[[Any], Any] | None = None
        self.notifier = notifier or Notifier()
        self._events: list[Event] = []
        self._lock = threading.RLock()
        self._busy = threading.Lock()
        self._local = threading.local()
        #: Whether the last round of processing stopped at an event the handler asked to replay.
        self.replay_requested = False
        #: Called with each event just before a handler gets it (the world's event log).
        self.observer: Callable[[Event], None] | None = None
        #: Called whenever events are queued or handled (a ChainMonitor persists them with its monitors).
        self.on_change: Callable[[], None] | None = None

    def push(self, event: Event) -> None:
        # No lock: list.append is atomic (Python's FAQ on thread safety; free-threaded builds lock each list),
        # and an append only adds at the end. What swaps or shortens the list (replace, _drop)
        # takes the lock and works on the list in place, so it never misses an event appended meanwhile.
        self._events.append(event)
        if self.on_change is not None:
            self.on_change()
        notifier = self.notifier
        if not notifier._pending:  # (a burst of events notifies once: see Notifier.notify, read the same way)
            notifier.notify()

    def pending(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def replace(self, events: list[Event]) -> None:
        with self._lock:
            self._events[:] = events  # in place: a push never appends to a list no longer ours

    def __bool__(self) -> bool:
        return bool(self._events)

    def get_future(self) -> Future:
        return self.notifier.get_future()

    def process(self, handler: Callable[[Event], Any], repeated: Callable[[], list[Event]] | None = None) -> int:
        """Hand every event to a plain handler; returns how many were handled.

        ``repeated`` gives events taken as processing begins and handed over after all the others, only if none
        asked for a replay (LDK's "repeated events", a ChannelMonitor's fee-bump requests, which it forgets as it
        takes them): what the handler answers them is ignored.
        """
        if not (self._events or repeated) or not self._begin():  # (every block wakes the processor, most often
            return 0  # with nothing queued)
        try:
            last = repeated() if repeated is not None else ()
            handled = 0
            while self._events and (batch := self.pending()):  # all queued, under one lock; then what came meanwhile
                observer = self.observer
                done = 0
                try:
                    for event in batch:
                        if observer is not None:
                            observer(event)
                        try:
                            result = handler(event)
                        except (KeyboardInterrupt, SystemExit):
                            raise
                        except BaseException as e:  # judged below, with the event named
                            result = e
                        if result is not None:  # None, the usual answer, needs no more thought
                            if inspect.isawaitable(result):
                                result = answer(run_coroutine_blocking(result, self.runner))
                            if not self._judge(event, result):
                                return handled + done
                        done += 1
                finally:
                    self._drop(done)
                handled += done
            for event in last:
                self._observe(event)
                result = _call(handler, event)
                if inspect.isawaitable(result):
                    result = answer(run_coroutine_blocking(result, self.runner))
                _judge_repeated(event, result)
            return handled
        finally:
            self._end()

    async def process_async(
        self, handler: Callable[[Event], Any], repeated: Callable[[], list[Event]] | None = None
    ) -> int:
        """Hand every event to a plain or async handler, awaiting it (``repeated``: as :meth:`process`)."""
        if not (self._events or repeated) or not self._begin():
            return 0
        try:
            last = repeated() if repeated is not None else ()
            handled = 0
            while self._events and (batch := self.pending()):
                observer = self.observer
                done = 0
                try:
                    for event in batch:
                        if observer is not None:
                            observer(event)
                        result = _call(handler, event)
                        if inspect.isawaitable(result):
                            result = await _awaited(result)
                        if result is not None and not self._judge(event, result):  # (None: handled)
                            return handled + done
                        done += 1
                finally:
                    self._drop(done)
                handled += done
            for event in last:
                self._observe(event)
                result = _call(handler, event)
                if inspect.isawaitable(result):
                    result = await _awaited(result)
                _judge_repeated(event, result)
            return handled
        finally:
            self._end()

    def _observe(self, event: Event) -> None:
        if self.observer is not None:
            self.observer(event)

    def _begin(self) -> bool:
        """One caller at a time: LDK's ``pending_events_processor`` flag. A second caller, from
        another thread or from inside the handler itself, returns at once (as LDK's does): the
        caller already handing out events hands out the new ones too. True if this caller is to
        process, and must then call :meth:`_end` once done."""
        if getattr(self._local, "active", False) or not self._busy.acquire(blocking=False):
            return False
        self._local.active = True
        self.replay_requested = False
        return True

    def _end(self) -> None:
        self._local.active = False
        self._busy.release()

    def _judge(self, event: Event, result: Any) -> bool:
        """True if the handler handled ``event``; False if it asked for a replay; raise if it failed."""
        if isinstance(result, ReplayEvent) or result is ReplayEvent:
            self.replay_requested = True
            self.notifier.notify()  # come back soon, as LDK wakes the processor
            return False
        if isinstance(result, BaseException):
            raise EventHandlerError(event, result) from result
        return True

    def _drop(self, count: int) -> None:
        """Remove the first ``count`` events: handled. Others only append, so they are still first."""
        if count:
            with self._lock:
                del self._events[:count]
            if self.on_change is not None:
                self.on_change()


async def _awaited(result: Any) -> Any:
    """What an async handler answered, awaited; the exception it raised, if any (judged with the event named)."""
    try:
        return answer(await result)
    except asyncio.CancelledError:
        raise
    except BaseException as e:
        return e


def _judge_repeated(event: Event, result: Any) -> None:
    """A repeated event's answer: a replay asked for is ignored (LDK: "they will be replayed eventually anyways"),
    but an error is the handler's failure, raised as any other's."""
    if isinstance(result, BaseException) and not isinstance(result, ReplayEvent):
        raise EventHandlerError(event, result) from result


class ReturnedUnawaited(TypeError):
    """A handler answered with something still to await: in an async handler, ``return persist(...)`` with its
    ``await`` forgotten. That coroutine never runs, so the event is not handled."""

    def __init__(self, name: str) -> None:
        self.name = name
        #: What the handler did, in words.
        self.happened = f"it returned {name}(...) without awaiting it, so that code never ran"
        super().__init__(f"{self.happened}. Write return await {name}(...): a handler's answer is None or "
                         "ReplayEvent()")


def answer(result: Any) -> Any:
    """What an async handler answered, once awaited: None or ``ReplayEvent``. An answer that is itself awaitable is
    :class:`ReturnedUnawaited` (a coroutine is closed: it never ran, and Python need not warn of it later), judged
    as an error the handler raised: awaiting it here could wait for ever on the very loop that runs the handler."""
    if result is None or not inspect.isawaitable(result):  # (None, the usual answer, skips the ABC check)
        return result
    name = getattr(result, "__name__", None) or type(result).__name__  # (a coroutine: its function's name)
    if inspect.iscoroutine(result):
        result.close()
    return ReturnedUnawaited(name)


def _call(handler: Callable[[Event], Any], event: Event) -> Any:
    try:
        return handler(event)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:
        return e


def run_coroutine_blocking(coro: Any, runner: Callable[[Any], Any] | None = None) -> Any:
    """Run an async handler's coroutine to completion from plain code, returning or capturing its outcome."""

    async def capture() -> Any:
        try:
            return await coro
        except BaseException as e:  # handed back like a plain handler's exception
            return e

    if runner is not None:
        return runner(capture())
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(capture())
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(asyncio.run(capture())), name="ldkkit-async-handler")
    thread.start()
    thread.join()
    return box[0]
