"""Sessions across router nodes on NATS: session IDs unique cluster-wide, the session meta API and
meta events seeing every node, kills reaching other nodes, a killed node's sessions leaving. Real
`cloverleaf start` processes on one nats-server, Autobahn|Python as the client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from tests.advanced_helpers import left
from tests.cluster.nats import NatsServer
from tests.cluster.nodes import cluster_router, until
from tests.conftest import AutobahnSessions, RouterProcess, autobahn_transport

Nodes = Callable[[int], list[RouterProcess]]


@pytest.fixture
def nodes(tmp_path: Path, nats_server: NatsServer) -> Iterator[Nodes]:
    """make(n) -> n `cloverleaf start` nodes (a, b, c) of one cluster; stopped cleanly after the test
    (except those the test killed)."""
    started: list[RouterProcess] = []

    def make(count: int) -> list[RouterProcess]:
        for name in "abc"[:count]:
            started.append(cluster_router(tmp_path / name, nats_server.url, name))
        return list(started)

    try:
        yield make
    finally:
        # the sessions closed at teardown withdraw their interest in the meta topics: let those KV
        # writes land first (a node stopped with one in flight can hang in NatsCluster.stop, whose
        # await of its cancelled writer task does not return: see the report of issue 12's sessions slice)
        time.sleep(0.5)
        for node in started:
            if node.process.poll() is None:
                assert node.stop() == 0, node.log()
            assert "Traceback" not in node.log(), node.log()


def ab(node: RouterProcess, serializer: str = "json", kind: str = "websocket") -> dict[str, Any]:
    return autobahn_transport(node, kind, serializer)


async def count_is(session: Any, expected: int) -> bool:
    return bool(await session.call("wamp.session.count") == expected)


class MetaEvents:
    """wamp.session.on_join / on_leave (and subscription meta events) received by one session."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    async def subscribe(self, session: Any, *topics: str) -> None:
        for topic in topics:
            await session.subscribe(lambda *args, _topic=topic: self.events.append((_topic, args)), topic)

    def about(self, topic: str, session_id: int) -> list[Any]:
        found = []
        for name, args in self.events:
            if name != topic:
                continue
            first = args[0]
            subject = first["session"] if isinstance(first, dict) else first
            if subject == session_id:
                found.append(args)
        return found


async def wait_for_interest(observer: MetaEvents, other: RouterProcess, autobahn: AutobahnSessions) -> None:
    """Open probe sessions on ``other`` until their on_join reaches ``observer`` (interest in the meta
    topics propagates asynchronously), then close them."""
    probes: list[Any] = []

    async def seen() -> bool:
        probe = await autobahn.open(ab(other))
        probes.append(probe)
        await asyncio.sleep(0.05)
        return bool(observer.about("wamp.session.on_join", probe._session_id))

    await until(seen)
    for probe in probes:
        probe.leave()


async def test_session_ids_distinct_across_nodes(nodes: Nodes, autobahn: AutobahnSessions) -> None:
    a, b = nodes(2)
    sessions = await asyncio.gather(
        *(autobahn.open(ab(node, serializer)) for node in (a, b) for serializer in ("json", "msgpack", "cbor") * 10)
    )
    ids = [session._session_id for session in sessions]
    assert len(set(ids)) == len(ids) == 60
    # every node's view sees every session
    await until(lambda: count_is(sessions[0], 60))
    await until(lambda: count_is(sessions[-1], 60))
    assert sorted(await sessions[0].call("wamp.session.list")) == sorted(ids)
    assert sorted(await sessions[-1].call("wamp.session.list")) == sorted(ids)


async def test_count_list_get_see_both_nodes(nodes: Nodes, autobahn: AutobahnSessions) -> None:
    a, b = nodes(2)
    on_a = await autobahn.open(ab(a, "json"))
    on_b = await autobahn.open(ab(b, "msgpack", "rawsocket"))
    await until(lambda: count_is(on_a, 2))
    await until(lambda: count_is(on_b, 2))
    both = sorted([on_a._session_id, on_b._session_id])
    for session in (on_a, on_b):
        assert sorted(await session.call("wamp.session.list")) == both
        assert sorted(await session.call("wamp.session.list", ["anonymous"])) == both
        assert await session.call("wamp.session.count", ["anonymous"]) == 2
        assert await session.call("wamp.session.count", ["admin"]) == 0
        assert await session.call("wamp.session.list", ["admin"]) == []
    remote = await on_a.call("wamp.session.get", on_b._session_id)
    local = await on_b.call("wamp.session.get", on_b._session_id)
    assert remote == local
    assert remote["session"] == on_b._session_id and remote["realm"] == "realm1"
    assert remote["authrole"] == "anonymous" and remote["transport"]["type"] == "rawsocket"
    assert remote["transport"]["serializer"] == "msgpack"
    with pytest.raises(ApplicationError) as missing:
        await on_a.call("wamp.session.get", 12345)
    assert missing.value.error == "wamp.error.no_such_session"
    # a session that leaves node b leaves node a's view
    await on_b.leave()
    await until(lambda: count_is(on_a, 1))
    assert await on_a.call("wamp.session.list") == [on_a._session_id]


