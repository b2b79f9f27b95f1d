"""Shared test settings: a hypothesis profile quick enough to run often, and the narrowed selections of
mutation testing (``python3 kit.py mutate --tests ...``, see tools/mutation.py)."""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("kit", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "kit"))

# Checks record progress; keep the test run's (and the notebook kernels') out of the user's home.
os.environ.setdefault("LDKKIT_PROGRESS_FILE", os.path.join(__import__("tempfile").mkdtemp(), "progress.json"))


#: The test files that take longest, longest first (seconds on 2 cores under load, ``--durations``): 170, 168, 143,
#: 69, 45, 41, 38, 34, 31, 25, 22, 20; the next is under 17. ``-n 2 --dist loadfile`` runs each file on one worker,
#: and xdist hands them out in that order (below), the rest as collected after them: the longest first, so that the
#: two workers end together. (xdist's own order, most tests first, left the one-test browser and JupyterLite tests
#: for last, and one worker ran on ~40 s after the other had ended.) A file missing here is only handed out later.
LONGEST_FIRST = ("tests/test_grading.py", "tests/test_grader_verdicts.py", "tests/test_corpus.py",
                 "tests/test_grading_run_all.py", "tests/test_workshop.py", "tests/test_check_rules.py",
                 "tests/test_dashboard_browser.py", "tests/test_jupyterlite.py", "tests/test_background_processor.py",
                 "tests/test_ser.py", "tests/test_checks.py", "tests/test_decode_fuzz.py")


def pytest_configure(config):
    """Files are handed to xdist's workers in the order of ``LONGEST_FIRST``, not by their number of tests."""
    if getattr(config.option, "dist", "no") in ("loadfile", "loadscope"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    """``LDKKIT_MUTATE_TESTS``: space-separated node-id prefixes; only the tests they name run. Mutation
    testing sets it (tools/mutation.py) so that each mutant runs the tests that judge its module, not all.
    In xdist's workers, the longest files come first (``LONGEST_FIRST``), each file's tests in order."""
    if hasattr(config, "workerinput"):  # (an xdist worker: its ``dist`` option is always "no")
        rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
        items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # (stable: files stay whole)
    prefixes = os.environ.get("LDKKIT_MUTATE_TESTS", "").split()
    if not prefixes:
        return
    kept = [item for item in items if item.nodeid.startswith(tuple(prefixes))]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept


@pytest.fixture(autouse=True)
def _each_test_a_fresh_kernel():
    """Each test checks as a fresh kernel does: a failure never says its workbook was checked before (a note
    ``check`` adds in a kernel that checked it already), whatever the tests before it checked."""
    from ldkkit import exercises

    exercises._CHECKED.clear()
    yield
