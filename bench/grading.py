#!/usr/bin/env python3
"""Grading a class of 30 workbooks on this machine, next to running one empty notebook.

Prints one `name value unit` line per figure. The workshop aims for a whole class of 30 in
under a minute on two cores.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from ldkkit.grading import grade

ROOT = Path(__file__).resolve().parent.parent
LEARNERS = 30


def empty_notebook_seconds() -> float:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    start = time.perf_counter()
    NotebookClient(notebook, kernel_name="python3").execute()
    return time.perf_counter() - start


def main() -> None:
    os.environ.setdefault("LDKKIT_PROGRESS_FILE", os.path.join(tempfile.mkdtemp(), "progress.json"))
    class_dir = Path(tempfile.mkdtemp(prefix="ldkkit-class-"))
    for i in range(LEARNERS):
        learner = class_dir / f"learner{i:02d}"
        learner.mkdir()
        source = "solutions" if i % 2 else "exercises"  # half finished, half not
        shutil.copy(ROOT / source / "01_open_channel_request.ipynb", learner)
    empty = empty_notebook_seconds()
    start = time.perf_counter()
    table = grade(sorted(class_dir.iterdir()), None, progress=False)
    total = time.perf_counter() - start
    print(f"grade_{LEARNERS}_workbooks_total {total:.1f} s")
    print(f"grade_per_workbook {total / len(table):.2f} s")
    print(f"empty_notebook_run {empty:.2f} s")
    print(f"cores {os.cpu_count()} cores")
    print("target_total 60 s")


if __name__ == "__main__":
    main()
