"""Checks for the workshop's workbooks: run your ``handle_ldk_events`` and say what it got right.

    from ldkkit.exercises import check
    check("open_channel_request", handle_ldk_events)

A check plays the workbook's situations against a fresh simulated node running your
handler and judges what your handler did to the node: the records it stored, the coins in
its wallet, the transactions broadcast, the channels, the state after a replay. On success
it returns a table of what it verified; on failure it raises :class:`ExerciseFailed` (an
``AssertionError``) naming the scenario and the event, what was expected and what
happened, the events so far, and a hint that teaches rather than tells.

One module per workbook holds that workbook's rules (``open_channel_request``, ...,
``capstone``); :mod:`.common` holds what they share, :mod:`.watch` what watches your
code while it runs (``time.sleep``, hangs), :mod:`.hints` the hints for errors a handler
raises, and :mod:`.learner` your progress. A handler that raises fails the check with its
own traceback; one that never returns is stopped after
:data:`~.common.HANDLER_TIMEOUT_S` seconds on one event. The handler may be plain or async.
"""

from __future__ import annotations

import collections
import importlib
from collections.abc import Callable
from typing import Any

from . import capstone, hints  # noqa: F401  (every workbook's rules, and the hints they register)
from .common import HANDLER_TIMEOUT_S, CheckResult, ExerciseFailed, run_check
from .learner import EXERCISES, WORKBOOKS, exercise_id, progress, record_pass, reset

__all__ = ["EXERCISES", "HANDLER_TIMEOUT_S", "WORKBOOKS", "CheckResult", "ExerciseFailed", "check", "progress",
           "reset"]


#: What a failure says when the workbook was checked before in this kernel (see ``check``).
CHECKED_BEFORE = ("Note: this workbook was checked before in this kernel, and every check plays new nodes with the "
                  "same payments. If your handler remembers what it did in a set or dict of its own, that memory is "
                  "of an earlier check's nodes: run the cell that makes it again, so it starts empty, as a node's "
                  "memory does when it restarts.")
_CHECKED: collections.Counter[str] = collections.Counter()  # (how often each workbook was checked in this process)


def check(exercise: str, handle_ldk_events: Callable[..., Any]) -> CheckResult:
    """Check your ``handle_ldk_events`` for one workbook; raise :class:`ExerciseFailed` if it falls short.

    ``exercise`` is the workbook's id (``"receiving_payments"``) or file name (``"03_receiving_payments"``).
    A pass is recorded in your progress (``progress()``). A failure of a workbook checked before in this kernel
    says so (``CHECKED_BEFORE``): each check's payments are the same, and a handler's own memory outlives a check.
    """
    try:
        key = exercise_id(exercise)
    except ValueError:  # (judge says so)
        key = str(exercise)
    before = _CHECKED[key]
    _CHECKED[key] += 1
    try:
        result = judge(exercise, handle_ldk_events)
    except ExerciseFailed as failure:
        if before:
            failure.args = (f"{failure}\n  {CHECKED_BEFORE}",)
        raise failure.with_traceback(None) from failure.__cause__  # your frames only, not the kit's
    record_pass(result.exercise)
    return result


def asked(exercise: str, handle_ldk_events: Callable[..., Any]) -> str:
    """The exercise a check is asked for; ExerciseFailed, the check's failure, for a workbook that does not exist or
    a handler that is no function (the grader's learner process fails the same way: ``sandbox.kernel``)."""
    try:
        exercise = exercise_id(exercise)
    except ValueError as e:
        raise ExerciseFailed(str(e)) from None
    if not callable(handle_ldk_events):
        raise ExerciseFailed(f"check() needs your handle_ldk_events function, got {handle_ldk_events!r}. "
                             "Run the cell that defines it first.")
    return exercise


def judge(exercise: str, handle_ldk_events: Callable[..., Any]) -> CheckResult:
    """``check``, recording nothing: what the grader runs for someone else's workbook."""
    exercise = asked(exercise, handle_ldk_events)
    rules = importlib.import_module(f"{__name__}.{exercise}").rules

    def body(session: Any) -> CheckResult:
        result = CheckResult(exercise)
        rules(session, result)
        session.finish()
        return result

    try:
        result = run_check(exercise, handle_ldk_events, body)
    except ExerciseFailed as failure:
        raise failure.with_traceback(None) from failure.__cause__  # your frames only, not the kit's
    return result
