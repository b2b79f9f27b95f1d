"""The workbooks: exercises made from solutions, checks that teach, and exercises that fail as shipped."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

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


def test_workbook_5_says_the_fee_earned_can_be_none():
    """LDK's ``PaymentForwarded::total_fee_earned_msat`` is None when the channel the payment came in on closed
    before the claim (and the event may then come twice): the workbook that introduces the event says so."""
    notebook = nbformat.read(ROOT / "solutions" / "05_forwarding.ipynb", as_version=4)
    text = " ".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    assert "`total_fee_earned_msat`, which is `None` when the channel the payment came in on closed" in text
