"""A router node of a cluster dies (SIGKILL) or freezes (SIGSTOP): its registrations and
subscriptions leave every node with their meta events (each once, to each subscriber, within 3 s),
its calls in flight end with an ERROR, its sessions leave after their subscriptions and
registrations, and their testaments are published once, cluster-wide. Real `cloverleaf start`
processes on one nats-server, Autobahn|Python as the client."""

from __future__ import annotations

import asyncio
import re
import signal
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions
from tests.cluster.nats import NatsServer
from tests.cluster.test_cluster_pubsub import until
from tests.cluster.test_cluster_rpc import call_when_there
from tests.cluster.test_cluster_sessions import Nodes, ab, nodes, wait_for_interest  # noqa: F401
from tests.conftest import AutobahnSessions, RouterProcess

META = (
    "wamp.session.on_leave",
    "wamp.registration.on_unregister",
    "wamp.registration.on_delete",
    "wamp.subscription.on_unsubscribe",
    "wamp.subscription.on_delete",
)
TESTAMENT = "com.death.testament"
FLUSHED = "com.death.flushed"


class Monitor:
    """Meta events and testaments received by one session on a surviving node, with when."""

    def __init__(self) -> None:
        self.events: list[tuple[str, tuple[Any, ...], float]] = []

    async def subscribe(self, session: Any) -> None:
        loop = asyncio.get_running_loop()
        for topic in (*META, TESTAMENT, FLUSHED, "wamp.session.on_join"):
            await session.subscribe(
                lambda *args, _topic=topic, **kwargs: self.events.append(
                    (_topic, args + ((kwargs,) if kwargs else ()), loop.time())
                ),
                topic,
            )

    # (the interface wait_for_interest expects)
    def about(self, topic: str, session_id: int) -> list[tuple[Any, ...]]:
        found = []
        for name, args, _ in self.events:
            if name == topic and (args[0]["session"] if isinstance(args[0], dict) else args[0]) == session_id:
                found.append(args)
        return found

    def indexes(self, topic: str, session_id: int) -> list[int]:
        return [position for position, (name, args, _) in enumerate(self.events)
                if name == topic and args and args[0] == session_id]  # fmt: skip

    def received(self, topic: str) -> list[tuple[Any, ...]]:
        return [args for name, args, _ in self.events if name == topic]

    def last_time(self) -> float:
        return max(when for name, _, when in self.events if name in (*META, TESTAMENT))


