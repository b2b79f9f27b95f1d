"""What a task of your handler raised, and whether anything of yours took it: asyncio's own test of an error that
"was never retrieved", made at a moment the check chooses (the check's world and the grader's learner process alike).

Not LDK's: the kit's own watch on the tasks a handler spawns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional, TypeVar

_K = TypeVar("_K")  # (``settled``: what a failed task worked for)


def error_of(task: Any) -> Optional[BaseException]:
    """What a done task raised, looked at without taking it (``exception()`` would: asyncio's test of an error that
    reached no one is whether anyone took it)."""
    return None if task.cancelled() else getattr(task, "_exception", None)


def settled(failures: list[tuple[_K, BaseException, Any]], busy: Callable[[_K], bool]
            ) -> tuple[list[tuple[_K, BaseException, Any]], list[tuple[_K, BaseException]]]:
    """Of ``failures`` (what, raised, in which task: ``what`` names the work it did, a hand-over or an event's number),
    those nothing took (``untaken``): still pending while ``busy(what)``, else told now. A task told is taken here, so
    that asyncio has nothing to log once it is collected."""
    pending, told = [], []
    for what, error, task in failures:
        if not untaken(task):
            continue
        if busy(what):
            pending.append((what, error, task))
            continue
        task.exception()
        told.append((what, error))
    return pending, told


def untaken(task: Any) -> bool:
    """Whether nothing took what ``task`` raised: no ``await`` of it, no ``result()`` or ``exception()`` (asyncio's
    ``_log_traceback``, by which it logs "Task exception was never retrieved")."""
    return bool(getattr(task, "_log_traceback", True))
