"""Your progress through the workbooks, and putting a workbook back as it was shipped.

A workbook has one name everywhere: its exercise id (``"receiving_payments"``) or its file
name (``"03_receiving_payments"``, with or without ``.ipynb``). Progress is kept per kit
folder (the folder holding ``exercises/``), so two clones never share it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

#: The workbooks, in the workshop's order: their file names; the exercise id follows the number.
WORKBOOKS = ("01_open_channel_request", "02_funding_generation_ready", "03_receiving_payments",
             "04_sending_payments", "05_forwarding", "06_on_chain", "07_background_processor", "08_capstone")
EXERCISES = tuple(name.split("_", 1)[1] for name in WORKBOOKS)


def workbook_name(name: str) -> str:
    """The workbook's file name (no suffix) for any name of it; a clear error for an unknown one."""
    key = str(name).strip().removesuffix(".ipynb")
    key = Path(key).name
    for workbook, exercise in zip(WORKBOOKS, EXERCISES, strict=True):
        if key in (workbook, exercise):
            return workbook
    raise ValueError(f"no workbook called {name!r}. The workbooks are: "
                     + ", ".join(f"{w} (or {e!r})" for w, e in zip(WORKBOOKS, EXERCISES, strict=True)))


def exercise_id(name: str) -> str:
    return workbook_name(name).split("_", 1)[1]


def kit_folder(start: Optional[Path] = None) -> Optional[Path]:
    """The kit folder you are working in: the nearest folder up from here that holds ``exercises/``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "exercises").is_dir() and (folder / "solutions").is_dir():
            return folder
    installed = Path(__file__).resolve().parents[2]
    return installed if (installed / "exercises").is_dir() else None


def _progress_file() -> Path:
    if os.environ.get("LDKKIT_PROGRESS_FILE"):
        return Path(os.environ["LDKKIT_PROGRESS_FILE"])
    folder = kit_folder()
    if folder is not None:
        return folder / ".ldkkit" / "progress.json"
    return Path.home() / ".local" / "share" / "ldkkit" / "progress.json"


def _load() -> dict[str, str]:
    path = _progress_file()
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        return {}  # a damaged progress file is started afresh, never fatal
    return {k: v for k, v in data.items() if k in EXERCISES and isinstance(v, str)} if isinstance(data, dict) else {}


def _save(passed: dict[str, str]) -> None:
    path = _progress_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".progress-", suffix=".tmp")  # one per writer
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(passed, indent=2))
    os.replace(tmp, path)


#: Checks that pass at once (in threads) each add their pass: read, change and write one at a time.
_LOCK = threading.Lock()


def record_pass(exercise: str) -> None:
    with _LOCK:
        passed = _load()
        passed[exercise_id(exercise)] = time.strftime("%Y-%m-%d %H:%M")
        _save(passed)


def progress() -> dict[str, bool]:
    """Which workbooks you have passed, by file name, in the workshop's order."""
    passed = _load()
    return {workbook: exercise in passed for workbook, exercise in zip(WORKBOOKS, EXERCISES, strict=True)}


def reset(workbook: str) -> Path:
    """Put a workbook back as it was shipped, keeping your version as a ``.backup`` copy beside it.

    ``workbook`` is any of its names (``"03_receiving_payments"`` or ``"receiving_payments"``).
    Its progress is cleared too. Returns the backup's path.
    """
    from ..workbooks import exercise_from_solution

    name = workbook_name(workbook)
    folder = kit_folder()
    if folder is None:
        raise FileNotFoundError("reset() works inside the kit's folder (the one holding exercises/): open the "
                                "workbook from there and try again.")
    target = folder / "exercises" / f"{name}.ipynb"
    backup = target.with_name(f"{name}.{time.strftime('%Y%m%d-%H%M%S')}.backup.ipynb")
    if target.exists():
        shutil.copy2(target, backup)
    target.write_text(exercise_from_solution((folder / "solutions" / f"{name}.ipynb").read_text()))
    with _LOCK:
        passed = _load()
        passed.pop(exercise_id(name), None)
        _save(passed)
    return backup
