"""Throwaway stores live in memory where the machine has room for them, and where a grader says otherwise."""

from __future__ import annotations

import os
import tempfile
from collections import namedtuple

import pytest

from ldkkit.sim import scratch
from ldkkit.sim.world import World


@pytest.fixture
def memory(tmp_path, monkeypatch):
    """A stand-in for /dev/shm, with as much free space as a test says."""
    folder = tmp_path / "shm"
    folder.mkdir()
    free = {"bytes": scratch.MIN_FREE_BYTES}
    monkeypatch.setattr(scratch, "_MEMORY", str(folder))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(scratch.shutil, "disk_usage", lambda path: usage(0, 0, free["bytes"]))
    monkeypatch.setattr(tempfile, "tempdir", None)
    scratch._memory_backed.cache_clear()
    yield folder, free
    scratch._memory_backed.cache_clear()


def made_in() -> str:
    """The folder a new scratch folder is made in (the new one is removed)."""
    made = scratch.scratch_dir("ldkkit-test-")
    os.rmdir(made)
    return os.path.dirname(made)


def test_a_worlds_stores_go_to_memory_when_it_has_room(memory):
    folder, _ = memory
    with World(seed=1) as world:
        node = world.add_node("alice")
        assert node.fs_store.data_dir.parent == folder
        assert not node.fs_store.durable  # throwaway: no fsync either


def test_too_little_room_in_memory_means_the_systems_temporary_folder(memory):
    folder, free = memory
    free["bytes"] = scratch.MIN_FREE_BYTES - 1
    assert made_in() == tempfile.gettempdir() != str(folder)


def test_a_memory_folder_that_cannot_be_written_is_left_alone(memory, monkeypatch):
    folder, _ = memory
    monkeypatch.setattr(scratch.os, "access", lambda path, mode: path != str(folder))
    assert made_in() == tempfile.gettempdir()


def test_no_memory_folder_at_all_means_the_systems_temporary_folder(memory, monkeypatch):
    folder, _ = memory
    folder.rmdir()
    assert made_in() == tempfile.gettempdir()


def test_a_graders_worker_keeps_scratch_in_its_own_folder(memory, tmp_path, monkeypatch):
    own = tmp_path / "graders"
    own.mkdir()
    monkeypatch.setattr(scratch, "ROOT", str(own))  # as the grader's worker does, to clean up after a kill
    assert made_in() == str(own)


def test_a_temporary_folder_python_chose_itself_keeps_nothing_off_memory(memory, monkeypatch):
    """Python keeps the temporary folder it found in ``tempfile.tempdir`` once anything asks for one (a kernel
    or a test runner has always asked): scratch folders still go to memory."""
    folder, _ = memory
    tempfile.gettempdir()
    assert tempfile.tempdir is not None and made_in() == str(folder)


def test_a_storage_folder_given_to_a_node_is_its_own_and_durable(memory, tmp_path):
    with World(seed=1) as world:
        node = world.add_node("alice", storage_dir=str(tmp_path / "alice"))
        assert node.fs_store.durable and str(node.fs_store.data_dir) == str(tmp_path / "alice")


def test_the_folder_the_environment_names_comes_before_memory_and_a_workers_own_before_both(memory, monkeypatch,
                                                                                            tmp_path):
    """``LDKKIT_SCRATCH`` reaches the processes one starts (a grader's workers), and a worker's own folder wins."""
    named = tmp_path / "named"
    named.mkdir()
    monkeypatch.setenv(scratch.ENV, str(named))
    assert made_in() == str(named)
    monkeypatch.setattr(scratch, "ROOT", str(tmp_path))
    assert made_in() == str(tmp_path)


def test_a_folder_the_environment_names_that_is_not_there_is_said_so(monkeypatch, tmp_path):
    monkeypatch.setenv(scratch.ENV, str(tmp_path / "missing"))
    with pytest.raises(NotADirectoryError, match="LDKKIT_SCRATCH names .*missing.*not a folder"):
        scratch.root()
    monkeypatch.setattr(scratch, "ROOT", str(tmp_path))  # a worker's own folder: the named one is not asked for
    assert scratch.root() == str(tmp_path)
