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
import math
import selectors
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from .clock import MICROS, VirtualClock

_T = TypeVar("_T")
_ROUNDING_SLACK_US = 10


class _VirtualTimeSelector(selectors.BaseSelector):
    """Wraps a real selector; a wait for a timer jumps the virtual clock instead of sleeping."""

    def __init__(self, runtime: Runtime) -> None:
        self._real = selectors.DefaultSelector()
        self._runtime = runtime

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
        clock = self._runtime.clock
        if clock.is_virtual and timeout is not None and timeout > 0:
            target = clock.now_us() + math.ceil(timeout * MICROS)
            # asyncio computes deadlines in float seconds: allow a few microseconds of rounding.
            if target <= self._runtime.allowed_until_us + _ROUNDING_SLACK_US:
                clock._now_us = target  # jump to the next timer: nothing else can happen first
                return self._real.select(0)
        return self._real.select(timeout)


class _VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, runtime: Runtime) -> None:
        super().__init__(_VirtualTimeSelector(runtime))
        self._runtime = runtime
        self._clock_resolution = 1 / MICROS

    def time(self) -> float:
        return self._runtime.clock.now_us() / MICROS


class Runtime:
    """Runs the world's coroutines on its clock."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.allowed_until_us = clock.now_us()
        self.loop = _VirtualTimeLoop(self)
        self._lock = threading.RLock()

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coro`` on the loop to completion, then let everything it started settle."""
        with self._lock:
            return self._in_loop_thread(self._run_and_settle(coro))

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of (virtual) time pass, running whatever falls due on the way."""
        with self._lock:
            target = self.clock.now_us() + round(seconds * MICROS)
            if self.clock.is_virtual:
                self.allowed_until_us = target
            try:
                self._in_loop_thread(self._run_and_settle(asyncio.sleep(seconds)))
            finally:
                self.allowed_until_us = self.clock.now_us()

    async def _run_and_settle(self, coro: Coroutine[Any, Any, _T]) -> _T:
        result = await coro
        await self._settle()
        return result

    async def _settle(self) -> None:
        """Yield until nothing else is ready to run at this instant."""
        loop = asyncio.get_running_loop()
        for _ in range(100_000):
            await asyncio.sleep(0)
            if not loop._ready:  # type: ignore[attr-defined]  # asyncio's queue of ready callbacks
                return

    def _in_loop_thread(self, coro: Coroutine[Any, Any, _T]) -> _T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self.loop.run_until_complete(coro)
        # This thread already runs a loop (a Jupyter kernel does): use a helper thread.
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["result"] = self.loop.run_until_complete(coro)
            except BaseException as e:  # re-raised in the caller's thread below
                box["error"] = e

        thread = threading.Thread(target=work, name="ldkkit-world")
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["result"]

    def call_soon_threadsafe(self, callback: Any, *args: Any) -> None:
        self.loop.call_soon_threadsafe(callback, *args)

    def close(self) -> None:
        """Cancel what is still pending (handler tasks waiting for time) and close the loop."""
        if self.loop.is_closed():
            return
        tasks = asyncio.all_tasks(self.loop)
        for task in tasks:
            task.cancel()
        if tasks:
            self._in_loop_thread(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.close()
