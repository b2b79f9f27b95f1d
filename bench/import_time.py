#!/usr/bin/env python3
"""How long `import ldkkit` takes, next to a bare interpreter start in the same run.

Prints one `name value unit` line per figure. Each figure is the median of several
fresh interpreter starts, so that a noisy machine skews it less.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

RUNS = 15


def median_ms(code: str) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    bare = median_ms("pass")
    kit = median_ms("import ldkkit")
    events = median_ms("import ldkkit.events, ldkkit.fs_store, ldkkit.payment_storage")
    print(f"bare_python_start {bare:.1f} ms")
    print(f"import_ldkkit {kit:.1f} ms")
    print(f"import_ldkkit_extra {kit - bare:.1f} ms")
    print(f"import_ldkkit_core_modules_extra {events - bare:.1f} ms")
    print(f"import_ldkkit_vs_bare_ratio {kit / bare:.2f} x")


if __name__ == "__main__":
    main()
