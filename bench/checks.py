#!/usr/bin/env python3
"""How long each workbook check takes to give its verdict: in a notebook, and through the grader.

Prints one `name value unit` line per check: ``check_<id>`` with the reference handler, in this
process, as ``check()`` runs in a notebook (the median of five runs after one to warm up, and its CPU
time, the least of three runs, which a busy machine changes least); ``check_<id>_first_in_process``, the
first check in a new process, as a learner's first in a fresh kernel (keys derived, invoices signed and
tables built once per process: the kit imported before the clock starts);
``check_<id>_beside_ipython_and_pandas``, the median in a process that holds what a kernel holds (whose
objects the garbage collector looks at too); ``grade_<id>`` for the finished workbook graded as an
instructor grades it, sandbox included (a learner process, the check in a worker).
The baseline, from the same run, is how long one bare scenario takes (the unit every check is built from).
The workshop aims for half a second per check.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LDKKIT_PROGRESS_FILE", os.path.join(tempfile.mkdtemp(), "progress.json"))
# The checkout this file is in, not whichever one the environment installed (as bench/payments.py does).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ldkkit import scenarios  # noqa: E402
from ldkkit.exercises import EXERCISES, check  # noqa: E402
from ldkkit.reference import handle_ldk_events  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_timed(fn, runs: int = 5) -> float:
    """The median wall time of a few runs, after one that warms up (the workshop's goal is a median)."""
    fn()
    return statistics.median(timed(fn) for _ in range(runs))


def cpu_timed(fn, runs: int = 3) -> float:
    """The least CPU time of a few runs: what a noisy, shared machine changes least."""
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


_FIRST = """
import sys, time
from ldkkit.exercises import check
from ldkkit.reference import handle_ldk_events
started = time.perf_counter()
check(sys.argv[1], handle_ldk_events)
print(time.perf_counter() - started)
"""


def first_in_process(name: str) -> float:
    """The first check in a new process (the kit imported first), in seconds."""
    out = subprocess.run([sys.executable, "-c", _FIRST, name], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)  # (-c: this checkout's kit first on the path)
    return float(out.stdout.split()[-1])


_IN_A_KERNEL = """
import statistics, sys, time
import IPython, pandas  # (what a learner's kernel holds: its objects are the collector's to look at too)
from ldkkit.exercises import check
from ldkkit.reference import handle_ldk_events
check(sys.argv[1], handle_ldk_events)
walls = []
for _ in range(5):
    started = time.perf_counter()
    check(sys.argv[1], handle_ldk_events)
    walls.append(time.perf_counter() - started)
print(statistics.median(walls))
"""


def in_a_kernel(name: str) -> float:
    """The median check, after one, in a process that holds what a notebook's kernel holds (IPython, pandas)."""
    out = subprocess.run([sys.executable, "-c", _IN_A_KERNEL, name], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    return float(out.stdout.split()[-1])


def own_copy(solution: Path, folder: Path) -> Path:
    """The finished workbook with lines of the learner's own, so the grader does not take it for a copy (a name given
    a value nothing reads would be code that does nothing, which a copy may hold: the name is read)."""
    notebook = json.loads(solution.read_text())
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and "def handle_ldk_events" in source:
            own = r"\1    graded_in_a_benchmark = True\n    assert graded_in_a_benchmark\n"
            source = re.sub(r"(def handle_ldk_events\([^)]*\):\n)", own, source)
            cell["source"] = source.splitlines(keepends=True)
    path = folder / solution.name
    path.write_text(json.dumps(notebook))
    return path


def main() -> None:
    scenarios.run("inbound_open_accept")  # warm imports
    print(f"bare_scenario_inbound_open_accept {timed(lambda: scenarios.run('inbound_open_accept')) * 1000:.0f} ms")
    for name in EXERCISES:
        print(f"check_{name} {median_timed(lambda name=name: check(name, handle_ldk_events)) * 1000:.0f} ms")
        print(f"check_{name}_cpu_min_of_3 {cpu_timed(lambda name=name: check(name, handle_ldk_events)) * 1000:.0f} ms")
        print(f"check_{name}_first_in_process {first_in_process(name) * 1000:.0f} ms")
        print(f"check_{name}_beside_ipython_and_pandas {in_a_kernel(name) * 1000:.0f} ms")
    from ldkkit.grading import grade_workbook

    folder = Path(tempfile.mkdtemp())
    for solution in sorted((Path(__file__).resolve().parent.parent / "solutions").glob("0*.ipynb")):
        graded = grade_workbook("bench", own_copy(solution, folder))
        assert graded.status == "passed", (solution.name, graded.status, graded.hint)
        print(f"grade_{graded.exercise} {graded.seconds * 1000:.0f} ms")
    print("target_per_check 500 ms")


if __name__ == "__main__":
    main()
