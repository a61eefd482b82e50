"""Fixtures of the interop suite: the results every third-party client run records (see matrix.py)."""

from __future__ import annotations

import pytest
from tests.interop.matrix import RESULTS, InteropResults


@pytest.fixture(scope="session")
def interop_results() -> InteropResults:
    return RESULTS
