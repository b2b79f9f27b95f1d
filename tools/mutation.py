#!/usr/bin/env python3
"""Mutation testing of the modules that decide verdicts and keep data, with a score per module.

    python3 kit.py mutate                       # every module listed in pyproject's [tool.mutmut]
    python3 kit.py mutate ldkkit/fs_store.py    # one module (its mutants only)
    python3 kit.py mutate --max-children 1 ldkkit/fs_store.py   # one mutant at a time (a shared machine)

It runs mutmut 3 (installed on first use), which changes the code one small way at a time
and runs the tests that cover it; a mutant no test notices "survived". Slow: run it outside
CI, before and after adding tests. It prints one line per module: ``module score % killed/total``,
then the survivors, to kill with a test that states the behaviour or to mark, with a comment
saying why, as equivalent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: mutmut's exit codes for a mutant no test noticed: 0 survived; 5 and 33 no test covers it (not killed either).
NOT_KILLED = (0, 5, 33)
#: mutmut's code for a mutant it skipped (``# pragma: no mutate``, say): not counted.
SKIPPED = 34


def _mutant_glob(module: str) -> str:
    """mutmut names a mutant ``ldkkit.fs_store.x_write__mutmut_3``: its module, dotted (a package's
    ``__init__.py`` by the package alone: ``ldkkit.events.xǁClosureReasonǁ__str____mutmut_1``)."""
    dotted = module.removesuffix(".py").replace("/", ".").rstrip(".")
    if dotted.endswith(".__init__"):
        return dotted.removesuffix(".__init__") + ".x*"
    return dotted + ".*"


def scores(mutants: Path) -> list[tuple[str, int, int, list[str]]]:
    """(module, killed, total, survivors) for every module mutmut has results for."""
    out = []
    for meta in sorted(mutants.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        done = {name: code for name, code in codes.items() if code not in (None, SKIPPED)}
        survivors = sorted(name for name, code in done.items() if code in NOT_KILLED)
        module = str(meta.relative_to(mutants)).removesuffix(".meta")
        out.append((module, len(done) - len(survivors), len(done), survivors))
    return out


def main(args: list[str]) -> int:
    options, modules = [], list(args)
    while modules and modules[0].startswith("--"):  # mutmut run's own options, e.g. --max-children 1
        options.append(modules.pop(0))
        if "=" not in options[-1] and modules:
            options.append(modules.pop(0))
    command = [sys.executable, "-m", "mutmut", "run", *options, *(_mutant_glob(m) for m in modules)]
    run = subprocess.run(command, cwd=ROOT)
    results = scores(ROOT / "mutants")
    killed = sum(k for _, k, _, _ in results)
    total = sum(t for _, _, t, _ in results)
    for module, k, t, _ in results:
        if t:  # modules whose mutants were not run this time are left out
            print(f"{module} {100 * k / t:.1f} % {k}/{t}")
    print(f"all {100 * killed / max(total, 1):.1f} % {killed}/{total}")
    for _module, _, _, survivors in results:
        for name in survivors:
            print(f"survived {name}  (mutmut show {name})")
    return run.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
