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


def _runs(kit, monkeypatch, failing: str) -> list[str]:
    """The commands ``kit.install`` runs, each whose words include ``failing`` exiting 1."""
    ran: list[str] = []

    def run(cmd, **kwargs):
        ran.append(" ".join(cmd[1:]))
        code = 1 if failing and failing in cmd else 0
        if code and kwargs.get("check"):
            raise kit.subprocess.CalledProcessError(code, cmd)
        return kit.subprocess.CompletedProcess(cmd, code)

    monkeypatch.setattr(kit.subprocess, "run", run)
    return ran


def test_kit_installs_the_kit_with_uv_where_it_can(monkeypatch):
    kit = _kit()
    ran = _runs(kit, monkeypatch, failing="")
    kit.install(kit.Path("/venv/bin/python"))
    assert ran == ["-m pip install -q uv",
                   f"-m uv pip install -q --compile-bytecode --python /venv/bin/python -e {kit.ROOT}[lab,test]"]


@pytest.mark.parametrize("failing", ["uv", "--python"])  # (uv not installable; uv installed, its install failing)
def test_kit_installs_the_kit_with_pip_where_uv_cannot(failing, monkeypatch, capsys):
    kit = _kit()
    ran = _runs(kit, monkeypatch, failing=failing)
    kit.install(kit.Path("/venv/bin/python"))
    assert ran[-2:] == ["-m pip install -q --upgrade pip", f"-m pip install -q -e {kit.ROOT}[lab,test]"]
    assert "installing it with pip instead" in capsys.readouterr().out


def test_kit_install_fails_loudly_when_pip_fails_too(monkeypatch):
    kit = _kit()
    _runs(kit, monkeypatch, failing="-e")
    with pytest.raises(kit.subprocess.CalledProcessError):
        kit.install(kit.Path("/venv/bin/python"))


def test_the_test_tools_install_alongside_and_their_error_is_raised_after():
    kit = _kit()
    started, order = kit.threading.Event(), []

    def tools():
        started.wait(5)
        order.append("tools")
        raise RuntimeError("npm failed")

    with pytest.raises(RuntimeError, match="npm failed"):
        with kit.alongside(tools):
            order.append("packages")  # (the tools wait for this: they run alongside, not before)
            started.set()
    assert order == ["packages", "tools"]