async def _scenario(victim: RouterProcess, survivors: list[RouterProcess], autobahn: AutobahnSessions,
                    freeze: bool) -> None:  # fmt: skip
    loop = asyncio.get_running_loop()
    first = survivors[0]
    watchers = [await autobahn.open(ab(node, "msgpack")) for node in survivors]
    monitors = [Monitor() for _ in survivors]
    for watcher, monitor in zip(watchers, monitors, strict=True):
        await monitor.subscribe(watcher)
        await wait_for_interest(monitor, victim, autobahn)  # type: ignore[arg-type]

    # on a survivor: a callee sharing a registration with the doomed session, a subscriber sharing a topic
    bystander = await autobahn.open(ab(survivors[-1], "cbor"))
    await bystander.register(lambda: "bystander", "com.death.shared", options=RegisterOptions(invoke="roundrobin"))
    shared_events: asyncio.Queue[Any] = asyncio.Queue()
    await bystander.subscribe(lambda x: shared_events.put_nowait(x), "com.death.shared_topic")

    doomed = await autobahn.open(ab(victim, "json"))
    sid = doomed._session_id
    hang: asyncio.Future[Any] = loop.create_future()
    own = await doomed.register(lambda: "doomed", "com.death.own")
    shared = await doomed.register(lambda: "doomed", "com.death.shared", options=RegisterOptions(invoke="roundrobin"))
    slow = await doomed.register(lambda: hang, "com.death.slow")
    own_topic = await doomed.subscribe(lambda *_: None, "com.death.topic")
    shared_topic = await doomed.subscribe(lambda *_: None, "com.death.shared_topic")
    await doomed.call("wamp.session.add_testament", FLUSHED, ["no"], scope="detached")
    await doomed.call("wamp.session.add_testament", TESTAMENT, [sid], {"last": "words"})
    await doomed.call("wamp.session.flush_testaments", scope="detached")
    fenced: asyncio.Future[Any] = loop.create_future()
    doomed.on("leave", lambda _session, details: fenced.done() or fenced.set_result(details))

    caller = await autobahn.open(ab(first, "json"))
    assert await call_when_there(caller, "com.death.own") == "doomed"
    in_flight = asyncio.ensure_future(caller.call("com.death.slow"))
    await asyncio.sleep(0.1)  # the INVOCATION reaches the doomed callee
    assert not in_flight.done()

    killed_at = loop.time()
    if freeze:
        victim.process.send_signal(signal.SIGSTOP)
    else:
        victim.process.kill()
        victim.process.wait()

    with pytest.raises(ApplicationError) as canceled:
        await asyncio.wait_for(in_flight, 3)
    assert canceled.value.error == "wamp.error.canceled"

    async def all_there() -> bool:
        return all(
            monitor.about("wamp.session.on_leave", sid) and monitor.received(TESTAMENT)
            and len(monitor.about("wamp.registration.on_unregister", sid)) == 3
            and len(monitor.about("wamp.subscription.on_unsubscribe", sid)) == 2
            and len(monitor.about("wamp.registration.on_delete", sid)) == 2
            and monitor.about("wamp.subscription.on_delete", sid)
            for monitor in monitors
        )  # fmt: skip

    try:
        await until(all_there, timeout=4)
    except AssertionError:
        raise AssertionError(f"session {sid}: {[m.events for m in monitors]}") from None
    last = max(monitor.last_time() for monitor in monitors)
    print(f"\n{'SIGSTOP' if freeze else 'SIGKILL'}: last meta event {last - killed_at:.3f} s after the kill")
    assert last - killed_at < 3.0

    if freeze:  # thawed, the node fences itself: what its closing sessions publish must not arrive twice
        victim.process.send_signal(signal.SIGCONT)
        details = await asyncio.wait_for(fenced, 5)
        assert details.reason == "cloverleaf.close.node_fenced", details
    await asyncio.sleep(0.5)  # a duplicate would arrive meanwhile

    for monitor in monitors:

        def ids(topic: str, monitor: Monitor = monitor) -> list[int]:
            return sorted(args[1] for args in monitor.about(topic, sid))

        # (in no particular order, as on a single router)
        assert ids("wamp.registration.on_unregister") == sorted([own.id, shared.id, slow.id])
        # the shared registration and topic keep the bystander: no on_delete for them
        assert ids("wamp.registration.on_delete") == sorted([own.id, slow.id])
        assert ids("wamp.subscription.on_unsubscribe") == sorted([own_topic.id, shared_topic.id])
        assert ids("wamp.subscription.on_delete") == [own_topic.id]
        [leave_at] = monitor.indexes("wamp.session.on_leave", sid)
        for topic in META[1:]:  # its subscriptions and registrations end before it leaves
            assert max(monitor.indexes(topic, sid)) < leave_at, monitor.events
        assert monitor.received(TESTAMENT) == [(sid, {"last": "words"})]
        assert monitor.received(FLUSHED) == []

    # nothing else is disturbed
    for watcher in watchers:
        assert await watcher.call("wamp.registration.lookup", "com.death.own") is None
        assert await watcher.call("wamp.subscription.lookup", "com.death.topic") is None
        registration = await watcher.call("wamp.registration.lookup", "com.death.shared")
        assert await watcher.call("wamp.registration.list_callees", registration) == [bystander._session_id]
        with pytest.raises(ApplicationError) as missing:
            await watcher.call("wamp.session.get", sid)
        assert missing.value.error == "wamp.error.no_such_session"
    assert [await caller.call("com.death.shared") for _ in range(3)] == ["bystander"] * 3
    caller.publish("com.death.shared_topic", 7)
    assert await asyncio.wait_for(shared_events.get(), 3) == 7


