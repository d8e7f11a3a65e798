"""Hypothesis profiles for the OT tests: HYPOTHESIS_PROFILE=dev (default), ci or thorough."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# No deadlines: the suite runs on loaded two-core machines, and speed is measured by scripts/bench_ot.py.
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "ci", max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
