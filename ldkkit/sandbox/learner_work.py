"""The learner process's work as the check sees it, in the grader: the tasks its handler spawned, the threads its
code started, and a step of its own the check watches (``RemoteHandler._watch_step``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from .bridge import RemoteHandler


@dataclass
class Watched:
    """A step of the learner's the check watches (``RemoteHandler._watch_step``): its ``TaskStep`` if a spawned task's,
    and the hand-overs whose watch was changed for it, as they were; put back once the exchange ends."""

    keeper: Any
    step: Any
    changed: list[tuple[Any, Optional[float], int]]
    since: float = 0.0  # when the check's watch of it began (time.monotonic)

    def restore(self) -> None:
        if self.step is not None:
            self.keeper.task_steps.remove(self.step)
        for handling, started, thread in self.changed:
            handling.wall_started, handling.thread = started, thread


class LearnerTasks:
    """For the check, the tasks the learner's handler spawned, in its process, while handling one event: an
    ``asyncio.Task`` as ``Recorder.waiting`` and ``Recorder.crashed`` ask of one."""

    def __init__(self, handler: RemoteHandler, origin: int) -> None:
        self.handler, self.origin = handler, origin
        self._cancelled = False

    def done(self) -> bool:
        return self._cancelled or self.origin not in self.handler.waiting or self.handler.learner.dead is not None

    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> bool:
        self._cancelled = True  # (the learner process cancels them itself: ``RemoteHandler.crashed``)
        return True


class LearnerThreads:
    """For the check, the threads the learner's code started, in its process, while handling one event: a
    ``watch.Counted`` as ``Recorder.waiting`` asks of one (at work while one of them works, sleeps or waits a while:
    the learner process's ``working``)."""

    def __init__(self, handler: RemoteHandler, origin: int) -> None:
        self.handler, self.origin = handler, origin

    @property
    def at_work(self) -> bool:
        return self.origin in self.handler.working and self.handler.learner.dead is None
