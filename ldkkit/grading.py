"""Grade a class's workbooks: one row per learner and workbook, and a summary of what to explain again.

    ldkkit grade /home/jupyter-*/ldk-events-workshop/exercises --out grades/   # the command line
    ldkkit.grading.grade(["class/alice", "class/bob"])                         # or from Python: a DataFrame

Each submission is a learner's folder of workbooks, or one workbook. The verdict comes
from a process the learner's code cannot touch: a grader-owned worker runs the check in
its own simulated world, while the workbook's code (its cells as Run All runs them, up to
the check, which there only notes the handler it is given, or to a cell that raises)
runs in a sandboxed learner process (:mod:`ldkkit.sandbox`), which sees each event as
bytes and whose every call on the node comes back to the worker as a request. As root,
that process is another user, in its own mount and network namespaces, with limits, and
every process it leaves is killed when its workbook ends. A handler that is the kit's
reference or a solution's is ``copied``. Every failure of one submission is that
submission's row: the CSV and the HTML report are always written.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from .sandbox import jail as jail_module
from .sandbox.source import InvalidWorkbook, code_cells, read_workbook
from .sim.scratch import scratch_dir

#: What a workbook's name looks like ("03_receiving_payments"): only the exact names the kit ships are graded,
#: this is to tell a misnamed one ("3_receiving_payments") which name to give it.
_WORKBOOK = re.compile(r"\d+_(?P<exercise>[a-z_]+)")
#: ``from myhandler import handle_ldk_events``: a handler kept in a module of the learner's own.
_IMPORTED_HANDLER = re.compile(r"^[ \t]*from[ \t]+(?P<module>[\w.]{1,80})[ \t]+import\b[^\n]*\bhandle_ldk_events\b",
                               re.MULTILINE)
#: How far below a submitted folder the grader looks for the workbooks it was not pointed at.
_NESTED_DEPTH = 3
#: A lone surrogate: a byte of a file name that is not UTF-8 (os.fsdecode's "surrogateescape"), or junk text.
_SURROGATE = re.compile("[\ud800-\udfff]")
#: Files the kit itself puts in a learner's folder: no row for them.
_KIT_FILES = {"README.md", "progress.json"}
#: Extra seconds the worker gets to start and to report, past the workbook's own limit.
_GRACE_S = 1.0
_ROOT = Path(__file__).resolve().parent.parent
STATUSES = ("passed", "failed", "copied", "no handler", "timed out", "invalid notebook", "not a notebook",
            "unknown workbook", "error")


@dataclass
class Grade:
    """One learner's result on one workbook."""

    learner: str
    exercise: str
    workbook: str
    status: str  # one of STATUSES
    hint: str
    seconds: float
    path: str = ""

    def __post_init__(self) -> None:
        # A name that is not UTF-8 (a Latin-1 file name, say) would stop the CSV and the report being written.
        for name, value in vars(self).items():
            if isinstance(value, str):
                setattr(self, name, printable(value))


def printable(text: str) -> str:
    """``text`` as UTF-8 can write it: a byte of a name that is not UTF-8 as ``\\xe9``, any other lone surrogate
    as ``\\ud800``, so the instructor can still tell which file it is."""
    return _SURROGATE.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


@dataclass
class Batch:
    """What every workbook of one run shares: folders to hide from learners, uids, a stub folder."""

    hide: list[str] = field(default_factory=list)
    uids: Optional[queue.Queue[int]] = None
    lease: Optional[jail_module.UidLease] = None
    stub_dir: Optional[Path] = None
    limits: jail_module.Limits = field(default_factory=jail_module.Limits)

    @classmethod
    def make(cls, folders: list[Path], out_dir: Optional[Path], jobs: int,
             limits: Optional[jail_module.Limits] = None) -> Batch:
        batch = cls(hide=_hidden_folders(folders, out_dir), limits=limits or jail_module.Limits())
        if jail_module.is_root():
            batch.lease = jail_module.lease_uids(jobs)
            batch.uids = queue.Queue()
            for uid in batch.lease.uids:
                batch.uids.put(uid)
            batch.stub_dir = Path(tempfile.mkdtemp(prefix="ldkkit-grader-"))
            batch.stub_dir.chmod(0o755)
            (batch.stub_dir / "reference.py").write_text('"""Not available while grading."""\n')
            (batch.stub_dir / "reference.py").chmod(0o644)
        return batch

    def stubs(self) -> dict[str, str]:
        """The kit's reference handler (source and bytecode) and what covers it in the sandbox."""
        if self.stub_dir is None:
            return {}
        import importlib.util

        spec = importlib.util.find_spec("ldkkit.reference")
        if spec is None or not spec.origin:
            return {}
        origin = Path(spec.origin)
        stub = str(self.stub_dir / "reference.py")
        covered = [origin, *origin.parent.glob("__pycache__/reference.*.pyc")]
        return {str(path): stub for path in covered}

    def close(self) -> None:
        if self.stub_dir is not None:
            shutil.rmtree(self.stub_dir, ignore_errors=True)
        if self.lease is not None:
            self.lease.release()


