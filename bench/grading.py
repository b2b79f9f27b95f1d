#!/usr/bin/env python3
"""Grading a class of 30 workbooks on this machine, sandbox included.

Prints one `name value unit` line per figure: the whole class, the cost per workbook, and,
measured in the same run, what one workbook's parts cost on their own (starting and
confining the learner process, and the check). The workshop aims for a class of 30 in
under a minute on two cores. As root, the sandbox is the full one (another uid,
namespaces); otherwise it is the reduced one the README describes, and a line says so.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The checkout this file is in, not whichever one the environment installed (as bench/payments.py does).
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from ldkkit.grading import grade  # noqa: E402
from ldkkit.sandbox import jail  # noqa: E402

LEARNERS = 30
WORKBOOK = "01_open_channel_request.ipynb"


def make_class(class_dir: Path) -> None:
    """Half the class finished workbook 1 in their own words, half did not."""
    from test_grading import own_handler

    for i in range(LEARNERS):
        learner = class_dir / f"learner{i:02d}"
        learner.mkdir()
        if i % 2:
            (learner / WORKBOOK).write_text(own_handler(WORKBOOK, f"learner{i:02d}"))
        else:
            shutil.copy(ROOT / "exercises" / WORKBOOK, learner)


def learner_process_seconds() -> float:
    """Start, confine and stop one learner process running workbook 1's cells (no check)."""
    from ldkkit.sandbox.bridge import LearnerProcess
    from ldkkit.sandbox.source import learner_code, read_workbook

    code = learner_code(read_workbook(ROOT / "exercises" / WORKBOOK))
    uid = jail.free_uids(1)[0] if jail.is_root() else None
    scratch = f"{jail.SCRATCH}-bench" if uid is not None else tempfile.mkdtemp()
    start = time.perf_counter()
    learner = LearnerProcess(jail.Jail(uid, jail.Limits(), [], {}, scratch), time.monotonic() + 60)
    learner.run_cells(code.cells, "open_channel_request")
    learner.close()
    took = time.perf_counter() - start
    if uid is not None:
        jail.kill_uid(uid)
    shutil.rmtree(scratch, ignore_errors=True)
    return took


def check_seconds() -> float:
    """The check alone, in this process, on the finished handler (what the worker adds to the sandbox)."""
    from ldkkit.exercises import check

    namespace: dict[str, object] = {}
    from test_grading import own_handler

    for cell in json.loads(own_handler(WORKBOOK, "bench"))["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code" and "check(" not in source and "scenarios" not in source:
            exec(source, namespace)
    start = time.perf_counter()
    check("open_channel_request", namespace["handle_ldk_events"])
    return time.perf_counter() - start


def main() -> None:
    os.environ.setdefault("LDKKIT_PROGRESS_FILE", os.path.join(tempfile.mkdtemp(), "progress.json"))
    class_dir = Path(tempfile.mkdtemp(prefix="ldkkit-class-"))
    try:
        make_class(class_dir)
        start = time.perf_counter()
        table = grade(sorted(class_dir.iterdir()), None, progress=False)
        total = time.perf_counter() - start
    finally:
        shutil.rmtree(class_dir, ignore_errors=True)
    statuses = table["status"].value_counts().to_dict()
    assert statuses == {"passed": LEARNERS // 2, "failed": LEARNERS - LEARNERS // 2}, statuses
    print(f"grade_{LEARNERS}_workbooks_total {total:.1f} s")
    print(f"grade_per_workbook {total / len(table):.2f} s")
    print(f"learner_process_start_confine_cells {learner_process_seconds():.2f} s")
    print(f"check_in_process {check_seconds():.2f} s")
    print(f"cores {os.cpu_count()} cores")
    print(f"full_sandbox {int(jail.is_root())} bool")
    print("target_total 60 s")


if __name__ == "__main__":
    main()
