"""Shared test settings: a hypothesis profile quick enough to run often."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("kit", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "kit"))

# Checks record progress; keep the test run's (and the notebook kernels') out of the user's home.
os.environ.setdefault("LDKKIT_PROGRESS_FILE", os.path.join(__import__("tempfile").mkdtemp(), "progress.json"))
