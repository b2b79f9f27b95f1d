"""The learner process, seen from the grader: started, confined, its workbook's cells run (:class:`LearnerProcess`).

Every wait on it is bounded, and what ends it is told: a timeout (:class:`HandlerTimeout`), a broken protocol or its
own end (:class:`LearnerGone`), or code of the workbook's that ended it, telling why on a pipe of its own
(``provenance.FOREIGN_EXIT``). :class:`~ldkkit.sandbox.bridge.RemoteHandler` speaks to it.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, NoReturn, Optional

from . import jail as jail_module
from . import wire
from .provenance import FOREIGN_EXIT

#: How often a wait on the learner looks up (the check's watchdog stops the waiting thread between looks).
LOOK_S = 0.05
#: How long a learner process that closed its end of the pipe is given to be gone, so its exit code is known.
EXIT_WAIT_S = 1.0


#: The learner process imports the very kit the grader runs (-I: no PYTHONPATH, no user site).
_KIT_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: The stub ``ldkkit.reference`` goes in before the kit loads: the kit's modules that import it get the stub.
_CHILD_MAIN = ("import os, sys; sys.path.insert(0, sys.argv[1]); from ldkkit.sandbox.kernel import stub_reference; "
               "stub_reference(); from ldkkit.sandbox.child import main; os._exit(main(sys.argv[1:]))")


#: LDKKIT_SANDBOX_DEBUG=1 in the grader's environment: the learner process's stderr is the grader's.
_DEBUG = bool(os.environ.get("LDKKIT_SANDBOX_DEBUG"))


class HandlerTimeout(Exception):
    """The learner's handler did not answer within its wall-clock limit; its process was killed."""


class LearnerGone(Exception):
    """The learner process died, or broke the protocol, and was stopped."""


@dataclass
class Ready:
    """How the workbook's cells ended (:meth:`LearnerProcess.run_cells`)."""

    kind: Optional[str]  # the handler's: "plain", "async", or None for none
    why: str  # why there is none
    stopped: bool  # a cell raised before the check: Run All stopped there
    others: list[str]  # the other workbooks it called check for


