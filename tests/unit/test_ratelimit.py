"""RateLimitedLog: at most ``burst`` lines per interval per kind, then one summary line."""

from __future__ import annotations

import asyncio
import logging

import pytest

from cloverleaf.router.ratelimit import RateLimitedLog

logger = logging.getLogger("cloverleaf.test.ratelimit")


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger.name]


def test_burst_then_summary_with_the_next_line(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limited = RateLimitedLog(logger, burst=3, interval=10.0, clock=lambda: now[0])
    caplog.set_level(logging.INFO)
    for n in range(100):
        limited.info("refused", "refused %d", n)
    limited.warning("other kind", "other")  # kinds are counted apart
    assert _messages(caplog) == ["refused 0", "refused 1", "refused 2", "other"]
    now[0] = 10.0
    limited.info("refused", "refused %d", 100)
    assert _messages(caplog)[4:] == ["suppressed 97 similar messages (refused) within 10 s", "refused 100"]


def test_nothing_is_counted_below_the_loggers_level(caplog: pytest.LogCaptureFixture) -> None:
    limited = RateLimitedLog(logger, burst=1, interval=10.0)
    caplog.set_level(logging.INFO)
    for _ in range(5):
        limited.debug("unencodable", "not delivered")
    limited.info("unencodable", "shown")
    assert _messages(caplog) == ["shown"]


async def test_summary_at_the_end_of_the_interval_on_a_running_loop(caplog: pytest.LogCaptureFixture) -> None:
    limited = RateLimitedLog(logger, burst=2, interval=0.2)
    caplog.set_level(logging.INFO)
    for n in range(50):
        limited.log("no hello", logging.WARNING if n == 30 else logging.INFO, "line %d", n)
    assert _messages(caplog) == ["line 0", "line 1"]
    await asyncio.sleep(0.3)
    assert _messages(caplog) == ["line 0", "line 1", "suppressed 48 similar messages (no hello) within 0.2 s"]
    assert caplog.records[-1].levelno == logging.WARNING  # the most severe of the suppressed lines
    limited.info("no hello", "line %d", 50)  # a new interval
    assert _messages(caplog)[-1] == "line 50"