async def test_meta_events_of_another_node_arrive_once(nodes: Nodes, autobahn: AutobahnSessions) -> None:
    a, b = nodes(2)
    watcher = await autobahn.open(ab(a))
    observed = MetaEvents()
    await observed.subscribe(
        watcher,
        "wamp.session.on_join",
        "wamp.session.on_leave",
        "wamp.subscription.on_create",
        "wamp.subscription.on_subscribe",
        "wamp.subscription.on_unsubscribe",
        "wamp.subscription.on_delete",
    )
    await wait_for_interest(observed, b, autobahn)
    on_b = await autobahn.open(ab(b, "cbor"))
    sid = on_b._session_id
    subscription = await on_b.subscribe(lambda *args: None, "com.x.watched")
    await subscription.unsubscribe()
    await on_b.leave()
    await until(lambda: _has(observed.about("wamp.session.on_leave", sid)))
    await asyncio.sleep(0.3)  # a duplicate would arrive meanwhile
    joins = observed.about("wamp.session.on_join", sid)
    assert len(joins) == 1 and joins[0][0]["authrole"] == "anonymous" and joins[0][0]["realm"] == "realm1"
    leaves = observed.about("wamp.session.on_leave", sid)
    assert len(leaves) == 1 and leaves[0][2] == "anonymous"
    for topic in (
        "wamp.subscription.on_create",
        "wamp.subscription.on_subscribe",
        "wamp.subscription.on_unsubscribe",
        "wamp.subscription.on_delete",
    ):
        events = observed.about(topic, sid)
        assert len(events) == 1, (topic, observed.events)
        assert events[0][1] == subscription.id or events[0][1]["id"] == subscription.id


async def _has(items: list[Any]) -> bool:
    return bool(items)


async def test_kills_reach_sessions_on_another_node(nodes: Nodes, autobahn: AutobahnSessions) -> None:
    a, b = nodes(2)
    killer = await autobahn.open(ab(a))
    victims = [await autobahn.open(ab(b, serializer)) for serializer in ("json", "msgpack", "cbor", "json")]
    victim_ids = [victim._session_id for victim in victims]  # Autobahn forgets it on leaving
    await until(lambda: count_is(killer, 5))
    closed = [left(victim) for victim in victims]

    await killer.call("wamp.session.kill", victim_ids[0], message="you are out")
    details = await asyncio.wait_for(closed[0], 5)
    assert (details.reason, details.message) == ("wamp.close.killed", "you are out")

    authid = (await killer.call("wamp.session.get", victim_ids[1]))["authid"]
    killed = await killer.call("wamp.session.kill_by_authid", authid, reason="com.example.ban", message="banned")
    assert killed == [victim_ids[1]]
    details = await asyncio.wait_for(closed[1], 5)
    assert (details.reason, details.message) == ("com.example.ban", "banned")
    await until(lambda: count_is(killer, 3))

    # the caller is spared, as on one node; another session on node a goes too
    bystander_on_a = await autobahn.open(ab(a))
    closed_on_a = left(bystander_on_a)
    await until(lambda: count_is(killer, 4))
    assert await killer.call("wamp.session.kill_by_authrole", "anonymous", reason="com.example.purge") == 3
    for future in (closed[2], closed[3], closed_on_a):
        details = await asyncio.wait_for(future, 5)
        assert details.reason == "com.example.purge"
    await until(lambda: count_is(killer, 1))

    more = [await autobahn.open(ab(b)) for _ in range(2)]
    closed = [left(victim) for victim in more]
    await until(lambda: count_is(killer, 3))
    assert await killer.call("wamp.session.kill_all", reason="wamp.close.system_shutdown", message="maintenance") == 2
    for future in closed:
        details = await asyncio.wait_for(future, 5)
        assert (details.reason, details.message) == ("wamp.close.system_shutdown", "maintenance")
    await until(lambda: count_is(killer, 1))
    assert await killer.call("wamp.session.list") == [killer._session_id]
    with pytest.raises(ApplicationError) as own:
        await killer.call("wamp.session.kill", killer._session_id)
    assert own.value.error == "wamp.error.no_such_session"


async def test_killed_node_sessions_leave_everywhere_once(
    nodes: Nodes, autobahn: AutobahnSessions, nats_server: NatsServer
) -> None:
    a, b, c = nodes(3)
    watchers = [await autobahn.open(ab(a)), await autobahn.open(ab(c, "msgpack"))]
    observed = [MetaEvents(), MetaEvents()]
    for watcher, events in zip(watchers, observed, strict=True):
        await events.subscribe(watcher, "wamp.session.on_join", "wamp.session.on_leave")
    for events in observed:
        await wait_for_interest(events, b, autobahn)
    doomed = [await autobahn.open(ab(b, serializer)) for serializer in ("json", "cbor", "msgpack")]
    doomed_ids = [session._session_id for session in doomed]
    for watcher in watchers:
        await until(lambda watcher=watcher: count_is(watcher, 5))
    loop = asyncio.get_running_loop()
    killed_at = loop.time()
    b.process.kill()
    b.process.wait()

    async def all_left() -> bool:
        return all(events.about("wamp.session.on_leave", sid) for events in observed for sid in doomed_ids)

    await until(all_left, timeout=3)
    assert loop.time() - killed_at < 3
    await asyncio.sleep(0.5)  # a duplicate would arrive meanwhile
    for events in observed:
        for sid in doomed_ids:
            assert len(events.about("wamp.session.on_leave", sid)) == 1, events.events
    for watcher in watchers:
        assert await watcher.call("wamp.session.count") == 2
        assert sorted(await watcher.call("wamp.session.list")) == sorted(w._session_id for w in watchers)
        with pytest.raises(ApplicationError):
            await watcher.call("wamp.session.get", doomed_ids[0])
    # the janitor has deleted the dead node's entries: only the watchers' are left
    import nats

    connection = await nats.connect(nats_server.url)
    try:
        bucket = await connection.jetstream().key_value("cloverleaf-test-sessions")

        async def only_watchers_left() -> bool:
            try:
                return len(await bucket.keys()) == 2
            except nats.js.errors.NoKeysError:  # nats-py's keys() can see an empty snapshot under load: ask again
                return False

        await until(only_watchers_left)
    finally:
        await connection.close()
