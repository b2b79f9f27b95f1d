#!/usr/bin/env python3
"""Mutation testing of the modules that decide verdicts and keep data, with a score per module.

    python3 kit.py mutate                       # every module listed in pyproject's [tool.mutmut]
    python3 kit.py mutate ldkkit/fs_store.py    # one module (its mutants only)
    python3 kit.py mutate --max-children 1 ldkkit/fs_store.py   # one mutant at a time (a shared machine)
    python3 kit.py mutate --corpus on_chain ldkkit/exercises/on_chain.py   # a check: its workbook's corpus
    python3 kit.py mutate --tests "tests/test_fs_store.py tests/test_restart.py" ldkkit/fs_store.py
    python3 kit.py mutate 'ldkkit.ln.channelmanager.xǁChannelManagerǁclaim_funds*'   # mutmut's own names

``--corpus <workbook>[,<workbook>...]`` runs only ``tests/test_corpus.py::test_case`` for those workbooks' cases (each
judged on its own) and ``tests/test_check_rules.py``; ``--tests`` runs only the tests whose node ids
start with one of the given prefixes (a ``tests/test_corpus.py::test_case[...]`` id among them still runs
the whole corpus, eight checks at a time, on its first case: minutes; narrow the corpus with ``--corpus``).
Without either, every test listed in pyproject's
``[tool.mutmut]`` runs. A mutant runs only the selected tests that reach the code it changed.

It runs mutmut 3 (installed on first use), which changes the code one small way at a time
and runs the tests that cover it; a mutant no test notices "survived". Slow: run it outside
CI, before and after adding tests. It prints one line per module: ``module score % killed/total``,
then the survivors, to kill with a test that states the behaviour or to mark, with a comment
saying why, as equivalent.
"""

from __future__ import annotations

import json
import os
import shutil
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


def _selection(options: list[str]) -> dict[str, str]:
    """Take ``--corpus``/``--tests`` out of ``options``; the environment that narrows the tests to them."""
    env: dict[str, str] = {}
    for flag in ("--corpus", "--tests"):
        if flag in options:
            at = options.index(flag)
            value = options[at + 1]
            del options[at:at + 2]
            if flag == "--corpus":
                known = {f.stem[4:] for f in (ROOT / "tests" / "corpus").glob("w0*_*.py")}
                if not set(value.split(",")) <= known:
                    sys.exit(f"--corpus takes workbooks, comma-separated, from: {', '.join(sorted(known))}")
                env["LDKKIT_CORPUS_ONLY"] = value
                env["LDKKIT_MUTATE_TESTS"] = "tests/test_corpus.py::test_case tests/test_check_rules.py"
            else:
                env["LDKKIT_MUTATE_TESTS"] = value
    return env


def _forget_other_selections(mutants: Path, env: dict[str, str]) -> None:
    """mutmut keeps which tests reach which code, and each mutant's result, between runs; both are wrong
    under another selection of tests, so a run with a new selection starts from nothing."""
    record = mutants / "ldkkit-selection.json"
    if mutants.exists() and (not record.exists() or json.loads(record.read_text()) != env):
        shutil.rmtree(mutants)
    mutants.mkdir(exist_ok=True)
    record.write_text(json.dumps(env))


def main(args: list[str]) -> int:
    options, modules = [], list(args)
    while modules and modules[0].startswith("--"):  # ours, or mutmut run's own (e.g. --max-children 1)
        options.append(modules.pop(0))
        if "=" not in options[-1] and modules:
            options.append(modules.pop(0))
    env = _selection(options)
    _forget_other_selections(ROOT / "mutants", env)
    names = [_mutant_glob(m) if m.endswith(".py") else m for m in modules]
    command = [sys.executable, "-m", "mutmut", "run", *options, *names]
    run = subprocess.run(command, cwd=ROOT, env={**os.environ, **env})
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
