#!/usr/bin/env python3
"""What a check costs in machine instructions, counted by valgrind: the same on a busy machine as on an idle one.

Wall and CPU times on a shared machine move by a third from run to run, so a change worth a few per cent
cannot be seen in them. Instructions can: this counts, under ``valgrind --tool=callgrind``, a process that
runs a check once (to warm up) and one that runs it more times, and prints the difference per run, with
the bare scenario as the baseline from the same run:

    .venv/bin/python bench/instructions.py [exercise ...]     # default: capstone

It takes a few minutes per check (valgrind runs Python fifty times slower). Prints one `name value unit`
line per figure; nothing if valgrind is not installed (it says so on stderr).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

#: Run in the child: warm up, then what is counted (the child is told how many rounds).
_CHILD = """
import os, sys, tempfile
os.environ.setdefault("LDKKIT_PROGRESS_FILE", os.path.join(tempfile.mkdtemp(), "progress.json"))
from ldkkit import scenarios
from ldkkit.exercises import check
from ldkkit.reference import handle_ldk_events
name, rounds = sys.argv[1], int(sys.argv[2])
for _ in range(rounds):
    scenarios.run("inbound_open_accept") if name == "bare_scenario" else check(name, handle_ldk_events)
"""


def instructions(name: str, rounds: int) -> int:
    """Instructions of a whole process that runs ``name`` ``rounds`` times (after importing the kit)."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write(_CHILD)
    try:
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, script.name, name,
             str(rounds)],
            capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    finally:
        os.unlink(script.name)
    return int(re.search(r"Collected : (\d+)", result.stderr).group(1))


def one_more(name: str, extra: int) -> float:
    """The instructions of one more run of ``name``, once warm: ``1 + extra`` runs less one, per extra run. Two
    identical processes' counts differ by some 50 M (threads' interleaving, the garbage collector's timing), so
    the runs counted must add up to far more than that: with four capstone checks, about 1 %."""
    return (instructions(name, 1 + extra) - instructions(name, 1)) / extra


def main() -> None:
    if shutil.which("valgrind") is None:
        print("bench/instructions.py needs valgrind (apt-get install -y valgrind)", file=sys.stderr)
        return
    bare = one_more("bare_scenario", 30)
    print(f"bare_scenario_inbound_open_accept_instructions {bare / 1e6:.0f} M")
    for name in sys.argv[1:] or ["capstone"]:
        count = one_more(name, 4)
        print(f"check_{name}_instructions {count / 1e6:.0f} M")
        print(f"check_{name}_vs_bare_scenario {count / bare:.1f} x")


if __name__ == "__main__":
    main()
