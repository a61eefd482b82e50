"""The fuzz suite's run: no per-test timeout in the long run, and the inputs tried, printed at the end.

Short run (CI, part of the whole suite): ``.venv/bin/python -m pytest tests/fuzz``.
Long run (before a release): ``FUZZ_LONG=1 .venv/bin/python -m pytest tests/fuzz -p no:cacheprovider``.
"""

from __future__ import annotations

import pytest
from tests.fuzz.budget import COUNTS, LONG, PROFILE, SCALE


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if LONG or SCALE > 1:  # the long run takes as long as it takes
        for item in items:
            if "tests/fuzz/" in item.nodeid:
                item.add_marker(pytest.mark.timeout(0))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not COUNTS:
        return
    terminalreporter.write_sep("-", f"fuzz inputs tried (profile {PROFILE}, scale {SCALE:g})")
    width = max(len(k) for k in COUNTS)
    for key in sorted(COUNTS):
        terminalreporter.write_line(f"{key:<{width}}  {COUNTS[key]:>12,}")
    examples = sum(v for k, v in COUNTS.items() if k.endswith(": examples"))
    inputs = sum(v for k, v in COUNTS.items() if k.endswith(": inputs"))
    terminalreporter.write_line(f"total: {examples:,} examples, {inputs:,} inputs")
