"""The grader's learner process holds back what the learner's code does on other threads, and in tasks, until the
handler's step is over, as the check does (:func:`ldkkit.exercises.recorder._after_the_step`)."""

from __future__ import annotations

import asyncio
import threading
from typing import Optional

from ..exercises.watch import Counted, counted_here


class Gate:
    """As in the check (``recorder._after_the_step``): work the learner's code handed to a thread of its own acts on the
    node only once the handler's step that started or woke it is over: the handler awaits, or it returned and the
    grader has heard so (and read what it stored). Held here, that work does not count: the grader is told to come back
    at once, at the same moment (``held``: it steps the learner's loop as a job of the world's)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = True
        self._held: list[tuple[Counted, threading.Event]] = []
        #: Steps of tasks the handler spawned, due once it returned but before the grader heard so (as in the check,
        #: where its return is read before the world's loop runs them): each waits on its future, on the loop.
        self._deferred: list[asyncio.Future[None]] = []

    def close(self) -> None:
        with self._lock:
            self._open = False

    def open(self) -> None:
        with self._lock:
            self._open = True
            held, self._held = self._held, []
            deferred, self._deferred = self._deferred, []
        for future in deferred:  # (on the loop's thread: the handler awaits, or the grader heard it return)
            if not future.done():  # (a task cancelled meanwhile)
                future.set_result(None)
        for counted, released in held:
            counted.up()
            released.set()  # (its own: a gate closed again meanwhile, by the next event, does not hold it back)

    def holds(self) -> bool:
        with self._lock:
            return bool(self._held) or any(not future.done() for future in self._deferred)

    def deferral(self) -> Optional[asyncio.Future[None]]:
        """For a spawned task's step, on the loop: a future to wait on while the gate is closed (the handler returned
        and the grader has not heard so: the handler's own steps never run alongside a task's), else None."""
        with self._lock:
            if self._open:
                return None
            future = asyncio.get_running_loop().create_future()
            self._deferred.append(future)
            return future

    def wait(self) -> None:
        counted = counted_here()
        if counted is None:
            return
        released = threading.Event()
        with self._lock:
            if self._open:
                return
            self._held.append((counted, released))  # (first: its job ends with down(), then the loop asks what is held)
        counted.down()
        with counted.unbound():
            released.wait()
