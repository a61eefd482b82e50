"""A slow consumer costs the log one line: none for what is sent after its close, one warning for drops.

Router layer without sockets (an in-memory link whose backlog stays full: the transport reports the
loss only later); the same over real sockets is in tests/integration/test_log_flooding.py.
"""

from __future__ import annotations

import logging

import pytest
from tests.unit.test_join_timer import JSON, Link, _hello, _router

from cloverleaf.router.auth import AnonymousAuthenticator
from cloverleaf.router.session import QueuePolicy, SessionLimits, SessionOptions


async def test_a_condemned_slow_consumer_logs_its_close_once(caplog: pytest.LogCaptureFixture) -> None:
    """The transport reports the loss only on a later loop pass: events keep coming meanwhile."""
    router = _router(SessionLimits(max_outgoing_bytes=1000, queue_policy=QueuePolicy.CLOSE))
    publisher_link, slow_link = Link(), Link()
    publisher = router.open_session(publisher_link, SessionOptions([AnonymousAuthenticator()]))
    slow = router.open_session(slow_link, SessionOptions([AnonymousAuthenticator()]))
    for session in (publisher, slow):
        session.receive(_hello())
    slow.receive(JSON.encode([32, 1, {}, "com.example.t"]))
    slow_link.stuck_backlog = 10_000
    caplog.set_level(logging.DEBUG)
    for request in range(1, 1001):
        publisher.receive(JSON.encode([16, request, {}, "com.example.t", ["x" * 100]]))
    closes = [r for r in caplog.records if "slow consumer" in r.getMessage()]
    assert len(closes) == 1 and "closed: outgoing queue over 1000 bytes" in closes[0].getMessage()
    assert slow_link.closed == "outgoing queue full"
    slow.connection_lost("outgoing queue full")
    left = [r.getMessage() for r in caplog.records if "left realm" in r.getMessage()]
    assert len(left) == 1 and left[0].endswith(": outgoing queue full"), left


async def test_dropped_events_warn_once_and_the_leave_line_counts_them(caplog: pytest.LogCaptureFixture) -> None:
    router = _router(SessionLimits(max_outgoing_bytes=1000, queue_policy=QueuePolicy.DROP_EVENTS))
    publisher_link, slow_link = Link(), Link()
    publisher = router.open_session(publisher_link, SessionOptions([AnonymousAuthenticator()]))
    slow = router.open_session(slow_link, SessionOptions([AnonymousAuthenticator()]))
    slow_link.stuck_backlog = 0
    for session in (publisher, slow):
        session.receive(_hello())
    slow.receive(JSON.encode([32, 1, {}, "com.example.t"]))
    slow_link.stuck_backlog = 10_000
    caplog.set_level(logging.DEBUG)
    for request in range(1, 25_001):
        publisher.receive(JSON.encode([16, request, {}, "com.example.t", []]))
    warnings = [r.getMessage() for r in caplog.records if "dropping events" in r.getMessage()]
    assert warnings == [f"session {slow.session_id} (memory:test) is a slow consumer: dropping events "
                        "(1 dropped so far)"]  # fmt: skip
    slow.connection_lost()
    left = [r.getMessage() for r in caplog.records if "left realm" in r.getMessage()]
    assert left == [f"session {slow.session_id} left realm realm1 (memory:test): transport lost "
                    "(25000 events dropped as a slow consumer)"]  # fmt: skip