class LearnerProcess:
    """One workbook's learner process, confined, with its cells run."""

    def __init__(self, jail: jail_module.Jail, deadline: float) -> None:
        self.deadline = deadline
        self.lock = threading.Lock()
        self.dead: Optional[Exception] = None
        self.foreign = ""  # why the handler ran code from outside the workbook's cells (``provenance``), if it did
        to_child, self._w = os.pipe()
        self._r, from_child = os.pipe()
        self._told, tell = os.pipe()  # (``provenance``: why the learner process ended itself, if it did so)
        os.set_blocking(self._told, False)
        self.scratch = jail.scratch
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-c", _CHILD_MAIN, _KIT_PARENT, str(to_child), str(from_child), str(tell)],
            pass_fds=(to_child, from_child, tell), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=None if _DEBUG else subprocess.DEVNULL, env=_child_env(), cwd="/", close_fds=True)
        for fd in (to_child, from_child, tell):
            os.close(fd)
        self.send({"jail": jail.to_dict()})
        confined = self.receive(self.remaining())
        if confined.get("op") != "confined":
            raise LearnerGone("the learner process did not start")
        self.missing = [str(m) for m in confined.get("missing") or []]

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def send(self, message: dict[str, Any]) -> None:
        if self.dead is not None:
            raise self.dead
        try:
            wire.send(self._w, message)
        except OSError as e:
            self.kill(LearnerGone(f"the learner process is gone ({e.strerror})"))
            raise self.dead from None  # type: ignore[misc]

    def receive(self, limit: float) -> dict[str, Any]:
        if self.dead is not None:
            raise self.dead
        try:
            return wire.receive(self._r, limit)
        except wire.WireTimeout:
            self.time_out(limit)
        except wire.ProtocolError as e:
            try:  # (its end closed the pipe a moment before the process is gone)
                code: Optional[int] = self.process.wait(timeout=EXIT_WAIT_S)
            except subprocess.TimeoutExpired:
                code = None
            self.kill(LearnerGone(f"the learner process broke the protocol: {e}" if code is None else
                                  f"the workbook's code ended its own process (exit code {code}): os._exit(), "
                                  "or a crash"))
        raise self.dead  # type: ignore[misc]

    def time_out(self, limit: float) -> NoReturn:
        """The learner did not answer within ``limit`` seconds: its process is stopped."""
        self.kill(HandlerTimeout(f"the learner's code did not answer within {limit:.0f} s, so its process "
                                 "was stopped (an endless loop, or a sleep in the handler?)"))
        raise self.dead  # type: ignore[misc]

    def answers_within(self, limit: float) -> bool:
        """Whether the learner process says something within ``limit`` seconds, waited for in short looks: the check's
        watchdog may stop this thread meanwhile (``HandlerStopped``, raised between two looks)."""
        deadline = time.monotonic() + limit
        while (wait := deadline - time.monotonic()) > 0:
            if select.select([self._r], [], [], min(wait, LOOK_S))[0]:
                return True
        return False

    def run_cells(self, cells: list[str], exercise: str) -> Ready:
        """Run the workbook, graded as workbook ``exercise``, up to its check: how it ended."""
        self.send({"cells": cells, "exercise": exercise})
        running = 0
        try:
            ready = self.receive(self.remaining())
            while ready.get("op") == "cell" and type(ready.get("number")) is int and 0 < ready["number"] <= len(cells):
                running = ready["number"]
                ready = self.receive(self.remaining())
        except HandlerTimeout:
            self.dead = HandlerTimeout(_cells_timed_out(cells, running))
            raise self.dead from None
        kind, why, others = ready.get("handler"), ready.get("why"), ready.get("others")
        if (ready.get("op") != "ready" or kind not in ("plain", "async", None) or not isinstance(why, str)
                or not isinstance(others, list) or not all(isinstance(other, str) for other in others)):
            self.kill(LearnerGone("the learner process broke the protocol"))
            raise self.dead  # type: ignore[misc]
        return Ready(kind, why[:1000], ready.get("stopped") is True, [other[:60] for other in others[:3]])

    def kill(self, why: Exception) -> None:
        """Stop the learner process for good; later calls raise ``why``."""
        if self.dead is None:
            self.dead = why
        try:
            self.process.kill()
        except OSError:
            pass
        self.process.wait()
        if self.process.returncode == FOREIGN_EXIT and not self.foreign:
            self.foreign = self._told_why() or "the workbook's code compiles text into code, as exec does"

    def _told_why(self) -> str:
        """Why the learner process ended itself: code of the workbook's was seen doing what writes no handler of its
        own (``provenance``), told before it ended."""
        try:
            return os.read(self._told, 4096).decode("utf-8", "replace")[:300]
        except OSError:
            return ""

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                wire.send(self._w, {"op": "stop"})
            except OSError:
                pass
        self.kill(LearnerGone("the grading is over"))
        for fd in (self._r, self._w, self._told):
            try:
                os.close(fd)
            except OSError:
                pass


def _cells_timed_out(cells: list[str], running: int) -> str:
    """Why a workbook's cells timed out, naming the code cell still running (a demo cell that calls a handler that
    never returns, say: in the notebook, too, it never ends)."""
    if not running:
        return "the workbook's cells did not finish within its time limit (an endless loop?)"
    lines = [line.strip() for line in cells[running - 1].splitlines() if line.strip()]
    calls = (line for line in lines if "handle_ldk_events" in line and not line.startswith(("def ", "async def ")))
    shown = next(calls, lines[0] if lines else "")  # (a call of the handler; or the cell's first line, not its def)
    shown = shown if len(shown) <= 100 else shown[:99] + "…"
    return (f"the workbook's cells did not finish within its time limit: code cell {running} of {len(cells)} was "
            f"still running ({shown}). An endless loop, or a handler that never returns, called by that cell?")


def _child_env() -> dict[str, str]:
    """The learner process starts with nothing of the grader's environment (no tokens, no paths)."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    return {**env, "LDKKIT_SANDBOX_DEBUG": "1"} if _DEBUG else env
