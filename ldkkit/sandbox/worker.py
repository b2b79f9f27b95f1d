"""A grader-owned worker: grades one workbook, running no learner code itself.

``python -m ldkkit.sandbox.worker`` reads a job (JSON) on stdin and writes a verdict
(JSON) on stdout. It reads the workbook's code (:mod:`ldkkit.sandbox.source`, in a process of its own that it
stops at the workbook's time limit), starts the confined learner process, runs the workbook's cells there,
and runs the check here, in its own simulated world, with a :class:`RemoteHandler`. The
learner cannot reach this process: it runs as another user (as root) and talks to it only
through two pipes, in the strict format of :mod:`ldkkit.sandbox.wire`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from typing import Any

from ..sim import scratch as scratch_folders
from . import jail as jail_module
from .bridge import LEARNERS_TRACEBACK, HandlerTimeout, LearnerGone, LearnerProcess, RemoteHandler
from .source import LearnerCode, magic_lines

NO_HANDLER = ("the workbook's code has no def handle_ldk_events(...): the grader grades the handler a workbook defines "
              "with def (one built at run time, with exec, is not graded)")
NO_CHECK_CELL = ("(The workbook has no check(...) cell, so Run All shows no verdict in Jupyter: this row is its "
                 "handle_ldk_events checked as the workbook's check would.)")
RUNS_TEXT = ("{}: a workbook that runs text as code is not graded, as that code could be anything, a solution "
             "included, where the grader reads only the workbook's own cells. Write the handler in a cell, with def, "
             "and take that call out")
REACHES_THE_GRADER = ("{}: a workbook that reaches into the grader is not graded, as it could change what the grader "
                      "looks at. A handler needs none of it: take that code out")
#: Of the workbook's time, what a reading that takes all the rest leaves the worker to stop the learner process and
#: answer, within the grader's grace (the learner would have had no time left anyway).
_ANSWER_S = 0.5


def grade(job: dict[str, Any]) -> dict[str, Any]:
    """The verdict on one workbook: {"status", "hint", "missing": what the sandbox could not do}."""
    from ..exercises import common  # (loaded already: ``main`` tells it first whom it speaks to)

    deadline = time.monotonic() + float(job["timeout_s"])
    common.HANDLER_TIMEOUT_S = float(job["hang_limit_s"])  # the grader's, so its check says what check() says
    jail = jail_module.Jail.from_dict(job["jail"])
    if jail.uid is None:  # not root: a scratch folder of our own making
        scratch = jail.scratch = tempfile.mkdtemp(prefix="ldkkit-sandbox-")
    else:  # root: the learner process makes it, on its private /tmp (or on the shared one, named unguessably)
        scratch = jail.scratch = f"{jail_module.SCRATCH}-{secrets.token_hex(8)}"
    learner = None
    # The check and its world load, and the workbook's code is read (by a process of its own, stopped at the
    # workbook's limit: IPython may take minutes to read a hostile cell), while the learner process starts, on other
    # cores. Only then does this process go on, so no two of its threads ever import the kit at once.
    sources = [str(cell) for cell in job["cells"]]
    debug = bool(os.environ.get("LDKKIT_SANDBOX_DEBUG"))
    reader = subprocess.Popen(jail_module.kit_python("ldkkit.sandbox.source"), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=None if debug else subprocess.DEVNULL)
    read: dict[str, Any] = {}
    loading = threading.Thread(target=_load_the_check_and_read, args=(reader, sources, deadline, read),
                               name="ldkkit-worker-import", daemon=True)
    loading.start()
    try:
        learner = LearnerProcess(jail, deadline)
        loading.join()
        if "timed out" in read:
            return {"status": "timed out", "hint": _too_slow_to_read(sources, float(job["timeout_s"]))}
        if "error" in read:
            raise read["error"]
        code: LearnerCode = read["code"]
        if code.copied:
            return {"status": "copied", "hint": f"{code.copied}: a copy is not graded", "missing": learner.missing}
        if code.reaches_the_grader:
            return {"status": "no handler", "hint": REACHES_THE_GRADER.format(code.reaches_the_grader),
                    "missing": learner.missing}
        if code.runs_text:
            return {"status": "no handler", "hint": RUNS_TEXT.format(code.runs_text), "missing": learner.missing}
        if not code.has_handler and not code.unreadable:  # (one that is: the cells run, and Run All stops there)
            return {"status": "no handler", "hint": NO_HANDLER, "missing": learner.missing}
        ready = learner.run_cells(code.cells, job["exercise"])
        if ready.kind is None:
            status = "failed" if ready.stopped else "no handler"
            return {"status": status, "hint": ready.why, "missing": learner.missing}
        verdict = _check(job["exercise"], RemoteHandler(learner, ready.kind), learner)
        if learner.foreign:  # (whatever the check said: it judged code that is not the workbook's)
            return {"status": "no handler", "hint": RUNS_TEXT.format(learner.foreign), "missing": learner.missing}
        if not code.has_check:  # (in Jupyter, Run All shows no verdict: say what this row is)
            verdict["hint"] = (verdict["hint"] + "\n" if verdict["hint"] else "") + NO_CHECK_CELL
        if ready.others:  # (the learner saw another workbook's verdict first, or Run All stopped there)
            verdict["hint"] = (verdict["hint"] + "\n" if verdict["hint"] else "") + (
                f"(The workbook calls check({', '.join(ready.others)}, ...) before its own, another workbook's check, "
                f"not run here: this row is the check of {job['exercise']!r}, the workbook's own. In Jupyter, Run All "
                "stops at that other check if it fails.)")
        return {**verdict, "missing": learner.missing}
    except HandlerTimeout as e:
        return {"status": "timed out", "hint": str(e)}
    except LearnerGone as e:
        if learner is not None and learner.foreign:  # (it ended itself, telling why: see ``provenance``)
            return {"status": "no handler", "hint": RUNS_TEXT.format(learner.foreign), "missing": learner.missing}
        return {"status": "error", "hint": str(e)}
    finally:
        if learner is not None:
            learner.close()
        if jail.uid is not None:
            jail_module.kill_uid(jail.uid)
        jail_module.kill_descendants(os.getpid())
        shutil.rmtree(scratch, ignore_errors=True)


def _too_slow_to_read(sources: list[str], timeout_s: float) -> str:
    size, magics = sum(len(source) for source in sources), magic_lines(sources)
    why = (f", {magics} of its lines shell commands or magics (!ls, %time): IPython reads a whole cell again for "
           "each of them" if magics else "")
    return (f"the grader could not read the workbook's code within its {timeout_s:g} s limit ({size / 1024:.0f} KiB "
            f"of code{why}). Keep in it the handler and what the handler needs (the kit's own workbooks hold under "
            "10 KiB of code), then grade it again")


def _check(exercise: str, handler: RemoteHandler, learner: LearnerProcess) -> dict[str, str]:
    from ..exercises import ExerciseFailed, judge  # (a grade records no one's progress)

    try:
        judge(exercise, handler)
    except ExerciseFailed as e:
        if isinstance(learner.dead, HandlerTimeout):
            return {"status": "timed out", "hint": f"{learner.dead}\n{_as_a_hang(str(e))}"}
        return {"status": "failed", "hint": _with_the_learners_traceback(e)}
    if learner.dead is not None and not isinstance(learner.dead, LearnerGone):
        return {"status": "error", "hint": str(learner.dead)}
    return {"status": "passed", "hint": ""}


def _with_the_learners_traceback(failure: BaseException) -> str:
    """The check's words; where they send the learner to a traceback (a notebook shows one above them), the row has it
    below, as the learner process told it (the learner's own frames): a grade has no notebook."""
    message = str(failure)
    notes = [n for n in getattr(failure.__cause__, "__notes__", ()) if n.startswith(LEARNERS_TRACEBACK)]
    if not notes or "read the traceback above" not in message:
        return message
    return message.replace("read the traceback above", "read the traceback below") + "\n" + notes[-1]


def _as_a_hang(message: str) -> str:
    """The check's message for a learner the grader stopped: not 'it raised HandlerTimeout' and a traceback to read
    (there is none), but what the check tells a handler that never returns."""
    from ..exercises.common import HANG_HINT

    lines = ["  Happened: it never returned, and the grader stopped it" if "HandlerTimeout" in line else
             f"  Hint: {HANG_HINT}" if line.lstrip().startswith("Hint:") else line for line in message.splitlines()]
    return "\n".join(lines)


def _load_the_check_and_read(reader: subprocess.Popen[bytes], sources: list[str], deadline: float,
                             read: dict[str, Any]) -> None:
    try:
        import ldkkit.exercises  # noqa: F401
    except Exception:  # raised again, with its traceback, by the check's own import
        pass
    try:
        out, _ = reader.communicate(json.dumps(sources).encode(),
                                    timeout=max(0.0, deadline - _ANSWER_S - time.monotonic()))
        read["code"] = LearnerCode(**json.loads(out))
    except subprocess.TimeoutExpired:
        read["timed out"] = True
    except Exception as e:  # raised again by the main thread: the grader's failure, this row's
        read["error"] = RuntimeError(f"the workbook's code could not be read (the reader's exit code: "
                                     f"{reader.poll()}): {type(e).__name__}: {e}")
    finally:
        reader.kill()
        reader.communicate()


def _tell_instructors() -> None:
    """Words for an instructor, not a learner, where a check's own would be Jupyter's: this process is a grader's."""
    from ..exercises import common

    common.CANNOT_STOP = "It was still running, inside a call Python cannot interrupt: the grader ended its process."


def main() -> int:
    jail_module.become_subreaper()
    _tell_instructors()
    verdict_fd = os.dup(1)  # the verdict's own channel: nothing the check prints can mix with it
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    job = json.loads(sys.stdin.read())
    # The grader made this folder and removes it even if it has to kill this worker: the check's
    # worlds keep their stores here, and (without root) so does the learner's scratch folder.
    tempfile.tempdir = scratch_folders.ROOT = job.get("temp") or tempfile.mkdtemp(prefix="ldkkit-worker-")
    try:
        verdict = grade(job)
    except Exception as e:  # the grader's own failure on this workbook: its row says so
        verdict = {"status": "error", "hint": f"the grader failed: {type(e).__name__}: {e}\n"
                                              f"{traceback.format_exc()[-1500:]}"}
    finally:
        if not job.get("temp"):
            shutil.rmtree(tempfile.tempdir, ignore_errors=True)
    with os.fdopen(verdict_fd, "w") as out:
        out.write(json.dumps(verdict))
    return 0


if __name__ == "__main__":
    sys.exit(main())
