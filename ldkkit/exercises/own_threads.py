"""Threads your code starts, and work it submits to a ``ThreadPoolExecutor``, while a check runs your handler: jobs of
the check's world (``Recorder.counted``), so that what they do lands at the same simulated moment on every run.

Imported by :mod:`.recorder`, which it serves: ``threading.Thread.start`` and ``ThreadPoolExecutor.submit`` are
wrapped once, and do as before wherever no check records (the grader's learner process counts its own:
``sandbox.learner_threads``).
"""

from __future__ import annotations

import concurrent.futures
import sys
import threading
from collections.abc import Callable
from typing import Any

from .pools import submit_counted
from .watch import HANDED_OVER, handed_over, timer_run, yours

_thread_start = threading.Thread.start
_pool_submit = concurrent.futures.ThreadPoolExecutor.submit


def _start(self: threading.Thread) -> None:
    from .recorder import _RECORDING  # (the recorder imports this module)

    recorder = _RECORDING.get()
    if recorder is None or not yours(sys._getframe(1)):
        return _thread_start(self)
    run = timer_run(self) if isinstance(self, threading.Timer) else self.run
    self.run, counted = recorder.counted(run, own_thread=True)  # type: ignore[method-assign]
    try:
        return _thread_start(self)
    except BaseException:  # (no thread to wait for)
        counted.end()
        raise


def _submit(self: concurrent.futures.ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any,
            **kwargs: Any) -> concurrent.futures.Future[Any]:
    from .recorder import _RECORDING

    recorder = _RECORDING.get()
    if recorder is None or not (HANDED_OVER.get() is not None or _submitted_by_you(sys._getframe(1))):
        return _pool_submit(self, fn, *args, **kwargs)
    job, counted = recorder.counted(fn, own_thread=False)
    handed_over(counted)
    return submit_counted(self, _pool_submit, job, counted, *args, **kwargs)  # type: ignore[no-any-return]


def _submitted_by_you(frame: Any) -> bool:
    """Whether your code submitted the work: itself, or through the pool's own helpers (``Executor.map``)."""
    while frame is not None and frame.f_code.co_filename == concurrent.futures._base.__file__:
        frame = frame.f_back
    return frame is not None and yours(frame)


threading.Thread.start = _start  # type: ignore[method-assign]
concurrent.futures.ThreadPoolExecutor.submit = _submit  # type: ignore[method-assign]
