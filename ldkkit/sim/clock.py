"""Time for the simulation: virtual by default, real when a user asks for it.

Like SimLN's ``--virtual-time``, a :class:`VirtualClock` jumps straight to the next thing
that is due (the world's event loop moves it, see :mod:`ldkkit.sim.runtime`), so a
simulated day runs in well under a second and every run with the same seed sees the same
times. Time is kept in whole microseconds so that LDK's timer intervals add up exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

#: The simulation starts at 2026-01-01 00:00:00 UTC, so invoice timestamps are stable.
EPOCH_UNIX_SECONDS = 1_767_225_600

MICROS = 1_000_000


class VirtualClock:
    """A clock that only moves when the world's runtime moves it."""

    is_virtual = True

    def __init__(self) -> None:
        self._now_us = 0
        #: Called just before the time moves (the world's: its nodes' event logs stamp what was handed until then).
        self.before_move: Callable[[], None] | None = None

    def now_us(self) -> int:
        return self._now_us

    def move_to(self, now_us: int) -> None:
        """Move the time to ``now_us`` (only the world's runtime does), telling ``before_move`` first."""
        if now_us != self._now_us and self.before_move is not None:
            self.before_move()
        self._now_us = now_us

    def now(self) -> float:
        """Seconds since the simulation started."""
        return self.now_us() / MICROS

    def unix_time(self) -> int:
        """Whole seconds since the UNIX epoch, for invoice timestamps and block times."""
        return EPOCH_UNIX_SECONDS + self.now_us() // MICROS

    def duration_since_epoch(self) -> timedelta:
        """LDK's ``Duration`` since the UNIX epoch, as the scorer and graph pruning take it."""
        return timedelta(seconds=EPOCH_UNIX_SECONDS, microseconds=self.now_us())


class RealClock(VirtualClock):
    """Wall-clock time, counted from when the world was made, for a live dashboard."""

    is_virtual = False

    def __init__(self) -> None:
        super().__init__()
        self._start = time.monotonic()

    def now_us(self) -> int:
        return round((time.monotonic() - self._start) * MICROS)
