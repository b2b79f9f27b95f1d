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


def pytest_collection_modifyitems(config, items):
    """``LDKKIT_MUTATE_TESTS``: space-separated node-id prefixes; only the tests they name run. Mutation
    testing sets it (tools/mutation.py) so that each mutant runs the tests that judge its module, not all."""
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
