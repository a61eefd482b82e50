"""The fuzz suite's run: no per-test timeout in the long run. (The inputs tried are printed at the end
by tests/conftest.py, which the pytest-xdist controller loads: this file is loaded by the workers.)

Short run (CI, part of the whole suite): ``.venv/bin/python -m pytest tests/fuzz``.
Long run (before a release): ``FUZZ_LONG=1 .venv/bin/python -m pytest tests/fuzz -p no:cacheprovider``.
"""

from __future__ import annotations

import pytest
from tests.fuzz.budget import LONG, SCALE


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if LONG or SCALE > 1:  # the long run takes as long as it takes
        for item in items:
            if "tests/fuzz/" in item.nodeid:
                item.add_marker(pytest.mark.timeout(0))

