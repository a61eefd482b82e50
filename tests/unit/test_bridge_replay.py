"""The HTTP bridge's replay memory (cloverleaf.node.bridge): each signature is accepted once, and
the memory stays bounded without giving up that guarantee."""

from __future__ import annotations

import time

import pytest

from cloverleaf.node import bridge


def test_a_signature_is_accepted_once() -> None:
    http = bridge.HttpBridge("publisher", None, "k", "s")  # type: ignore[arg-type]
    now = time.time()
    assert http._remember("sig-a", now) is None
    assert http._remember("sig-a", now) == "replayed request (this signature was accepted before)"
    assert http._remember("sig-b", now - 5) is None


def test_a_full_memory_shortens_the_window_instead_of_forgetting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge, "MAX_REMEMBERED", 3)
    http = bridge.HttpBridge("publisher", None, "k", "s")  # type: ignore[arg-type]
    now = time.time()
    for index, stamp in enumerate((now - 30, now - 20, now - 10)):
        assert http._remember(f"sig-{index}", stamp) is None
    assert http._remember("sig-3", now) is None  # the oldest (now - 30) is dropped: its time is the horizon
    assert len(http._accepted) == 3
    # sig-0 could be replayed now that it is forgotten, but its timestamp is at the horizon: refused
    assert http._remember("sig-0", now - 30) is not None
    assert "too old" in (http._remember("sig-x", now - 40) or "")
    assert http._remember("sig-1", now - 20) is not None  # still remembered


def test_entries_leave_the_memory_with_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    http = bridge.HttpBridge("publisher", None, "k", "s")  # type: ignore[arg-type]
    now = time.time()
    assert http._remember("old", now - bridge.SIGNATURE_WINDOW + 1) is None
    monkeypatch.setattr(bridge.time, "time", lambda: now + 2)  # "old" is now out of the window
    assert http._remember("new", now) is None
    assert http._accepted == {"new"}