def _hidden_folders(folders: list[Path], out_dir: Optional[Path]) -> list[str]:
    """Everything a learner process must not see: submissions, the grades, the kit's non-code folders."""
    hide = set()
    for folder in folders:
        for path in (folder, folder.resolve()):
            hide.add(str(path))
            home = _home_of(path)
            if home is not None:
                hide.add(str(home))
    if out_dir is not None:
        hide.add(str(out_dir.resolve()))
    if (_ROOT / "pyproject.toml").exists():  # the kit's own checkout: only the code stays visible
        for entry in _ROOT.iterdir():
            if entry.is_dir() and entry.name not in ("ldkkit", ".venv"):
                hide.add(str(entry))
    return sorted(hide)


def _home_of(path: Path) -> Optional[Path]:
    """``/home/jupyter-alice`` for ``/home/jupyter-alice/ldk-events-workshop/exercises``."""
    parts = path.parts
    if len(parts) >= 3 and parts[0] == "/" and parts[1] == "home":
        return Path("/home", parts[2])
    return None


# --- finding workbooks and naming learners -----------------------------------------------------


def find_workbooks(submissions: list[str | os.PathLike[str]]) -> list[tuple[str, Path]]:
    """(learner, file) pairs: a folder is one learner's workbooks and stray files; a file is one workbook.

    In a folder, hidden files, sub-folders, backups and the files the kit itself puts there
    (README.md, progress.json) get no row; every other file does, a stray one saying so. A
    folder that would get no row, whose sub-folders hold workbooks (the grader was pointed
    a level too high), gets a row for each such sub-folder, saying to grade that one; one
    with nothing to grade at all gets a row saying so.
    """
    entries: list[tuple[Path, Path]] = []  # (learner folder, file)
    for submission in map(Path, submissions):
        submission = Path(os.path.abspath(submission))
        if submission.is_dir() and not submission.is_symlink():
            paths = [path for path in sorted(submission.iterdir()) if not _skipped(path)]
            # (a folder with nothing to grade at all is a row too: a learner who handed nothing in is not left out)
            entries += [(submission, path) for path in paths or _nested_workbook_folders(submission) or [submission]]
        else:
            entries.append((submission.parent, submission))
    names = learner_names([folder for folder, _ in entries])
    seen: set[Path] = set()
    found = []
    for folder, path in entries:
        if path not in seen:  # a file named on its own and inside a folder named too: one row
            seen.add(path)
            found.append((names[folder], path))
    return found


def _skipped(path: Path) -> bool:
    name = path.name
    return (name.startswith(".") or name in _KIT_FILES or ".backup" in name
            or (_is_folder(path) and path.suffix != ".ipynb"))  # (a folder named as a
    # workbook gets a row: "not a regular file", where it was never mentioned)


def _is_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _looks_like_a_workbook(path: Path) -> bool:
    return path.suffix == ".ipynb" and _WORKBOOK.fullmatch(path.stem) is not None


def _nested_workbook_folders(folder: Path) -> list[Path]:
    """The highest sub-folders of ``folder`` (down to a few levels, never through a link) that hold workbooks."""
    found, level = [], [folder]
    for _ in range(_NESTED_DEPTH):
        below = []
        for parent in level:
            try:
                children = sorted(child for child in parent.iterdir()
                                  if _is_folder(child) and not child.name.startswith("."))
            except OSError:  # a folder the grader may not list is no learner's layout
                continue
            for child in children:
                try:
                    holds = any(_looks_like_a_workbook(path) for path in child.iterdir())
                except OSError:
                    holds = False
                (found if holds else below).append(child)
        level = below
    for nested in found:
        warnings.warn(f"ldkkit grade: {printable(str(folder))} holds no workbook, but {printable(str(nested))} does: "
                      "point the grader at that folder", UserWarning, stacklevel=4)
    return found


