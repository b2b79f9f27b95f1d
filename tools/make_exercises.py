#!/usr/bin/env python3
"""Regenerate exercises/ from solutions/, the single source: `.venv/bin/python tools/make_exercises.py`."""

from __future__ import annotations

from pathlib import Path

from ldkkit.workbooks import exercise_from_solution

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    for solution in sorted((ROOT / "solutions").glob("*.ipynb")):
        target = ROOT / "exercises" / solution.name
        target.write_text(exercise_from_solution(solution.read_text()))
        print(f"wrote {target.relative_to(ROOT)}")
