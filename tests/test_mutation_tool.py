"""The maintainer's mutation tool (tools/mutation.py): its narrowed selections run the tests they name."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("mutation_tool", ROOT / "tools" / "mutation.py")
mutation = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mutation)


def test_corpus_narrows_to_that_workbooks_cases_and_the_check_rules_and_leaves_mutmuts_options():
    options = ["--max-children", "1", "--corpus", "on_chain,forwarding"]
    env = mutation._selection(options)
    assert options == ["--max-children", "1"]
    assert env == {"LDKKIT_CORPUS_ONLY": "on_chain,forwarding",
                   "LDKKIT_MUTATE_TESTS": "tests/test_corpus.py::test_case tests/test_check_rules.py"}
    assert mutation._selection(options := ["--tests", "tests/test_ser.py"]) == {
        "LDKKIT_MUTATE_TESTS": "tests/test_ser.py"} and options == []
    assert mutation._selection(["--max-children", "2"]) == {}


def test_an_unknown_workbook_is_refused_naming_the_known_ones():
    with pytest.raises(SystemExit, match="from: background_processor, capstone, forwarding"):
        mutation._selection(["--corpus", "on-chain"])


def test_another_selection_forgets_what_mutmut_kept_and_the_same_one_keeps_it(tmp_path):
    mutants = tmp_path / "mutants"
    mutation._forget_other_selections(mutants, {"LDKKIT_MUTATE_TESTS": "tests/test_ser.py"})
    (mutants / "mutmut-stats.json").write_text("{}")
    mutation._forget_other_selections(mutants, {"LDKKIT_MUTATE_TESTS": "tests/test_ser.py"})
    assert (mutants / "mutmut-stats.json").exists()
    mutation._forget_other_selections(mutants, {})
    assert not (mutants / "mutmut-stats.json").exists()


def test_mutant_names_of_a_module_and_of_a_package():
    assert mutation._mutant_glob("ldkkit/fs_store.py") == "ldkkit.fs_store.*"
    assert mutation._mutant_glob("ldkkit/events/__init__.py") == "ldkkit.events.x*"


def test_the_narrowed_selection_collects_only_the_named_tests_and_workbook():
    env = {**os.environ, "LDKKIT_CORPUS_ONLY": "on_chain",
           "LDKKIT_MUTATE_TESTS": "tests/test_corpus.py::test_case tests/test_ser.py::test_"}
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
                          "tests/test_corpus.py", "tests/test_ser.py"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    ids = [line for line in out.splitlines() if "::" in line]
    corpus = [i for i in ids if i.startswith("tests/test_corpus.py")]
    assert corpus and all(i.startswith("tests/test_corpus.py::test_case[on_chain:") for i in corpus), corpus
    assert any(i.startswith("tests/test_ser.py::test_") for i in ids)
    assert "deselected" in out