def learner_names(folders: list[Path]) -> dict[Path, str]:
    """A name per folder: the user's folder under /home, else the part that tells folders apart.

    ``/home/jupyter-alice/ldk-events-workshop/exercises`` is ``jupyter-alice``; of
    ``class/alice`` and ``class/bob``, ``alice`` and ``bob``. Two different folders never
    share a name: a clash takes more of each path until the names differ.
    """
    unique = sorted(set(folders))
    names = {folder: _short_name(folder, unique) for folder in unique}
    depth = 1
    while len(set(names.values())) < len(names) and depth < 64:
        depth += 1
        seen: dict[str, list[Path]] = {}
        for folder, name in names.items():
            seen.setdefault(name, []).append(folder)
        for clashing in (group for group in seen.values() if len(group) > 1):
            for folder in clashing:
                names[folder] = "/".join(folder.parts[-depth - _suffix_len(unique):][:depth]) or str(folder)
    return names


def _suffix_len(folders: list[Path]) -> int:
    """How many trailing path parts every folder shares (``ldk-events-workshop/exercises``)."""
    if len(folders) < 2:
        return 0
    count = 0
    while all(len(f.parts) > count + 1 for f in folders) and len({f.parts[-count - 1] for f in folders}) == 1:
        count += 1
    return count


def _short_name(folder: Path, folders: list[Path]) -> str:
    home = _home_of(folder)
    if home is not None:
        return home.name
    parts = folder.parts[: len(folder.parts) - _suffix_len(folders)] or folder.parts
    return parts[-1] if parts[-1] != "/" else str(folder)


def _exercise_of(path: Path) -> Optional[str]:
    """The exercise of a workbook under the exact name the kit ships it as ("01_open_channel_request"), else None:
    a copy under another name ("1_open_channel_request") is not graded beside it, counting its learner twice."""
    from .exercises import EXERCISES, WORKBOOKS

    return dict(zip(WORKBOOKS, EXERCISES, strict=True)).get(path.stem)


def _rename_hint(path: Path) -> str:
    """For a workbook saved under another name (Jupyter's "-Copy1", a download's " (1)", "1_..." for "01_..."): the
    name it should have."""
    from .exercises import EXERCISES, WORKBOOKS

    misnumbered = _WORKBOOK.fullmatch(path.stem)
    named = [workbook for workbook, exercise in zip(WORKBOOKS, EXERCISES, strict=True)
             if path.stem.startswith(workbook) or (misnumbered and misnumbered["exercise"] == exercise)]
    if not named:
        return ""
    if (path.parent / f"{named[0]}.ipynb").exists():  # (renamed, it would replace the one graded)
        return f"; {named[0]}.ipynb beside it is the one graded (to grade this one instead, put it in its place)"
    return f"; rename it {named[0]}.ipynb to grade it"


# --- grading one workbook ------------------------------------------------------------------------


def grade_workbook(learner: str, path: Path, timeout_s: float = 120.0, batch: Optional[Batch] = None) -> Grade:
    """Grade one workbook in the sandbox; never raises for bad input (every failure is the row)."""
    started = time.perf_counter()
    path = Path(path)

    def row(status: str, hint: str) -> Grade:
        return Grade(learner, _exercise_of(path) or "", path.name, status, hint,
                     round(time.perf_counter() - started, 2), str(path))

    own_batch = batch is None
    try:
        if not path.exists() and not path.is_symlink():
            return row("error", f"{path} does not exist")
        if _is_folder(path) and path.suffix != ".ipynb" and not any(map(_looks_like_a_workbook, path.iterdir())):
            return row("not a notebook", f"{path.name} holds no workbook to grade: was anything handed in?")
        if _is_folder(path) and path.suffix != ".ipynb":
            return row("not a notebook", f"{path.name} is a folder of workbooks: grade them by pointing the grader "
                                         f"at {path}")
        if path.suffix != ".ipynb":
            return row("not a notebook", f"{path.name} is not a .ipynb workbook")
        exercise = _exercise_of(path)
        if exercise is None:
            return row("unknown workbook", f"no exercise is called {path.stem!r}" + _rename_hint(path))
        try:  # (what the cells hold, the handler and copies, the worker reads: in time that the code's size
            notebook = read_workbook(path)  # alone does not bound, so within the workbook's limit)
            cells = code_cells(notebook)
        except InvalidWorkbook as e:
            return row("invalid notebook", str(e))
        if own_batch:
            batch = Batch.make([path.parent], None, 1)
        verdict = _run_worker(exercise, cells, timeout_s, batch)  # type: ignore[arg-type]
        return row(verdict["status"], verdict["hint"] + (_handler_elsewhere(notebook, cells)
                                                         if verdict["status"] == "no handler" else ""))
    except Exception as e:  # the grader's own failure on this file is this file's row, never the batch's end
        return row("error", f"the grader failed on this workbook: {type(e).__name__}: {str(e)[:300]}")
    finally:
        if own_batch and batch is not None:
            batch.close()


