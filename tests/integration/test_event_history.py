"""Event history: recorders per configured topic or pattern, the spec's filters, SQLite across restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.conftest import start_router

from cloverleaf.client import ApplicationError, PublishOptions, connect


def _config(store: dict[str, Any]) -> dict[str, Any]:
    return {
        "realms": [{
            "name": "realm1",
            "event_history": [{"uri": "com.example.log.", "match": "prefix", "limit": 4},
                              {"uri": "com.example.state"}],
            "event_store": store,
        }]
    }  # fmt: skip


async def test_history_filters_and_limits(tmp_path: Path) -> None:
    router = start_router(tmp_path, **_config({"type": "memory"}))
    try:
        session = await connect(router.ws_url, "realm1")
        publications = []
        for i in range(6):
            published = await session.publish(f"com.example.log.{'auth' if i % 2 else 'basket'}", i, n=i,
                                               options=PublishOptions(acknowledge=True))  # fmt: skip
            assert published is not None
            publications.append(published.id)
        subscription = await session.call("wamp.subscription.lookup", "com.example.log.", {"match": "prefix"})
        events = await session.call("wamp.subscription.get_events", subscription)
        # the limit keeps the last 4, oldest first, with the concrete topic in details
        assert [e["args"] for e in events] == [[2], [3], [4], [5]]
        assert [e["publication"] for e in events] == publications[2:]
        assert all(e["subscription"] == subscription and e["timestamp"].endswith("Z") for e in events)
        assert [e["details"]["topic"] for e in events] == [
            "com.example.log.basket", "com.example.log.auth", "com.example.log.basket", "com.example.log.auth"
        ]
        assert events[0]["kwargs"] == {"n": 2}

        reverse = await session.call("wamp.subscription.get_events", subscription, reverse=True, limit=2)
        assert [e["args"] for e in reverse] == [[5], [4]]
        auth_only = await session.call("wamp.subscription.get_events", subscription, topic="com.example.log.auth")
        assert [e["args"] for e in auth_only] == [[3], [5]]
        after = await session.call("wamp.subscription.get_events", subscription, after_publication=publications[3])
        assert [e["args"] for e in after] == [[4], [5]]
        page = await session.call("wamp.subscription.get_events", subscription, from_publication=publications[3],
                                  until_publication=publications[4])  # fmt: skip
        assert [e["args"] for e in page] == [[3], [4]]
        before = await session.call("wamp.subscription.get_events", subscription, before_publication=publications[3])
        assert [e["args"] for e in before] == [[2]]
        later = await session.call("wamp.subscription.get_events", subscription, after_time="2999-01-01T00:00:00Z")
        assert later == []
        since = await session.call("wamp.subscription.get_events", subscription, from_time=events[0]["timestamp"])
        assert len(since) == 4

        # a subscriber of the same (uri, match) shares the subscription, and the recorder is not a subscriber
        received: asyncio.Queue[Any] = asyncio.Queue()
        subscribed = await session.subscribe("com.example.state", received.put_nowait)
        assert subscribed.id == await session.call("wamp.subscription.lookup", "com.example.state")
        assert await session.call("wamp.subscription.count_subscribers", subscribed.id) == 1

        # a subscription without history says so
        other = await session.subscribe("com.example.other", lambda: None)
        try:
            await session.call("wamp.subscription.get_events", other.id)
        except ApplicationError as exc:
            assert exc.error == "wamp.error.history_unavailable"
        else:
            raise AssertionError("get_events on a subscription without history must fail")
        await session.leave()
    finally:
        router.stop()


async def test_sqlite_history_survives_a_restart(tmp_path: Path) -> None:
    store = {"type": "sqlite", "path": str(tmp_path / "events.db")}
    (tmp_path / "one").mkdir()
    first = start_router(tmp_path / "one", **_config(store))
    try:
        session = await connect(first.ws_url, "realm1")
        await session.publish("com.example.state", "before restart", options=PublishOptions(acknowledge=True))
        await session.leave()
    finally:
        assert first.stop() == 0
    (tmp_path / "two").mkdir()
    second = start_router(tmp_path / "two", **_config(store))
    try:
        session = await connect(second.ws_url, "realm1")
        subscription = await session.call("wamp.subscription.lookup", "com.example.state")
        events = await session.call("wamp.subscription.get_events", subscription)
        assert [e["args"] for e in events] == [["before restart"]]
        await session.leave()
    finally:
        second.stop()
