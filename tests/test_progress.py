"""Progress and reset: where progress is kept, how it is written, and what a damaged file or a bad name does."""

from __future__ import annotations

import json
import re

import pytest

from ldkkit.exercises import learner as p


@pytest.fixture
def kit(tmp_path, monkeypatch):
    """A kit folder of its own, worked in from its exercises/ folder, with no progress file set."""
    monkeypatch.delenv("LDKKIT_PROGRESS_FILE", raising=False)
    for folder in ("exercises", "solutions"):
        (tmp_path / folder).mkdir()
    monkeypatch.chdir(tmp_path / "exercises")
    return tmp_path


def test_progress_lives_in_the_kit_folder_unless_told_otherwise(kit, tmp_path_factory, monkeypatch):
    assert p._progress_file() == kit / ".ldkkit" / "progress.json"
    elsewhere = tmp_path_factory.mktemp("mine") / "p.json"
    monkeypatch.setenv("LDKKIT_PROGRESS_FILE", str(elsewhere))
    assert p._progress_file() == elsewhere


def test_outside_any_kit_folder_progress_is_kept_in_the_users_data_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("LDKKIT_PROGRESS_FILE", raising=False)
    monkeypatch.setattr(p, "kit_folder", lambda start=None: None)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert p._progress_file() == tmp_path / ".local" / "share" / "ldkkit" / "progress.json"


def test_the_nearest_folder_holding_exercises_and_solutions_is_the_kit(kit):
    deep = kit / "exercises" / "a" / "b"
    deep.mkdir(parents=True)
    assert p.kit_folder(deep) == kit.resolve()
    lonely = kit / "exercises" / "x"
    (lonely / "exercises").mkdir(parents=True)  # exercises/ alone does not make a kit
    assert p.kit_folder(lonely) == kit.resolve()


def test_passes_are_written_whole_and_leave_no_temporary_file(kit):
    p.record_pass("03_receiving_payments.ipynb")
    p.record_pass("open_channel_request")
    saved = json.loads((kit / ".ldkkit" / "progress.json").read_text())
    assert sorted(saved) == ["open_channel_request", "receiving_payments"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", when) for when in saved.values())
    assert [f.name for f in (kit / ".ldkkit").iterdir()] == ["progress.json"]
    assert p.progress() == {w: w in ("01_open_channel_request", "03_receiving_payments") for w in p.WORKBOOKS}


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"open_channel_request": 7, "nonsense": "x"}'])
def test_a_damaged_or_foreign_progress_file_counts_nothing_it_does_not_understand(kit, content):
    (kit / ".ldkkit").mkdir()
    (kit / ".ldkkit" / "progress.json").write_text(content)
    assert not any(p.progress().values())
    p.record_pass("forwarding")  # and it is repaired, not fatal
    assert json.loads((kit / ".ldkkit" / "progress.json").read_text()).keys() == {"forwarding"}


def test_reset_outside_a_kit_folder_says_where_to_run_it(monkeypatch):
    monkeypatch.setattr(p, "kit_folder", lambda start=None: None)
    with pytest.raises(FileNotFoundError, match="inside the kit's folder"):
        p.reset("01_open_channel_request")


def test_reset_keeps_a_dated_backup_only_of_a_workbook_that_exists(kit):
    solution = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (kit / "solutions" / "05_forwarding.ipynb").write_text(json.dumps(solution))
    backup = p.reset("forwarding")
    assert not backup.exists()  # there was nothing to keep
    assert re.fullmatch(r"05_forwarding\.\d{8}-\d{6}\.backup\.ipynb", backup.name)
    assert json.loads((kit / "exercises" / "05_forwarding.ipynb").read_text())["cells"] == []


def test_every_name_of_a_workbook_is_accepted(kit):
    for name in ("08_capstone", "08_capstone.ipynb", "capstone", "exercises/08_capstone.ipynb", " capstone "):
        assert p.workbook_name(name) == "08_capstone" and p.exercise_id(name) == "capstone"
    with pytest.raises(ValueError) as info:
        p.workbook_name("09_lightning")
    assert all(w in str(info.value) for w in p.WORKBOOKS) and "'capstone'" in str(info.value)


def test_a_pass_is_recorded_by_check_and_never_by_judge_the_graders_check(kit):
    from ldkkit.exercises import check, judge
    from ldkkit.reference import handle_ldk_events

    judge("open_channel_request", handle_ldk_events)
    assert not p._progress_file().exists()
    check("open_channel_request", handle_ldk_events)
    assert p.progress()["01_open_channel_request"]