def _handler_elsewhere(notebook: dict[str, Any], cells: list[str]) -> str:
    """Where the handler of a workbook with none is: a module of the learner's own it imports (not graded: the grader
    grades the workbook), or a markdown or raw cell, which Jupyter never runs."""
    imported = next(filter(None, (_IMPORTED_HANDLER.search(source) for source in cells)), None)
    if imported is not None:
        return (f". It imports handle_ldk_events from {imported['module']}, a module beside it: the grader grades "
                "the workbook alone, so the handler belongs in the workbook")
    for number, cell in enumerate(notebook["cells"], 1):
        source = cell.get("source") if isinstance(cell, dict) else None
        source = "".join(source) if isinstance(source, list) and all(isinstance(s, str) for s in source) else source
        if cell.get("cell_type") != "code" and isinstance(source, str) and "def handle_ldk_events" in source:
            return (f". Cell {number} holds def handle_ldk_events, but it is a {str(cell.get('cell_type'))[:20]} "
                    "cell, which Jupyter does not run: make it a code cell")
    return ""


def _run_worker(exercise: str, cells: list[str], timeout_s: float, batch: Batch) -> dict[str, str]:
    """Run the worker for one workbook, with one wall-clock limit, and leave no process behind. Its check stops a
    handler at this process's hang limit (``common.HANDLER_TIMEOUT_S``), which only the grader's own code sets."""
    from .exercises import common

    uid = batch.uids.get() if batch.uids is not None else None
    temp = scratch_dir("ldkkit-worker-")  # (the check's worlds keep their stores in it)
    try:
        limits = jail_module.Limits(**{**vars(batch.limits), "cpu_s": max(1, int(timeout_s) + 1)})
        jail = jail_module.Jail(uid, limits, batch.hide, batch.stubs())
        job = {"exercise": exercise, "cells": cells, "timeout_s": timeout_s, "jail": jail.to_dict(), "temp": temp,
               "hang_limit_s": common.HANDLER_TIMEOUT_S}
        worker = _start_worker()
        try:
            out, _ = worker.communicate(json.dumps(job).encode(), timeout=timeout_s + _GRACE_S)
        except subprocess.TimeoutExpired:
            return {"status": "timed out", "hint": f"the workbook did not finish within {timeout_s:g} s "
                                                   "(an endless loop?)"}
        finally:
            _kill_group(worker)
        return _verdict(out)
    finally:
        if uid is not None:
            jail_module.kill_uid(uid)
            batch.uids.put(uid)  # type: ignore[union-attr]
        shutil.rmtree(temp, ignore_errors=True)


def _start_worker() -> subprocess.Popen[bytes]:
    """A worker in a session of its own (its process group is killed whole when its workbook ends)."""
    debug = bool(os.environ.get("LDKKIT_SANDBOX_DEBUG"))  # the worker's and learner's stderr, to debug the kit
    return subprocess.Popen(jail_module.kit_python("ldkkit.sandbox.worker"), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=None if debug else subprocess.DEVNULL,
                            start_new_session=True)


def _kill_group(worker: subprocess.Popen[bytes]) -> None:
    jail_module.kill_group(worker.pid)  # (the worker leads its session's group: it and all it started)
    worker.wait()


def _verdict(out: bytes) -> dict[str, str]:
    """The worker's verdict (the worker is the grader's own code, but a crash is still a row)."""
    try:
        verdict = json.loads(out)
        if verdict.get("status") in STATUSES and isinstance(verdict.get("hint"), str):
            for note in verdict.get("missing") or []:
                _warn_once(str(note))
            return {"status": verdict["status"], "hint": verdict["hint"]}
    except (ValueError, AttributeError):
        pass
    return {"status": "error", "hint": "the grader's worker crashed on this workbook"}


_WARNED: set[str] = set()


def _warn_once(note: str) -> None:
    """Say once per run what the sandbox could not do here (no namespaces in a container, say)."""
    if note not in _WARNED:
        _WARNED.add(note)
        warnings.warn(f"ldkkit grade: the sandbox is weaker here: {note}", RuntimeWarning, stacklevel=2)


