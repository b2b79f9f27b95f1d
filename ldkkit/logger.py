"""A logger whose records can be read back, in a notebook or by a test.

Mirrors ``lightning::util::logger`` (``Logger``, ``Level``, ``Record``). ldk-sample's
``FilesystemLogger`` writes lines to a file; this one keeps records in memory so a lesson
can show them and a test can assert on them.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass


class Level(enum.IntEnum):
    """Mirrors ``lightning::util::logger::Level``, least to most severe."""

    Gossip = 0
    Trace = 1
    Debug = 2
    Info = 3
    Warn = 4
    Error = 5


@dataclass(frozen=True)
class LogRecord:
    """Mirrors ``lightning::util::logger::Record``: one logged line."""

    level: Level
    module_path: str
    args: str
    time: float  # simulation seconds

    def __str__(self) -> str:
        return f"{self.time:10.3f} {self.level.name.upper():5} [{self.module_path}] {self.args}"


class Lazy:
    """A message made only when a record is read: for lines whose words cost more than logging them (a route)."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], str]) -> None:
        self.make = make

    def __str__(self) -> str:
        return self.make()


class Logger:
    """Mirrors the ``lightning::util::logger::Logger`` trait, keeping what it is told."""

    def __init__(self, name: str = "", clock_now: Callable[[], float] | None = None, max_records: int = 10_000):
        self.name = name
        self._now = clock_now or (lambda: 0.0)
        #: Each record's fields, as a tuple: a LogRecord is built only when read (a payment's hop logs a line or two,
        #: and a frozen dataclass costs half of that; most lines are never read). The level is kept as a plain int:
        #: a tuple of plain values is one the garbage collector stops looking at, where a Level (an object of its own)
        #: kept each of a busy world's records in every full collection (60,000 of them in a 100-node network).
        self._records: list[tuple[int, str, str | Lazy, float]] = []
        self._max = max_records
        self._lock = threading.Lock()

    def log(self, level: Level, module_path: str, message: str | Lazy) -> None:
        with self._lock:
            self._records.append((int(level), module_path, message, self._now()))
            if len(self._records) > self._max:
                del self._records[: self._max // 10]

    def trace(self, module_path: str, message: str) -> None:
        self.log(Level.Trace, module_path, message)

    def debug(self, module_path: str, message: str) -> None:
        self.log(Level.Debug, module_path, message)

    def info(self, module_path: str, message: str) -> None:
        self.log(Level.Info, module_path, message)

    def warn(self, module_path: str, message: str) -> None:
        self.log(Level.Warn, module_path, message)

    def error(self, module_path: str, message: str) -> None:
        self.log(Level.Error, module_path, message)

    def records(self, min_level: Level = Level.Gossip) -> list[LogRecord]:
        with self._lock:
            return [LogRecord(Level(level), module_path, message if type(message) is str else str(message), time)
                    for level, module_path, message, time in self._records if level >= min_level]

    def lines(self, min_level: Level = Level.Info) -> list[str]:
        return [str(r) for r in self.records(min_level)]

    def __repr__(self) -> str:
        return f"Logger({self.name!r}, {len(self._records)} records)"
