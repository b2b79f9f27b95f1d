"""Time for the simulation: virtual by default, real when a user asks for it.

Like SimLN's ``--virtual-time``, a :class:`VirtualClock` jumps straight to the next thing
that is due, so a simulated day runs in well under a second and every run with the same
seed sees the same times. Time is kept in whole microseconds so that LDK's timer
intervals add up exactly.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

#: The simulation starts at 2026-01-01 00:00:00 UTC, so invoice timestamps are stable.
EPOCH_UNIX_SECONDS = 1_767_225_600

MICROS = 1_000_000


@dataclass(order=True)
class _Timer:
    due_us: int
    seq: int
    callback: Callable[[], object] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """A clock that only moves when :meth:`advance` (or :meth:`run_due`) moves it.

    Callbacks scheduled with :meth:`call_later` run in time order, ties in the order they
    were scheduled, on the thread that advances the clock.
    """

    is_virtual = True

    def __init__(self) -> None:
        self._now_us = 0
        self._timers: list[_Timer] = []
        self._seq = itertools.count()
        self._lock = threading.RLock()

    def now(self) -> float:
        """Seconds since the simulation started."""
        return self._now_us / MICROS

    def now_us(self) -> int:
        return self._now_us

    def unix_time(self) -> int:
        """Whole seconds since the UNIX epoch, for invoice timestamps and block times."""
        return EPOCH_UNIX_SECONDS + self._now_us // MICROS

    def duration_since_epoch(self) -> timedelta:
        """LDK's ``Duration`` since the UNIX epoch, as the scorer and graph pruning take it."""
        return timedelta(seconds=EPOCH_UNIX_SECONDS, microseconds=self._now_us)

    def call_later(self, delay_s: float, callback: Callable[[], object]) -> _Timer:
        """Run ``callback`` once ``delay_s`` seconds have passed."""
        return self.call_at_us(self._now_us + max(0, round(delay_s * MICROS)), callback)

    def call_at_us(self, due_us: int, callback: Callable[[], object]) -> _Timer:
        with self._lock:
            timer = _Timer(due_us, next(self._seq), callback)
            heapq.heappush(self._timers, timer)
            return timer

    def next_due_us(self) -> int | None:
        with self._lock:
            while self._timers and self._timers[0].cancelled:
                heapq.heappop(self._timers)
            return self._timers[0].due_us if self._timers else None

    def _pop_due(self, until_us: int) -> _Timer | None:
        with self._lock:
            due = self.next_due_us()
            if due is None or due > until_us:
                return None
            timer = heapq.heappop(self._timers)
            self._now_us = max(self._now_us, timer.due_us)
            return timer

    def advance(self, seconds: float) -> None:
        """Move time forward, running everything that falls due on the way."""
        self.advance_to_us(self._now_us + round(seconds * MICROS))

    def advance_to_us(self, target_us: int) -> None:
        while (timer := self._pop_due(target_us)) is not None:
            timer.callback()
        with self._lock:
            self._now_us = max(self._now_us, target_us)

    def run_due(self) -> bool:
        """Run what is due now, without moving time. True if anything ran."""
        ran = False
        while (timer := self._pop_due(self._now_us)) is not None:
            timer.callback()
            ran = True
        return ran


class RealClock(VirtualClock):
    """Wall-clock time, for a live dashboard. Due callbacks run when :meth:`run_due` is called."""

    is_virtual = False

    def __init__(self) -> None:
        super().__init__()
        self._start = time.monotonic()

    def now_us(self) -> int:
        self._now_us = round((time.monotonic() - self._start) * MICROS)
        return self._now_us

    def now(self) -> float:
        return self.now_us() / MICROS

    def unix_time(self) -> int:
        return EPOCH_UNIX_SECONDS + self.now_us() // MICROS

    def run_due(self) -> bool:
        self.now_us()
        return super().run_due()

    def advance_to_us(self, target_us: int) -> None:
        """Real time cannot be skipped: wait for it, running callbacks as they fall due."""
        while (now := self.now_us()) < target_us:
            self.run_due()
            due = self.next_due_us()
            time.sleep(max(0.0, (min(target_us, due if due is not None else target_us) - now) / MICROS))
        self.run_due()
