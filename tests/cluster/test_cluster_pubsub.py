"""PubSub across router nodes on NATS: publisher and subscribers on different `cloverleaf start`
processes of one cluster, with Autobahn|Python as the client."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from autobahn.wamp.types import PublishOptions, SubscribeOptions
from tests.cluster.nats import NatsServer
from tests.cluster.nodes import cluster_router, until
from tests.conftest import AutobahnSessions, RouterProcess, autobahn_transport, launch_router, router_config


async def test_events_cross_nodes_exact_and_pattern(two_nodes: tuple[RouterProcess, RouterProcess],
                                                    autobahn: AutobahnSessions) -> None:
    a, b = two_nodes
    subscriber = await autobahn.open(autobahn_transport(b, "websocket", "json"))
    publisher = await autobahn.open(autobahn_transport(a, "rawsocket", "msgpack"))
    got: asyncio.Queue[tuple[str, Any, Any, int]] = asyncio.Queue()

    def handler(kind: str) -> Any:
        return lambda *args, details, **kwargs: got.put_nowait((kind, args, kwargs, details.publication))

    exact = await subscriber.subscribe(handler("exact"), "com.x.room1.temp",
                                       options=SubscribeOptions(details_arg="details"))
    prefix = await subscriber.subscribe(handler("prefix"), "com.x.room1",
                                        options=SubscribeOptions(match="prefix", details_arg="details"))

    async def arrived() -> bool:
        await publisher.publish("com.x.room1.temp", "probe", options=PublishOptions(acknowledge=True))
        await asyncio.sleep(0.05)
        return not got.empty()

    await until(arrived)  # the interest of node b has reached node a
    while not got.empty():
        got.get_nowait()
        await asyncio.sleep(0.02)
    publication = await publisher.publish("com.x.room1.temp", 21.5, b"\x00\x01", unit="C",
                                          options=PublishOptions(acknowledge=True))
    received = sorted([await asyncio.wait_for(got.get(), 5) for _ in range(2)])
    assert received == [("exact", (21.5, b"\x00\x01"), {"unit": "C"}, publication.id),
                        ("prefix", (21.5, b"\x00\x01"), {"unit": "C"}, publication.id)]
    # one topic and match policy has the same subscription ID on every node, without coordination
    same_on_a = await publisher.subscribe(lambda *a, **kw: None, "com.x.room1.temp")
    assert same_on_a.id == exact.id
    same_prefix_on_a = await publisher.subscribe(lambda *a, **kw: None, "com.x.room1", options=SubscribeOptions(
        match="prefix"))
    assert same_prefix_on_a.id == prefix.id != exact.id
    await exact.unsubscribe()
    await prefix.unsubscribe()


async def test_order_and_publisher_exclusion_across_nodes(two_nodes: tuple[RouterProcess, RouterProcess],
                                                          autobahn: AutobahnSessions) -> None:
    a, b = two_nodes
    on_b = await autobahn.open(autobahn_transport(b, "websocket", "cbor"))
    other_on_b = await autobahn.open(autobahn_transport(b, "unix", "json"))
    publisher = await autobahn.open(autobahn_transport(a, "websocket", "json"))
    received: dict[str, list[Any]] = {"on_b": [], "other": [], "publisher": []}
    for name, session in (("on_b", on_b), ("other", other_on_b), ("publisher", publisher)):
        await session.subscribe(lambda n, _name=name: received[_name].append(n), "com.x.seq")

    async def everybody() -> bool:
        await publisher.publish("com.x.seq", -1, options=PublishOptions(acknowledge=True, exclude_me=False))
        await asyncio.sleep(0.05)
        return all(received.values())

    await until(everybody)
    for values in received.values():
        values.clear()
    for n in range(200):
        publisher.publish("com.x.seq", n)
    other = other_on_b._session_id
    await publisher.publish("com.x.seq", 200, options=PublishOptions(acknowledge=True, exclude=[other]))
    await publisher.publish("com.x.seq", 201, options=PublishOptions(acknowledge=True, eligible=[other],
                                                                     exclude_me=False))
    await until(lambda: _done(received["other"], 201))
    await until(lambda: _done(received["on_b"], 200))
    assert received["on_b"] == list(range(201))  # in order, and not 201 (not eligible)
    assert received["other"] == [*range(200), 201]  # excluded from 200
    assert received["publisher"] == []  # exclude_me by default; not eligible for 201


async def _done(values: list[Any], last: Any) -> bool:
    return bool(values) and values[-1] == last


async def test_unsubscribed_node_gets_nothing_more(two_nodes: tuple[RouterProcess, RouterProcess],
                                                   autobahn: AutobahnSessions) -> None:
    a, b = two_nodes
    subscriber = await autobahn.open(autobahn_transport(b, "websocket", "json"))
    publisher = await autobahn.open(autobahn_transport(a, "websocket", "json"))
    got: list[Any] = []
    subscription = await subscriber.subscribe(got.append, "com.x.gone")

    async def arrived() -> bool:
        await publisher.publish("com.x.gone", "probe", options=PublishOptions(acknowledge=True))
        await asyncio.sleep(0.05)
        return bool(got)

    await until(arrived)
    await subscription.unsubscribe()
    await asyncio.sleep(0.5)  # the withdrawn interest reaches node a
    got.clear()
    await publisher.publish("com.x.gone", "after", options=PublishOptions(acknowledge=True))
    await asyncio.sleep(0.3)
    assert got == []
    assert "dropped" not in a.log()


async def test_event_history_from_any_node(tmp_path: Path, nats_server: NatsServer) -> None:
    """Every node records the history of the configured topics, whichever node they were published on."""
    from cloverleaf.client import PublishOptions as ClientPublishOptions
    from cloverleaf.client import connect

    history = {"realms": [{"name": "realm1", "event_history": [{"uri": "com.x.log.", "match": "prefix", "limit": 10}],
                           "event_store": {"type": "memory"}}]}
    a = cluster_router(tmp_path / "a", nats_server.url, "a", history)
    b = cluster_router(tmp_path / "b", nats_server.url, "b", history)
    try:
        on_a = await connect(a.ws_url, "realm1")
        on_b = await connect(b.ws_url, "realm1")
        subscription = await on_b.call("wamp.subscription.lookup", "com.x.log.", {"match": "prefix"})
        assert subscription == await on_a.call("wamp.subscription.lookup", "com.x.log.", {"match": "prefix"})
        # the recorder of node b subscribed before node a started: its interest is in the registry
        published = [await on_a.publish(f"com.x.log.{i}", i, options=ClientPublishOptions(acknowledge=True))
                     for i in range(3)]
        deadline = time.monotonic() + 5
        while True:
            events = await on_b.call("wamp.subscription.get_events", subscription)
            if len(events) == 3 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert [e["args"] for e in events] == [[0], [1], [2]]
        assert [e["publication"] for e in events] == [p.id for p in published if p is not None]
        # the recorder is no subscriber in the meta API, on either node
        assert await on_a.call("wamp.subscription.count_subscribers", subscription) == 0
        await on_a.leave()
        await on_b.leave()
    finally:
        assert a.stop() == 0 and b.stop() == 0, f"{a.log()}\n{b.log()}"


async def test_metrics_show_the_cluster(tmp_path: Path, nats_server: NatsServer) -> None:
    """/metrics of a cluster node: its cluster and incarnation, nodes seen, NATS connection, traffic."""
    import urllib.request

    from tests.conftest import free_port

    web_port = free_port()

    def config(ws: int, rs: int, unix: str) -> dict[str, Any]:
        section = {"name": "test", "node": "a", "nats": {"servers": [nats_server.url]}}
        made = router_config(ws, rs, unix, cluster=section)
        made["transports"].append({"type": "web", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": web_port},
                                   "paths": {"/metrics": {"type": "metrics"}}})
        return made

    (tmp_path / "a").mkdir()
    a = launch_router(tmp_path / "a", config, wait_ports=[web_port])
    b = cluster_router(tmp_path / "b", nats_server.url, "b")
    try:
        def scrape() -> dict[str, str]:
            with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/metrics", timeout=5) as response:
                text = response.read().decode()
            return {line.split(" ")[0]: line.split(" ")[1] for line in text.splitlines()
                    if line.startswith("cloverleaf_cluster")}

        deadline = time.monotonic() + 5
        while (metrics := scrape()).get("cloverleaf_cluster_nodes") != "2.0":
            assert time.monotonic() < deadline, metrics
            await asyncio.sleep(0.1)
        assert metrics["cloverleaf_cluster_nats_connected"] == "1.0"
        assert any(key.startswith('cloverleaf_cluster_info{') and 'cluster="test"' in key and 'node="a"' in key
                   and 'incarnation="' in key for key in metrics), metrics
        assert float(metrics["cloverleaf_cluster_messages_sent_total"]) >= 0
        assert metrics["cloverleaf_cluster_fenced_total"] == "0.0"
        b.stop()
        deadline = time.monotonic() + 5
        while (metrics := scrape()).get("cloverleaf_cluster_nodes") != "1.0":
            assert time.monotonic() < deadline, metrics
            await asyncio.sleep(0.1)
        assert metrics["cloverleaf_cluster_nodes_lost_total"] == "1.0"
        assert "node b" in a.log() and "left" in a.log()
    finally:
        assert a.stop() == 0, a.log()
        b.stop()


async def test_no_event_reaches_a_subscriber_before_its_subscribed(two_nodes: tuple[RouterProcess, RouterProcess],
                                                                   autobahn: AutobahnSessions) -> None:
    """A node's first subscriber to a topic gets SUBSCRIBED only once every node knows of it; events
    published meanwhile (here on its own node and on the other, without pause) wait behind that
    SUBSCRIBED: a client knows a subscription ID only from SUBSCRIBED, and Autobahn (Python and JS)
    drops its connection on an EVENT it cannot place."""
    a, b = two_nodes
    subscriber = await autobahn.open(autobahn_transport(b, "websocket", "json"))
    publishers = [await autobahn.open(autobahn_transport(node, "websocket", "json")) for node in (a, b)]
    rounds = 20
    publishing = True

    async def publish(session: Any) -> None:
        while publishing and session.is_attached():
            for n in range(rounds):
                session.publish(f"com.x.race.{n}", n)
            await asyncio.sleep(0.001)

    tasks = [asyncio.get_running_loop().create_task(publish(session)) for session in publishers]
    got: list[int] = []
    try:
        for n in range(rounds):
            subscription = await asyncio.wait_for(subscriber.subscribe(got.append, f"com.x.race.{n}"), 10)
            await until(lambda n=n: _done(got, n))
            await asyncio.wait_for(subscription.unsubscribe(), 10)
            assert subscriber.is_attached()
    finally:
        publishing = False
        await asyncio.gather(*tasks)
