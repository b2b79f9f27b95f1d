#!/usr/bin/env python3
"""Re-execute notebooks in place so their stored outputs match what the kit now prints.

    .venv/bin/python tools/run_notebooks.py notebooks/*.ipynb solutions/*.ipynb

nbval compares these stored outputs exactly, so run this after changing a notebook or
anything it shows. Widget state is not stored: its random model ids would churn on
every run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def run(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
        store_widget_state=False, record_timing=False,  # no timestamps: they would churn on every run
    )
    client.execute()
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    print(f"executed {path}")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        run(Path(arg))
