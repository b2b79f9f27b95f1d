"""The package imports quickly and lightly, and the code is ruff-clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import ldkkit

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ["pandas", "ipywidgets", "IPython", "jupyter_client", "ipykernel", "numpy"]


def test_importing_ldkkit_loads_nothing_heavy():
    code = (
        "import sys, json, ldkkit, ldkkit.events, ldkkit.fs_store, ldkkit.payment_storage, ldkkit.bitcoin;"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_version_is_exposed():
    assert ldkkit.__version__.count(".") == 2


def test_code_is_ruff_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "ldkkit", "tests", "bench", "tools", "kit.py"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_packages_names_load_on_first_use():
    """``import ldkkit.sandbox.jail`` (the grader's worker) need not load the whole kit; ``from ldkkit import
    Event`` still works, and a name ldkkit does not have says so."""
    code = ("import sys, ldkkit.sandbox.jail\nprint('ldkkit.events' in sys.modules)\n"
            "from ldkkit import APIError, DecodeError, Event, FilesystemStore, ReplayEvent\n"
            "print(Event.__module__, FilesystemStore.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "ldkkit.events", "ldkkit.fs_store"]
    with pytest.raises(AttributeError, match="module 'ldkkit' has no attribute 'Nope'"):
        ldkkit.Nope  # noqa: B018


def _kit():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("kit", Path(__file__).resolve().parents[1] / "kit.py")
    kit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kit)
    return kit


@pytest.mark.parametrize("args", [[], ["-k", "events"], ["-x", "-q", "tests/test_ser.py"]])
def test_kit_test_runs_the_files_in_parallel_on_two_cpus(args, monkeypatch):
    kit = _kit()
    monkeypatch.setattr(kit.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert kit.parallel(args) == ["-n", "2", "--dist", "loadfile"]
    monkeypatch.setattr(kit.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert kit.parallel(args) == ["-n", "4", "--dist", "loadfile"]  # (more workers would wait on the longest file)


@pytest.mark.parametrize("args", [["-n", "0"], ["-n0"], ["--numprocesses=3"], ["--dist", "load"], ["-p", "no:xdist"],
                                  ["--pdb"], ["--trace", "-k", "x"]])
def test_kit_test_adds_no_workers_where_the_options_choose(args, monkeypatch):
    kit = _kit()
    monkeypatch.setattr(kit.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert kit.parallel(args) == []


def test_kit_test_runs_in_one_process_on_one_cpu(monkeypatch):
    kit = _kit()
    monkeypatch.setattr(kit.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert kit.parallel([]) == []
