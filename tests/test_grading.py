"""Grading a class: one row per learner and exercise, broken submissions reported, never fatal."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ldkkit.cli import main
from ldkkit.grading import find_workbooks, grade, summary

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    cls = tmp_path_factory.mktemp("class")
    (cls / "alice").mkdir()
    shutil.copy(ROOT / "solutions" / "01_open_channel_request.ipynb", cls / "alice")
    (cls / "bob").mkdir()
    shutil.copy(ROOT / "exercises" / "01_open_channel_request.ipynb", cls / "bob")
    (cls / "carol").mkdir()
    (cls / "carol" / "01_open_channel_request.ipynb").write_text("{not json")
    (cls / "carol" / "essay.txt").write_text("not a notebook")
    # dan deleted his check cell and wrote no handler at all
    (cls / "dan").mkdir()
    notebook = json.loads((ROOT / "solutions" / "01_open_channel_request.ipynb").read_text())
    keep = lambda c: "check(" not in "".join(c["source"]) and "def handle_ldk_events" not in "".join(c["source"])  # noqa: E731
    notebook["cells"] = [c for c in notebook["cells"] if keep(c)]
    (cls / "dan" / "01_open_channel_request.ipynb").write_text(json.dumps(notebook))
    # erin's handler raises; she also edited her check cell to always "pass"
    (cls / "erin").mkdir()
    notebook = json.loads((ROOT / "solutions" / "01_open_channel_request.ipynb").read_text())
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if "def handle_ldk_events" in source:
            cell["source"] = "def handle_ldk_events(*args):\n    raise RuntimeError('erin was here')\n"
        elif "check(" in source:
            cell["source"] = "print('check(passed)')"
    (cls / "erin" / "01_open_channel_request.ipynb").write_text(json.dumps(notebook))
    out = tmp_path_factory.mktemp("report")
    submissions = [cls / name for name in ("alice", "bob", "carol", "dan", "erin")] + [cls / "carol" / "essay.txt"]
    table = grade(submissions, out, timeout_s=60, progress=False)
    return table, out


def status(table, learner, workbook="01_open_channel_request.ipynb"):
    row = table[(table["learner"] == learner) & (table["workbook"] == workbook)].iloc[0]
    return row["status"], row["hint"]


def test_one_row_per_learner_and_workbook(graded):
    table, _ = graded
    assert list(table.columns) == ["learner", "exercise", "workbook", "status", "hint", "seconds"]
    assert sorted(set(table["learner"])) == ["alice", "bob", "carol", "dan", "erin"]


def test_a_finished_workbook_passes_and_an_untouched_one_fails_with_its_hint(graded):
    table, _ = graded
    assert status(table, "alice")[0] == "passed"
    verdict, hint = status(table, "bob")
    assert verdict == "failed" and "Hint:" in hint


def test_broken_submissions_get_their_own_rows(graded):
    table, _ = graded
    assert status(table, "carol")[0] == "invalid notebook"
    assert status(table, "carol", "essay.txt")[0] == "not a notebook"
    assert status(table, "dan")[0] == "no handler"


def test_the_grader_runs_the_check_whatever_the_learner_did_to_theirs(graded):
    table, _ = graded
    verdict, hint = status(table, "erin")
    assert verdict == "failed" and "RuntimeError: erin was here" in hint


def test_the_report_and_summary(graded):
    table, out = graded
    assert (out / "grades.csv").read_text().startswith("learner,exercise,workbook,status,hint,seconds")
    report = (out / "report.html").read_text()
    assert "Pass rate per exercise" in report and "What to explain again" in report
    rates, hints = summary(table)
    assert rates.loc["open_channel_request", "workbooks"] == 5
    assert rates.loc["open_channel_request", "pass_rate"] == pytest.approx(0.2)
    assert len(hints) >= 3


def test_finding_workbooks_skips_backups_and_other_files(tmp_path):
    (tmp_path / "amy").mkdir()
    for name in ("01_open_channel_request.ipynb", "01_open_channel_request.20260101-000000.backup.ipynb",
                 ".ipynb_checkpoints", "progress.json"):
        (tmp_path / "amy" / name).write_text("{}")
    assert [p.name for _, p in find_workbooks([tmp_path / "amy"])] == ["01_open_channel_request.ipynb"]


def test_the_command_line(tmp_path, capsys):
    (tmp_path / "zoe").mkdir()
    (tmp_path / "zoe" / "notes.md").write_text("# not a workbook")
    assert main(["grade", str(tmp_path / "zoe" / "notes.md"), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 0
    assert "Wrote" in capsys.readouterr().out
    assert (tmp_path / "out" / "grades.csv").exists()
