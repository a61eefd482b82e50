"""How many examples each fuzz test runs, and the count of inputs tried (printed by conftest.py).

Two Hypothesis profiles: ``fuzz-ci`` (the default: derandomized, so every CI run tries the same
inputs and a failure reproduces) and ``fuzz-long`` (``FUZZ_LONG=1``: 100x the examples, a new
random seed each run). ``FUZZ_SCALE=<n>`` sets the multiplier of either.
"""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import HealthCheck, Phase, settings

LONG = os.environ.get("FUZZ_LONG") == "1"
SCALE = float(os.environ.get("FUZZ_SCALE", "100" if LONG else "1"))

_COMMON = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    # no "explain" phase: it re-runs failing examples under coverage, minutes per failure here
    "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
}
settings.register_profile("fuzz-ci", derandomize=True, **_COMMON)
settings.register_profile("fuzz-long", derandomize=False, **_COMMON)
PROFILE = "fuzz-long" if LONG else "fuzz-ci"

#: "test: examples" / "test: inputs" -> how many
COUNTS: Counter[str] = Counter()


def fuzz_settings(examples: int) -> settings:
    """The settings for one fuzz test: ``examples`` in CI, scaled for the long run."""
    return settings(settings.get_profile(PROFILE), max_examples=max(1, int(examples * SCALE)))


def count(test: str, examples: int = 1, inputs: int = 0) -> None:
    COUNTS[f"{test}: examples"] += examples
    COUNTS[f"{test}: inputs"] += inputs
