"""Futures that wake the background processor when there is work.

Mirrors ``lightning::util::wakers`` (``Notifier``, ``Future``, ``Sleeper``). A notify
that arrives while nobody waits is remembered, and every future handed out completes at once
until one delivers it (LDK's ``callbacks_made``): the processor never misses a wake-up.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable


class Future:
    """Mirrors ``lightning::util::wakers::Future``: completes on the next notify."""

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier
        #: Each callback, with what says whether its call counts as the wake delivered (None: it always does).
        self._callbacks: list[tuple[Callable[[], None], Callable[[], bool] | None]] = []
        self._complete = False

    def is_complete(self) -> bool:
        """Whether this completed: LDK's ``poll``. Seen complete, its notification is delivered (LDK's
        ``callbacks_made``): the notifier's next future waits for a new one."""
        if not self._complete:
            return False
        self._delivered()
        return True

    def _delivered(self) -> None:
        """LDK's ``callbacks_made``, set on the notifier's current future: its ``get_future`` then clears the pending
        notification and makes a new future (done at once here: the same for every call that follows)."""
        notifier = self._notifier
        if notifier._future is self:  # (read unlocked first: most futures seen complete are no longer current)
            with notifier._lock:
                if notifier._future is self:
                    notifier._future = None
                    notifier._pending = False

    def register_callback_fn(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once this completes (at once if it already has).

        As in LDK, the callback must not call back into the ChannelManager.
        """
        self.watch(callback, None)

    def watch(self, callback: Callable[[], None], counts: Callable[[], bool] | None) -> None:
        """Not LDK's: ``register_callback_fn``, for a callback that counts as the wake delivered (LDK's
        ``callbacks_made``) only while ``counts()`` holds. Otherwise a notify it receives is still remembered
        for the next future, as LDK remembers one that only a ``Sleeper``'s callback got (see ``Sleeper``)."""
        with self._notifier._lock:
            if not self._complete:
                self._callbacks.append((callback, counts))
                return
        if counts is None or counts():
            self._delivered()
        callback()

    def wait(self) -> None:
        """LDK's ``Future::wait``: ``Sleeper::from_single_future(self).wait()``."""
        Sleeper.from_single_future(self).wait()

    def wait_timeout(self, timeout_s: float) -> bool:
        """LDK's ``Future::wait_timeout``: wait at most ``timeout_s`` seconds; True if it completed."""
        return Sleeper.from_single_future(self).wait_timeout(timeout_s)


class Notifier:
    """Mirrors LDK's internal ``Notifier``: hands out futures and completes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._future: Future | None = None
        self._pending = False  # a notify nobody has seen yet
        #: Called at the next notify, taking nothing from the next future's holder (see ``watch``).
        self._watchers: list[Callable[[], None]] = []

    def notify(self) -> None:
        """Complete the current future. As in LDK, a notification that a callback registered on it receives is
        delivered; one that nobody receives, or only a ``Sleeper``'s wait (delivered once that returns), is
        remembered, so the next future completes at once."""
        if self._pending:
            # Already remembered (and then no future waits: get_future takes the flag with the future), so this
            # one changes nothing: skip the lock, as a burst of queued events notifies once per batch. Read
            # without the lock: the caller's work came first, so a get_future that takes the flag meanwhile
            # is taken after that work, and whoever holds its future sees it.
            return
        with self._lock:
            future, callbacks, delivered = self._future, [], False
            if future is not None and not future._complete:  # LDK's complete_future, in the same lock
                future._complete = True
                callbacks, future._callbacks = future._callbacks, []
                for _, counts in callbacks:  # (a loop, not any() over a generator: every wake-up is here)
                    if counts is None or counts():
                        delivered = True
                        break
                if delivered:  # (LDK's callbacks_made: its next get_future makes a new future)
                    self._future = None
            if not delivered:  # kept, with the future now complete, until its notification is delivered
                self._pending = True
            watchers, self._watchers = self._watchers, []
        for callback, _ in callbacks:  # outside the lock: a callback may take others
            callback()
        for watcher in watchers:
            watcher()

    def watch(self, callback: Callable[[], None]) -> None:
        """Not LDK's: call ``callback`` at the next notify that is not already pending, without taking anything
        from whoever gets the next future. The world watches a node this way while a background processor runs
        it: LDK's processor is the notifier's only taker, and a future the world took would take its wake-up."""
        with self._lock:
            if callback not in self._watchers:
                self._watchers.append(callback)

    def get_future(self) -> Future:
        """LDK's ``get_future``: the current future, shared by every caller until its notification is delivered
        (a callback called, a wait returned, a poll seen complete; see ``Future._delivered``). So while a
        notification is pending, every call gets a complete future."""
        with self._lock:
            future = self._future
            if future is None:
                future = self._future = Future(self)
                future._complete = self._pending
            return future


class Sleeper:
    """Mirrors ``lightning::util::wakers::Sleeper``: waits for any of several futures.

    As LDK's, making one takes nothing: each wait watches the futures (``setup_wait``: the first one complete
    already, in order, or else the first to complete) with callbacks that do not count as the wake delivered
    (``callbacks_with_state``), and only once the wait returns is that one future's notification delivered
    (``callbacks_made``). A wait that times out, or a callback a past wait left behind, takes nothing: the
    notification stays pending for the next future."""

    def __init__(self, futures: list[Future]) -> None:
        self._futures = futures

    @classmethod
    def from_single_future(cls, future: Future) -> Sleeper:
        return cls([future])

    @classmethod
    def from_two_futures(cls, a: Future, b: Future) -> Sleeper:
        return cls([a, b])

    @classmethod
    def from_three_futures(cls, a: Future, b: Future, c: Future) -> Sleeper:
        return cls([a, b, c])

    def wait(self) -> None:
        """Wait until one of the futures completes."""
        self.wait_timeout(None)

    def wait_timeout(self, timeout_s: float | None) -> bool:
        """True if a future completed within ``timeout_s`` seconds (None: no limit)."""
        woke: list[Future] = []
        event = threading.Event()

        def wake(future: Future) -> None:
            woke.append(future)
            event.set()

        for future in self._futures:
            with future._notifier._lock:
                if future._complete:
                    woke.append(future)
                    event.set()
                    break
                future._callbacks.append((functools.partial(wake, future), never))
        if not event.wait(timeout_s):
            return False
        woke[-1]._delivered()  # (LDK's notified future is the last to set it)
        return True


def never() -> bool:
    """For ``Future.watch``: a wake-up that never counts as the notification delivered (LDK's
    ``callbacks_with_state`` and ``std_future_callbacks``: a sleeper or a task woken counts once its wait returns)."""
    return False


def take_wake(futures: list[Future]) -> bool:
    """What LDK's ``Sleeper`` wait and the async ``Selector`` do as they return: the first of their futures found
    complete, in order, has its notification delivered (``callbacks_made``); the others' stay pending, and the next
    wait on them returns at once. True if one was complete."""
    for future in futures:
        if future.is_complete():
            return True
    return False
