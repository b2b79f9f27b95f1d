"""The grader's verdicts when something goes wrong: never "passed" unless the check passed.

Fast and without a class to grade (tests/test_grading.py grades one whole): each test puts
one kind of trouble where it happens (a worker that hangs, a check that meets the
unforeseen, a worker that prints nonsense) and reads the row.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ldkkit import grading
from ldkkit.exercises import ExerciseFailed
from ldkkit.sandbox import bridge, worker

HANDLER = ("from ldkkit.events import Event\n\n"
           "def handle_ldk_events(channel_manager, bitcoind_client, network_graph, keys_manager, "
           "bump_tx_event_handler, peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, "
           "network, event):\n"
           "    written_by = 'the test of the grader'\n"
           "    return None\n")


def workbook(folder: Path, name: str = "01_open_channel_request.ipynb") -> Path:
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": HANDLER}
    path = folder / name
    path.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def started(argv: list[str]):
    """A stand-in for the grader's worker: ``argv`` run in a session of its own, as the real one is."""
    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    return start


def test_a_workbook_whose_worker_never_answers_is_graded_timed_out(tmp_path, monkeypatch):
    """The grader's own limit: a worker still silent at the workbook's limit is stopped and the row says so."""
    launched: list[subprocess.Popen[bytes]] = []
    hang = started([sys.executable, "-c", "import time\ntime.sleep(600)"])

    def start() -> subprocess.Popen[bytes]:
        launched.append(hang())
        return launched[-1]

    monkeypatch.setattr(grading, "_start_worker", start)
    monkeypatch.setattr(grading, "_GRACE_S", 0.0)
    row = grading.grade_workbook("amy", workbook(tmp_path), timeout_s=0.2, batch=grading.Batch())
    assert (row.status, row.exercise) == ("timed out", "open_channel_request")
    assert "did not finish within 0.2 s" in row.hint
    assert launched and launched[0].poll() is not None  # stopped, not left running


def test_an_unexpected_exception_in_the_check_is_graded_error_never_passed(tmp_path, monkeypatch):
    """The real worker, with a check that raises what no check should: the row is 'error', naming it."""
    script = ("import ldkkit.exercises as exercises\n"
              "def unforeseen(exercise, handler):\n"
              "    raise RuntimeError('the check met the unforeseen')\n"
              "exercises.check = unforeseen\n"
              "from ldkkit.sandbox import worker\n"
              "raise SystemExit(worker.main())\n")
    monkeypatch.setattr(grading, "_start_worker", started([sys.executable, "-c", script]))
    row = grading.grade_workbook("amy", workbook(tmp_path), timeout_s=60, batch=grading.Batch())
    assert row.status == "error"
    assert "RuntimeError: the check met the unforeseen" in row.hint


def test_the_grader_failing_on_a_workbook_is_that_workbooks_error_row(tmp_path, monkeypatch):
    def broken(*args):
        raise OSError("no space left for the worker")

    monkeypatch.setattr(grading, "_run_worker", broken)
    row = grading.grade_workbook("amy", workbook(tmp_path), timeout_s=5, batch=grading.Batch())
    assert row.status == "error" and "OSError: no space left for the worker" in row.hint


@pytest.mark.parametrize("out", [b"", b"not json", b"[]", b'{"status": "passed"}', b'{"status": "great", "hint": ""}',
                                 b'{"status": "passed", "hint": 1}'])
def test_a_worker_that_answers_nonsense_is_an_error_not_a_pass(out):
    assert grading._verdict(out) == {"status": "error", "hint": "the grader's worker crashed on this workbook"}


def test_a_worker_verdict_is_taken_as_it_is():
    out = json.dumps({"status": "failed", "hint": "Scenario 'x': ...", "missing": []}).encode()
    assert grading._verdict(out) == {"status": "failed", "hint": "Scenario 'x': ..."}


def test_a_row_is_kept_even_if_grading_raised():
    import concurrent.futures

    future: concurrent.futures.Future[grading.Grade] = concurrent.futures.Future()
    future.set_exception(ValueError("lost"))
    row = grading._result(future, "amy", Path("/class/amy/05_forwarding.ipynb"))
    assert (row.status, row.exercise, row.hint) == ("error", "forwarding", "ValueError: lost")


class _Learner:
    """What ``worker._check`` reads of the learner process: how it died, if it did."""

    def __init__(self, dead: BaseException | None) -> None:
        self.dead = dead


def _check_with(monkeypatch, outcome: BaseException | None, dead: BaseException | None) -> dict[str, str]:
    import ldkkit.exercises

    def check(exercise, handler):
        if outcome is not None:
            raise outcome

    monkeypatch.setattr(ldkkit.exercises, "check", check)
    return worker._check("open_channel_request", None, _Learner(dead))  # type: ignore[arg-type]


def test_a_check_failed_because_the_learner_timed_out_is_graded_timed_out(monkeypatch):
    verdict = _check_with(monkeypatch, ExerciseFailed("handler stopped"), bridge.HandlerTimeout("no answer in 8 s"))
    assert verdict == {"status": "timed out", "hint": "no answer in 8 s\nhandler stopped"}


def test_a_failed_check_is_failed_and_a_passed_one_passed(monkeypatch):
    assert _check_with(monkeypatch, ExerciseFailed("Scenario ..."), None) == {"status": "failed",
                                                                              "hint": "Scenario ..."}
    assert _check_with(monkeypatch, None, None) == {"status": "passed", "hint": ""}
    assert _check_with(monkeypatch, None, bridge.LearnerGone("exited")) == {"status": "passed", "hint": ""}


def test_a_check_that_passed_while_the_learner_process_broke_is_an_error(monkeypatch):
    verdict = _check_with(monkeypatch, None, bridge.HandlerTimeout("the learner process stayed busy"))
    assert verdict == {"status": "error", "hint": "the learner process stayed busy"}
