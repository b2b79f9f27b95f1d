"""The workbooks: exercises made from solutions, checks that teach, and exercises that fail as shipped."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from ldkkit import exercises
from ldkkit.events import Event
from ldkkit.exercises import ExerciseFailed, check
from ldkkit.reference import handle_ldk_events as reference_handler
from ldkkit.workbooks import exercise_from_solution, strip_solutions

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_exercises_are_generated_from_the_current_solutions(solution):
    committed = (ROOT / "exercises" / solution.name).read_text()
    assert committed == exercise_from_solution(solution.read_text()), (
        f"exercises/{solution.name} is stale: run .venv/bin/python tools/make_exercises.py"
    )


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_every_exercise_fails_at_its_check_as_shipped(solution):
    notebook = nbformat.read(ROOT / "exercises" / solution.name, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(ROOT / "exercises")}}).execute()
    errors = [(i, o) for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
              for o in cell.outputs if o.output_type == "error"]
    assert errors, "the exercise passes untouched: it teaches nothing"
    first_cell, first = errors[0]
    assert "check(" in notebook.cells[first_cell].source, "something before the check fails"
    assert first.ename == "ExerciseFailed"


@pytest.mark.parametrize(
    "path", sorted(ROOT.glob("notebooks/*.ipynb")) + SOLUTIONS + sorted(ROOT.glob("exercises/*.ipynb")),
    ids=lambda p: f"{p.parent.name}/{p.stem}",
)
def test_notebooks_store_no_timestamps_and_no_widget_state(path):
    notebook = json.loads(path.read_text())
    assert "widgets" not in notebook["metadata"], "widget state churns: execute with store_widget_state=False"
    timed = [i for i, c in enumerate(notebook["cells"]) if "execution" in c.get("metadata", {})]
    assert not timed, f"cells {timed} store execution timestamps: re-run with tools/run_notebooks.py"


def test_solution_markers_become_placeholders_at_the_same_indentation():
    source = "def f():\n    x = 1\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"
    assert strip_solutions(source) == "def f():\n    x = 1\n    # YOUR CODE HERE\n    pass\n"
    with pytest.raises(ValueError, match="BEGIN SOLUTION"):
        strip_solutions("### BEGIN SOLUTION\nx = 1\n")


def handler_from(decide):
    """A handle_ldk_events whose OpenChannelRequest arm is ``decide``."""

    def handle(channel_manager, bitcoind_client, network_graph, keys_manager, bump_tx_event_handler,
               peer_manager, inbound_payments, outbound_payments, fs_store, output_sweeper, network, event):
        if isinstance(event, Event.OpenChannelRequest):
            return decide(channel_manager, keys_manager, event)
        return None

    return handle


def accept(cm, keys, event, user_channel_id=None):
    uid = user_channel_id if user_channel_id is not None else int.from_bytes(keys.get_secure_random_bytes()[:16], "big")
    cm.accept_inbound_channel(event.temporary_channel_id, event.counterparty_node_id, uid)


def reject(cm, keys, event):
    cm.force_close_without_broadcasting_txn(event.temporary_channel_id, event.counterparty_node_id, "no")


def test_the_reference_handler_passes():
    result = check("open_channel_request", reference_handler)
    assert "all 6 checks passed" in repr(result)
    assert "<table>" in result._repr_html_()


@pytest.mark.parametrize(
    "decide, scenario, expected",
    [
        (lambda cm, k, e: accept(cm, k, e), "4,999,999 sats", "an explicit rejection"),
        (lambda cm, k, e: accept(cm, k, e) if e.funding_satoshis >= 5_000_000 else reject(cm, k, e),
         "5,000,000 sats", "exactly 5,000,000 is not over 5,000,000"),
        (lambda cm, k, e: accept(cm, k, e) if e.funding_satoshis > 5_000_000 else None,
         "4,999,999 sats", "left to expire"),
        (lambda cm, k, e: reject(cm, k, e), "5,000,001 sats", "the channel accepted"),
        (lambda cm, k, e: accept(cm, k, e, user_channel_id=42) if e.funding_satoshis > 5_000_000 else reject(cm, k, e),
         "5,000,001 sats", "drawn from keys_manager.get_secure_random_bytes()"),
        (lambda cm, k, e: cm.accept_inbound_channel_from_trusted_peer_0conf(e.temporary_channel_id,
                                                                             e.counterparty_node_id, 1),
         "4,999,999 sats", "trusts the peer"),
    ],
    ids=["accepts-everything", "greater-or-equal", "silent-rejection", "rejects-everything", "fixed-id", "zero-conf"],
)
def test_mistakes_fail_with_the_scenario_the_expectation_and_a_hint(decide, scenario, expected):
    with pytest.raises(ExerciseFailed) as info:
        check("open_channel_request", handler_from(decide))
    message = str(info.value)
    assert scenario in message and expected in message and "Hint:" in message
    assert isinstance(info.value, AssertionError)


def test_a_raising_handler_fails_with_its_traceback_kept():
    def decide(cm, keys, event):
        return event.channel_value_satoshis  # the chapter's slip: this field is not on OpenChannelRequest

    with pytest.raises(ExerciseFailed, match="raised AttributeError") as info:
        check("open_channel_request", handler_from(decide))
    assert isinstance(info.value.__cause__, AttributeError)
    assert info.value.__cause__.__traceback__ is not None


def test_a_handler_that_never_returns_fails_within_the_timeout(monkeypatch):
    monkeypatch.setattr(exercises, "HANDLER_TIMEOUT_S", 1.0)
    stop = []

    def decide(cm, keys, event):
        while not stop:
            pass

    try:
        stuck = "did not return within 1 seconds while handling Event.OpenChannelRequest"
        with pytest.raises(ExerciseFailed, match=stuck):
            check("open_channel_request", handler_from(decide))
    finally:
        stop.append(True)  # let the stuck thread end


def test_async_handlers_are_checked_too():
    async def handle_async(channel_manager, *rest):
        await reference_handler(channel_manager, *rest)

    assert "all 6 checks passed" in repr(check("open_channel_request", handle_async))


def test_unknown_checks_and_missing_handlers_are_explained():
    with pytest.raises(KeyError, match="open_channel_request"):
        check("no_such_exercise", reference_handler)
    with pytest.raises(ExerciseFailed, match="Run the cell that defines it"):
        check("open_channel_request", None)


def test_progress_records_passed_checks(tmp_path, monkeypatch):
    monkeypatch.setenv("LDKKIT_PROGRESS_FILE", str(tmp_path / "p.json"))
    assert not any(exercises.progress().values())
    check("open_channel_request", reference_handler)
    assert exercises.progress()["open_channel_request"] and not exercises.progress()["capstone"]
    assert list(exercises.progress()) == [
        "open_channel_request", "funding_generation_ready", "receiving_payments", "sending_payments",
        "forwarding", "on_chain", "background_processor", "capstone",
    ]
    (tmp_path / "p.json").write_text("{not json")
    assert not any(exercises.progress().values())  # a damaged file is not fatal


def test_reset_restores_the_workbook_and_keeps_a_backup(tmp_path, monkeypatch):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "exercises").mkdir()
    solution = (ROOT / "solutions" / "01_open_channel_request.ipynb").read_text()
    (tmp_path / "solutions" / "01_open_channel_request.ipynb").write_text(solution)
    mine = tmp_path / "exercises" / "01_open_channel_request.ipynb"
    mine.write_text(json.dumps({"learner": "work in progress"}))
    monkeypatch.setattr(exercises, "_ROOT", tmp_path)
    backup = exercises.reset("01_open_channel_request")
    assert json.loads(backup.read_text()) == {"learner": "work in progress"}
    assert mine.read_text() == exercise_from_solution(solution)
    with pytest.raises(FileNotFoundError, match="no workbook called"):
        exercises.reset("99_nothing")