# --- a whole class ------------------------------------------------------------------------------


def grade(
    submissions: list[str | os.PathLike[str]], out_dir: Optional[str | os.PathLike[str]] = None,
    timeout_s: float = 120.0, jobs: Optional[int] = None, progress: bool = True,
    limits: Optional[jail_module.Limits] = None,
) -> Any:
    """Grade every workbook in ``submissions``; return a pandas DataFrame (and save a report in ``out_dir``)."""
    import pandas as pd

    work = find_workbooks(submissions)
    jobs = max(1, jobs or os.cpu_count() or 1)
    folders = sorted({path.parent for _, path in work} | {Path(os.path.abspath(s)) for s in map(Path, submissions)
                                                          if Path(s).is_dir()})
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)  # it exists before any learner code runs: hidden
    batch = Batch.make(folders, Path(out_dir) if out_dir is not None else None, jobs, limits)
    grades: list[Grade] = []
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(grade_workbook, learner, path, timeout_s, batch): (learner, path)
                       for learner, path in work}
            for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
                grades.append(_result(future, *futures[future]))
                if progress:
                    _progress_bar(done, len(futures))
    finally:
        batch.close()
    table = pd.DataFrame([asdict(g) for g in grades], columns=list(Grade.__dataclass_fields__))
    table = table.sort_values(["learner", "workbook", "path"]).reset_index(drop=True)  # paths are unique: a total order
    if out_dir is not None:
        write_report(table, Path(out_dir))
    return table


def _result(future: concurrent.futures.Future[Grade], learner: str, path: Path) -> Grade:
    """A workbook's row, even if grading it raised (grade_workbook should not, but a row is never lost)."""
    try:
        return future.result()
    except Exception as e:
        return Grade(learner, _exercise_of(path) or "", path.name, "error", f"{type(e).__name__}: {e}", 0.0,
                     str(path))


def summary(table: Any) -> tuple[Any, Any]:
    """Pass rate per exercise, and the most common failing hints (a check's Hint line, else the first line)."""
    graded = table[table["exercise"] != ""]  # files that are no exercise at all get a row, not a rate
    rates = graded.assign(passed=graded["status"] == "passed").groupby("exercise")["passed"].agg(["mean", "count"])
    rates = rates.rename(columns={"mean": "pass_rate", "count": "workbooks"})
    failing = table[table["status"] != "passed"]
    gists = failing["hint"].map(_gist).where(failing["hint"] != "", failing["status"])
    hints = gists.value_counts().rename_axis("failing hint").reset_index(name="learners")
    return rates, hints


def _gist(hint: str) -> str:
    """What to explain again of one row: a check's message begins with where it failed ("Scenario 'forwarding' on
    Event.PendingHTLCsForwardable:") and says why in its Hint line; other rows say it in their first line."""
    lines = hint.split("\n")
    return next((line.strip()[len(_HINT):] for line in lines if line.strip().startswith(_HINT)), lines[0])


_HINT = "Hint: "


def write_report(table: Any, out_dir: Path) -> None:
    """Save ``grades.csv`` (formula-safe) and a readable, escaped ``report.html``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    safe_csv(table).to_csv(out_dir / "grades.csv", index=False, encoding="utf-8")
    rates, hints = summary(table)
    html = ["<html><head><meta charset='utf-8'><title>LDK events workshop: grades</title></head><body>",
            "<h1>LDK events workshop: grades</h1>", "<h2>Pass rate per exercise</h2>", rates.to_html(),
            "<h2>What to explain again: the most common failing hints</h2>", _html_table(hints),
            "<h2>Every workbook</h2>", _html_table(table), "</body></html>"]
    (out_dir / "report.html").write_text("\n".join(html), encoding="utf-8")  # (as its meta tag says)


def _html_table(table: Any) -> str:
    """``table`` in HTML, its text escaped and its hints' lines kept as lines (pandas writes a line break as \\n)."""
    import html

    def cell(value: Any) -> Any:
        return html.escape(value).replace("\n", "<br>") if isinstance(value, str) else value

    return table.apply(lambda column: column.map(cell)).to_html(index=False, escape=False)


def safe_csv(table: Any) -> Any:
    """A copy in which no text cell can be read as a formula by a spreadsheet (=, +, -, @, tab, CR)."""
    def neutral(value: Any) -> Any:
        return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") else value

    return table.apply(lambda column: column.map(neutral))


def _progress_bar(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    print(f"\rgrading [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="" if done < total else "\n",
          file=sys.stderr, flush=True)
