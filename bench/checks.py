#!/usr/bin/env python3
"""How long each workbook check takes to give its verdict, with the reference handler.

Prints one `name value unit` line per check, and, as the baseline from the same run, how
long one bare scenario takes (the unit every check is built from). The workshop aims for
half a second per check.
"""

from __future__ import annotations

import os
import tempfile
import time

os.environ.setdefault("LDKKIT_PROGRESS_FILE", os.path.join(tempfile.mkdtemp(), "progress.json"))

from ldkkit import scenarios  # noqa: E402
from ldkkit.exercises import EXERCISES, check  # noqa: E402
from ldkkit.reference import handle_ldk_events  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    scenarios.run("inbound_open_accept")  # warm imports
    print(f"bare_scenario_inbound_open_accept {timed(lambda: scenarios.run('inbound_open_accept')) * 1000:.0f} ms")
    for name in EXERCISES:
        print(f"check_{name} {timed(lambda name=name: check(name, handle_ldk_events)) * 1000:.0f} ms")
    print("target_per_check 500 ms")


if __name__ == "__main__":
    main()