async def test_killed_node_meta_events_and_testaments(nodes: Nodes, autobahn: AutobahnSessions) -> None:  # noqa: F811
    a, b, c = nodes(3)
    await _scenario(b, [a, c], autobahn, freeze=False)


async def test_frozen_node_meta_events_and_testaments(nodes: Nodes, autobahn: AutobahnSessions) -> None:  # noqa: F811
    a, b = nodes(2)
    try:
        await _scenario(b, [a], autobahn, freeze=True)
    finally:
        if b.process.poll() is None:
            b.process.send_signal(signal.SIGCONT)


async def test_janitor_dying_too_the_next_one_cleans_up(
    nodes: Nodes, autobahn: AutobahnSessions, nats_server: NatsServer  # noqa: F811
) -> None:
    """Two nodes die 0.3 s apart, the second being the janitor of the first (the smallest live
    incarnation): it died before it found the first dead, so the last node does its work: the
    testaments of both dead nodes' sessions are published once, and their KV entries deleted."""
    import nats
    from nats.js.errors import KeyNotFoundError, NoKeysError

    started = nodes(3)
    incarnations = {}
    for node in started:
        found = re.search(r"joined as incarnation ([0-9a-f]+)", node.log())
        assert found, node.log()
        incarnations[found.group(1)] = node
    janitor, first, survivor = (incarnations[key] for key in sorted(incarnations))
    loop = asyncio.get_running_loop()
    monitor = Monitor()
    watcher = await autobahn.open(ab(survivor, "msgpack"))
    await monitor.subscribe(watcher)
    doomed: dict[str, int] = {}
    for name, node in (("first", first), ("janitor", janitor)):
        await wait_for_interest(monitor, node, autobahn)  # type: ignore[arg-type]
        session = await autobahn.open(ab(node, "json"))
        await session.call("wamp.session.add_testament", TESTAMENT, [session._session_id])
        await session.subscribe(lambda *_: None, "com.death.topic")
        doomed[name] = session._session_id

    first.process.kill()
    first.process.wait()
    await asyncio.sleep(0.3)
    janitor.process.kill()
    janitor.process.wait()
    killed_at = loop.time()

    async def both_testaments() -> bool:
        return sorted(args[0] for args in monitor.received(TESTAMENT)) == sorted(doomed.values())

    try:
        await until(both_testaments, timeout=5)
    except AssertionError:
        raise AssertionError(f"testaments: {monitor.received(TESTAMENT)}, sessions {doomed}") from None
    print(f"\nboth testaments {max(t for n, _, t in monitor.events if n == TESTAMENT) - killed_at:.3f} s "
          "after the second kill")  # fmt: skip

    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        dead = {key for key, node in incarnations.items() if node is not survivor}

        async def kv_clean() -> bool:
            for bucket in ("sessions", "subscriptions"):
                kv = await js.key_value(f"cloverleaf-test-{bucket}")
                try:
                    keys = await kv.keys()
                except NoKeysError:
                    continue
                for key in keys:
                    try:
                        entry = await kv.get(key)
                    except KeyNotFoundError:
                        continue  # deleted between the listing and the read
                    if any(incarnation in key or incarnation.encode() in (entry.value or b"") for incarnation in dead):
                        return False
            return True

        await until(kv_clean, timeout=8)
    finally:
        await nc.close()
    await asyncio.sleep(0.5)  # a duplicate would arrive meanwhile
    assert sorted(args[0] for args in monitor.received(TESTAMENT)) == sorted(doomed.values())
