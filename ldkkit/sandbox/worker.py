"""A grader-owned worker: grades one workbook, running no learner code itself.

``python -m ldkkit.sandbox.worker`` reads a job (JSON) on stdin and writes a verdict
(JSON) on stdout. It starts the confined learner process, runs the workbook's cells there,
and runs the check here, in its own simulated world, with a :class:`RemoteHandler`. The
learner cannot reach this process: it runs as another user (as root) and talks to it only
through two pipes, in the strict format of :mod:`ldkkit.sandbox.wire`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
import traceback
from typing import Any

from ..sim import scratch as scratch_folders
from . import jail as jail_module
from .bridge import LEARNERS_TRACEBACK, HandlerTimeout, LearnerGone, LearnerProcess, RemoteHandler


def grade(job: dict[str, Any]) -> dict[str, Any]:
    """The verdict on one workbook: {"status", "hint", "missing": what the sandbox could not do}."""
    deadline = time.monotonic() + float(job["timeout_s"])
    jail = jail_module.Jail.from_dict(job["jail"])
    if jail.uid is None:  # not root: a scratch folder of our own making
        scratch = jail.scratch = tempfile.mkdtemp(prefix="ldkkit-sandbox-")
    else:  # root: the learner process makes it, on its private /tmp (or on the shared one, named unguessably)
        scratch = jail.scratch = f"{jail_module.SCRATCH}-{secrets.token_hex(8)}"
    learner = None
    # The check and its world load while the learner process starts, on another core. Only then does this
    # process go on, so no two of its threads ever import the kit at once.
    loading = threading.Thread(target=_load_the_check, name="ldkkit-worker-import", daemon=True)
    loading.start()
    try:
        learner = LearnerProcess(jail, deadline)
        loading.join()
        kind, why = learner.run_cells(list(job["cells"]))
        if kind is None:
            return {"status": "no handler", "hint": why, "missing": learner.missing}
        return {**_check(job["exercise"], RemoteHandler(learner, kind), learner), "missing": learner.missing}
    except HandlerTimeout as e:
        return {"status": "timed out", "hint": str(e)}
    except LearnerGone as e:
        return {"status": "error", "hint": str(e)}
    finally:
        if learner is not None:
            learner.close()
        if jail.uid is not None:
            jail_module.kill_uid(jail.uid)
        jail_module.kill_descendants(os.getpid())
        shutil.rmtree(scratch, ignore_errors=True)


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


def _load_the_check() -> None:
    try:
        import ldkkit.exercises  # noqa: F401
    except Exception:  # raised again, with its traceback, by the check's own import
        pass


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
