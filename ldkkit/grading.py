"""Grade a class's workbooks: one row per learner and exercise, and a summary of what to explain again.

    ldkkit grade class/alice class/bob --out report/      # the command line
    ldkkit.grading.grade(["class/alice", "class/bob"])    # or from Python: a DataFrame

Each submission is a learner's workbook, or a folder of them (one folder per learner).
Every workbook runs in its own kernel (nbclient), in a scratch folder of its own, in
parallel up to the number of cores, with a time limit. The grader removes the learner's
own check cells and runs the check itself, on the ``handle_ldk_events`` the learner's
kernel defined; the learner's code never runs in the grader's process. Broken input
(invalid JSON, no handler, an endless loop, a dead kernel, a file that is not a notebook)
gets a row saying so, and never stops the batch.

Note: the scratch folder is the kernel's working directory, home and temporary folder; it
is a convention learners' code follows unless it tries hard not to, not a sandbox.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

#: Workbook file names look like "03_receiving_payments.ipynb".
_WORKBOOK = re.compile(r"^\d+_(?P<exercise>[a-z_]+)$")
_VERDICT = "LDKKIT_VERDICT "

_GRADER_CELL = """\
import json as _json
try:
    _handler = handle_ldk_events
except NameError:
    print({marker!r} + _json.dumps({{"status": "no handler", "hint": "the workbook never defines handle_ldk_events"}}))
else:
    from ldkkit.exercises import ExerciseFailed as _Failed, check as _check
    try:
        _check({exercise!r}, _handler)
        print({marker!r} + _json.dumps({{"status": "passed", "hint": ""}}))
    except _Failed as _e:
        print({marker!r} + _json.dumps({{"status": "failed", "hint": str(_e)}}))
    except Exception as _e:
        print({marker!r} + _json.dumps({{"status": "error", "hint": f"{{type(_e).__name__}}: {{_e}}"}}))
"""


@dataclass
class Grade:
    """One learner's result on one exercise."""

    learner: str
    exercise: str
    workbook: str
    status: str  # passed, failed, no handler, timed out, kernel died, invalid notebook, not a notebook, error
    hint: str
    seconds: float


def find_workbooks(submissions: list[str | os.PathLike[str]]) -> list[tuple[str, Path]]:
    """(learner, workbook) pairs: a folder is one learner's workbooks; a file is one workbook.

    In a folder only notebooks count (a home holds other files too); a file named on its
    own is graded, or reported, whatever it is.
    """
    found = []
    for submission in map(Path, submissions):
        if submission.is_dir():
            for path in sorted(submission.glob("*.ipynb")):
                if not path.name.startswith(".") and ".backup" not in path.name:
                    found.append((submission.name, path))
        else:
            found.append((submission.parent.name or submission.stem, submission))
    return found


def _exercise_of(path: Path) -> Optional[str]:
    match = _WORKBOOK.match(path.stem)
    return match["exercise"] if match else None


def grade_workbook(learner: str, path: Path, timeout_s: float = 120.0) -> Grade:
    """Run one workbook in a fresh kernel, then its check; never raises for bad input."""
    started = time.perf_counter()

    def row(status: str, hint: str = "", exercise: str = "") -> Grade:
        return Grade(learner, exercise or _exercise_of(path) or "", path.name, status, hint,
                     round(time.perf_counter() - started, 2))

    if path.suffix != ".ipynb":
        return row("not a notebook", f"{path.name} is not a .ipynb workbook")
    exercise = _exercise_of(path)
    from .exercises import _CHECKS

    if exercise not in _CHECKS:
        return row("unknown workbook", f"no exercise is called {path.stem!r}")
    try:
        import nbformat

        notebook = nbformat.read(path, as_version=4)
    except Exception as e:  # JSON errors, schema errors, unreadable files: all become a row
        return row("invalid notebook", f"{type(e).__name__}: {str(e)[:200]}")
    return _execute(notebook, exercise, timeout_s, row)


