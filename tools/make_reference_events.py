#!/usr/bin/env python3
"""Write ``ldkkit/exercises/reference_events.py``: the events the reference node is given in every scenario.

The capstone compares a learner's node with these, scenario by scenario. They never change between runs
(a seed fixes them), so they are computed here once rather than in every check. Run it after changing
the world or a scenario; ``tests/test_check_rules.py`` fails while the stored list is out of date.

    .venv/bin/python tools/make_reference_events.py
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from ldkkit import scenarios
from ldkkit.exercises.capstone import reference_events

TARGET = Path(__file__).resolve().parent.parent / "ldkkit" / "exercises" / "reference_events.py"


def render() -> str:
    entries = []
    for name in scenarios.names():
        names = ", ".join(f'"{n}"' for n in reference_events(name))
        entries.append(f'    "{name}": (\n' + textwrap.fill(names + ",", 116, initial_indent=" " * 8,
                                                             subsequent_indent=" " * 8) + "\n    ),\n")
    return (
        '"""The events the reference node is given in each scenario, with the capstone\'s seed: what the capstone\n'
        'compares a learner\'s node with. Written by ``tools/make_reference_events.py``; do not edit."""\n\n'
        "REFERENCE_EVENTS: dict[str, tuple[str, ...]] = {\n" + "".join(entries) + "}\n"
    )


if __name__ == "__main__":
    TARGET.write_text(render())
    print(f"wrote {TARGET}")