def _execute(notebook: Any, exercise: str, timeout_s: float, row: Any) -> Grade:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    # The learner's check cells go: the grader runs the check itself, whatever they did to theirs.
    notebook.cells = [c for c in notebook.cells if not (c.cell_type == "code" and "check(" in c.source)]
    notebook.cells.append(nbformat.v4.new_code_cell(_GRADER_CELL.format(marker=_VERDICT, exercise=exercise)))
    scratch = Path(tempfile.mkdtemp(prefix="ldkkit-grade-"))
    env = {**os.environ, "HOME": str(scratch), "TMPDIR": str(scratch),
           "LDKKIT_PROGRESS_FILE": str(scratch / "progress.json")}
    client = NotebookClient(notebook, timeout=timeout_s, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(scratch)}})
    deadline = time.monotonic() + timeout_s
    try:
        client.execute(env=env)
    except CellTimeoutError:
        return row("timed out", f"the workbook did not finish within {timeout_s:g} s (an endless loop?)", exercise)
    except DeadKernelError:
        return row("kernel died", "the learner's kernel crashed or exited", exercise)
    except Exception as e:  # anything else the kernel machinery raises becomes a row too
        return row("error", f"{type(e).__name__}: {str(e)[:200]}", exercise)
    if time.monotonic() > deadline:
        return row("timed out", f"the workbook took longer than {timeout_s:g} s", exercise)
    for output in notebook.cells[-1].outputs:
        text = output.get("text", "")
        if output.get("output_type") == "stream" and _VERDICT in text:
            verdict = json.loads(text.split(_VERDICT, 1)[1].splitlines()[0])
            return row(verdict["status"], verdict["hint"], exercise)
    errors = [o for o in notebook.cells[-1].outputs if o.get("output_type") == "error"]
    detail = f"{errors[0]['ename']}: {errors[0]['evalue']}" if errors else "the grader's cell printed nothing"
    return row("error", detail, exercise)


def grade(
    submissions: list[str | os.PathLike[str]], out_dir: Optional[str | os.PathLike[str]] = None,
    timeout_s: float = 120.0, jobs: Optional[int] = None, progress: bool = True,
) -> Any:
    """Grade every workbook in ``submissions``; return a pandas DataFrame (and save a report in ``out_dir``)."""
    import pandas as pd

    work = find_workbooks(submissions)
    jobs = jobs or os.cpu_count() or 1
    grades: list[Grade] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(grade_workbook, learner, path, timeout_s) for learner, path in work]
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            grades.append(future.result())
            if progress:
                _progress_bar(done, len(futures))
    columns = list(Grade.__dataclass_fields__)
    table = pd.DataFrame([asdict(g) for g in grades], columns=columns)
    table = table.sort_values(["learner", "workbook"], kind="stable").reset_index(drop=True)
    if out_dir is not None:
        write_report(table, Path(out_dir))
    return table


def summary(table: Any) -> tuple[Any, Any]:
    """Pass rate per exercise, and the most common failing hints (first line of each)."""
    graded = table[table["exercise"] != ""]  # files that are no exercise at all get a row, not a rate
    rates = graded.assign(passed=graded["status"] == "passed").groupby("exercise")["passed"].agg(["mean", "count"])
    rates = rates.rename(columns={"mean": "pass_rate", "count": "workbooks"})
    failing = table[table["status"] != "passed"]
    first_lines = failing["hint"].str.split("\n").str[0].where(failing["hint"] != "", failing["status"])
    hints = first_lines.value_counts().rename_axis("failing hint").reset_index(name="learners")
    return rates, hints


def write_report(table: Any, out_dir: Path) -> None:
    """Save ``grades.csv`` and a readable ``report.html``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "grades.csv", index=False)
    rates, hints = summary(table)
    html = ["<html><head><meta charset='utf-8'><title>LDK events workshop: grades</title></head><body>",
            "<h1>LDK events workshop: grades</h1>", "<h2>Pass rate per exercise</h2>", rates.to_html(),
            "<h2>What to explain again: the most common failing hints</h2>", hints.to_html(index=False),
            "<h2>Every workbook</h2>", table.to_html(index=False), "</body></html>"]
    (out_dir / "report.html").write_text("\n".join(html))


def _progress_bar(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    print(f"\rgrading [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="" if done < total else "\n",
          file=sys.stderr, flush=True)
