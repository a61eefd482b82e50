"""The WAMP meta API end to end: sessions (including kills), registrations, subscriptions, testaments.

Spec text: wamp-proto ``rfc/text/advanced/meta_api_sessions.md``, ``meta_api_registrations.md``,
``meta_api_subscriptions.md`` and ``pubsub_testament.md``.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import SubscribeOptions
from tests.advanced_helpers import EVENT, GOODBYE, RESULT, Peer, collect, drop, leave, left, peer
from tests.conftest import AutobahnSessions, RouterProcess, autobahn_transport

CLUSTER_READY = True  # also run against two router nodes of a cluster (tests/conftest.py)

KINDS = ["websocket", "rawsocket"]
_unique = itertools.count(1)
#: the spec's keys, plus realm and authextra (as Crossbar's wamp.session.get)
SESSION_KEYS = {"session", "realm", "authid", "authrole", "authmethod", "authprovider", "authextra", "transport"}


def uid() -> int:
    return next(_unique)


def ab(router: RouterProcess, kind: str = "websocket", serializer: str = "json") -> dict[str, Any]:
    return autobahn_transport(router, kind, serializer)


async def meta_events(observer: Peer, count: int, about: Any) -> list[tuple[str, list[Any]]]:
    """The next ``count`` meta events (topic, args) received by ``observer`` (subscribed with a prefix
    pattern) that concern ``about``: a session, registration or subscription ID in the arguments."""
    found: list[tuple[str, list[Any]]] = []
    while len(found) < count:
        event = await observer.recv()
        assert event[0] == EVENT and len(event) == 5, event
        args = event[4]
        ids = {arg["id"] if isinstance(arg, dict) and "id" in arg else arg for arg in args}
        if about in ids:
            found.append((event[3]["topic"], args))
    return found


async def goodbye_and_close(victim: Peer, reason: str, message: str | None = None) -> None:
    """The router's GOODBYE arrives with exactly this reason and message; answer it; the router closes."""
    goodbye = await victim.recv()
    assert goodbye == [GOODBYE, {"message": message} if message else {}, reason]
    await victim.send([GOODBYE, {}, "wamp.close.goodbye_and_out"])
    assert await victim.closed(5)


# -- session meta procedures ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_session_count_list_get(router: RouterProcess, kind: str) -> None:
    a = await peer(router, kind)
    b = await peer(router, "websocket" if kind == "rawsocket" else "rawsocket", "msgpack")
    sessions = await a.meta("wamp.session.list")
    assert {a.session_id, b.session_id} <= set(sessions)
    assert await a.meta("wamp.session.count") == len(sessions)
    assert await a.meta("wamp.session.count", ["anonymous"]) == len(sessions)
    assert set(await a.meta("wamp.session.list", ["anonymous", "admin"])) == set(sessions)
    assert await a.meta("wamp.session.count", ["admin"]) == 0
    # another realm's sessions are not visible, nor can they be killed from here
    elsewhere = await peer(router, kind, realm="strict.realm")
    assert elsewhere.session_id not in await a.meta("wamp.session.list")
    assert await a.meta_error("wamp.session.get", elsewhere.session_id) == "wamp.error.no_such_session"
    assert await a.meta_error("wamp.session.kill", elsewhere.session_id) == "wamp.error.no_such_session"
    assert await elsewhere.meta("wamp.session.list") == [elsewhere.session_id]
    await elsewhere.close()
    assert await a.meta("wamp.session.list", ["admin"]) == []

    details = await a.meta("wamp.session.get", b.session_id)
    assert set(details) == SESSION_KEYS
    assert details["session"] == b.session_id
    assert details["authid"] == b.authid and details["authrole"] == "anonymous"
    assert details["authmethod"] == b.welcome[2]["authmethod"] == "anonymous"
    assert details["authprovider"] == b.welcome[2]["authprovider"]
    assert details["realm"] == "realm1" and details["authextra"] == b.welcome[2].get("authextra", {})
    assert isinstance(details["transport"], dict)

    assert await a.meta_error("wamp.session.get", 1) == "wamp.error.no_such_session"
    assert await a.meta_error("wamp.session.get", "x") == "wamp.error.invalid_argument"
    assert await a.meta_error("wamp.session.count", "anonymous") == "wamp.error.invalid_argument"
    assert await a.meta_error("wamp.session.nonsense") == "wamp.error.no_such_procedure"
    await b.close()
    await a.close()


async def test_session_meta_procedures_with_autobahn(router: RouterProcess, autobahn: AutobahnSessions) -> None:
    a = await autobahn.open(ab(router, "rawsocket", "cbor"))
    b = await autobahn.open(ab(router, "websocket", "msgpack"))
    assert {a.session_id, b.session_id} <= set(await a.call("wamp.session.list"))
    details = await a.call("wamp.session.get", b.session_id)
    assert (details["session"], details["authid"], details["authrole"]) == (b.session_id, b.authid, "anonymous")
    with pytest.raises(ApplicationError) as info:
        await a.call("wamp.session.get", 42)
    assert info.value.error == "wamp.error.no_such_session"


@pytest.mark.parametrize("kind", KINDS)
async def test_session_join_and_leave_events(router: RouterProcess, autobahn: AutobahnSessions, kind: str) -> None:
    observer = await autobahn.open(ab(router, kind, "json"))
    joined: asyncio.Queue[Any] = asyncio.Queue()
    gone: asyncio.Queue[Any] = asyncio.Queue()
    await observer.subscribe(lambda details: joined.put_nowait(details), "wamp.session.on_join")
    await observer.subscribe(lambda *args: gone.put_nowait(args), "wamp.session.on_leave")

    for how in ("goodbye", "drop"):
        client = await peer(router, kind, "msgpack")
        details = await asyncio.wait_for(joined.get(), 5)
        while details["session"] != client.session_id:  # a straggler from elsewhere
            details = await asyncio.wait_for(joined.get(), 5)
        assert set(details) == SESSION_KEYS
        assert (details["authid"], details["authrole"], details["authmethod"]) == (client.authid, "anonymous",
                                                                                   "anonymous")
        if how == "goodbye":
            await client.send([GOODBYE, {}, "wamp.close.close_realm"])
            assert await client.recv() == [GOODBYE, {}, "wamp.close.goodbye_and_out"]
        await client.close()
        args = await asyncio.wait_for(gone.get(), 5)
        while args[0] != client.session_id:
            args = await asyncio.wait_for(gone.get(), 5)
        # on_leave: exactly session, authid, authrole
        assert list(args) == [client.session_id, client.authid, "anonymous"], how


# -- killing sessions -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_session_kill(router: RouterProcess, kind: str) -> None:
    killer = await peer(router)
    victim = await peer(router, kind)
    # default reason, no message
    assert await killer.meta("wamp.session.kill", victim.session_id) is None
    await goodbye_and_close(victim, "wamp.close.killed")
    assert await killer.meta_error("wamp.session.get", victim.session_id) == "wamp.error.no_such_session"
    # reason and message from the keyword arguments
    victim = await peer(router, kind, "msgpack")
    assert await killer.meta("wamp.session.kill", victim.session_id, reason="com.example.maintenance",
                             message="back in 5 minutes") is None
    await goodbye_and_close(victim, "com.example.maintenance", "back in 5 minutes")
    # errors: its own session, an unknown one, a malformed reason
    assert await killer.meta_error("wamp.session.kill", killer.session_id) == "wamp.error.no_such_session"
    assert await killer.meta_error("wamp.session.kill", 12345) == "wamp.error.no_such_session"
    survivor = await peer(router, kind)
    assert await killer.meta_error("wamp.session.kill", survivor.session_id,
                                   reason="not a uri") == "wamp.error.invalid_uri"
    assert await killer.meta_error("wamp.session.kill", survivor.session_id, reason="") == "wamp.error.invalid_uri"
    assert await killer.meta("wamp.session.get", survivor.session_id)  # still there
    await survivor.nothing(0.05)
    await survivor.close()
    await killer.close()


async def test_session_kill_by_authid(router: RouterProcess) -> None:
    killer = await peer(router)
    victim = await peer(router, "websocket")
    bystander = await peer(router)
    killed = await killer.meta("wamp.session.kill_by_authid", victim.authid, message="bye")
    assert killed == [victim.session_id]
    await goodbye_and_close(victim, "wamp.close.killed", "bye")
    assert await killer.meta("wamp.session.kill_by_authid", "no-such-authid") == []
    # the caller's own authid: the caller is excluded
    assert await killer.meta("wamp.session.kill_by_authid", killer.authid) == []
    assert await killer.meta_error("wamp.session.kill_by_authid", bystander.authid,
                                   reason="bad reason") == "wamp.error.invalid_uri"
    await bystander.nothing(0.05)
    for client in (killer, bystander):
        await client.close()


async def test_session_kill_by_authrole(fresh_router: RouterProcess) -> None:
    killer = await peer(fresh_router)
    victims = [await peer(fresh_router, kind, serializer)
               for kind, serializer in (("websocket", "json"), ("rawsocket", "msgpack"), ("unix", "cbor"))]
    assert await killer.meta("wamp.session.kill_by_authrole", "admin") == 0
    assert await killer.meta("wamp.session.kill_by_authrole", "anonymous", reason="com.example.purge") == 3
    for victim in victims:
        await goodbye_and_close(victim, "com.example.purge")
    # the caller has that role too, and is spared
    assert await killer.meta("wamp.session.list") == [killer.session_id]
    await killer.close()


async def test_session_kill_all(fresh_router: RouterProcess, autobahn: AutobahnSessions) -> None:
    killer = await peer(fresh_router)
    raw_victims = [await peer(fresh_router, "websocket"), await peer(fresh_router, "rawsocket", "msgpack")]
    autobahn_victim = await autobahn.open(ab(fresh_router, "rawsocket", "json"))
    closed = left(autobahn_victim)
    assert await killer.meta("wamp.session.kill_all", reason="wamp.close.system_shutdown",
                             message="maintenance") == 3
    for victim in raw_victims:
        await goodbye_and_close(victim, "wamp.close.system_shutdown", "maintenance")
    details = await asyncio.wait_for(closed, 5)
    assert (details.reason, details.message) == ("wamp.close.system_shutdown", "maintenance")
    for _ in range(50):
        if await killer.meta("wamp.session.count") == 1:
            break
        await asyncio.sleep(0.02)
    assert await killer.meta("wamp.session.list") == [killer.session_id]
    assert await killer.meta("wamp.session.kill_all") == 0
    await killer.close()


async def test_killed_autobahn_session_sees_reason_and_message(router: RouterProcess,
                                                               autobahn: AutobahnSessions) -> None:
    killer = await autobahn.open(ab(router, "websocket", "json"))
    victim = await autobahn.open(ab(router, "rawsocket", "msgpack"))
    closed = left(victim)
    await killer.call("wamp.session.kill", victim.session_id, message="you are out")
    details = await asyncio.wait_for(closed, 5)
    assert (details.reason, details.message) == ("wamp.close.killed", "you are out")


# -- registration meta API ------------------------------------------------------------------------


def _assert_created(value: str) -> None:
    assert isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None, value


@pytest.mark.parametrize("kind", KINDS)
async def test_registration_meta_events_in_order(router: RouterProcess, kind: str) -> None:
    observer = await peer(router, kind)
    await observer.subscribe("wamp.registration.", match="prefix")
    a = await peer(router, kind)
    b = await peer(router, kind, "msgpack")
    procedure = f"com.meta{uid()}.shared"
    registration = await a.register(procedure, invoke="roundrobin")
    events = await meta_events(observer, 2, registration)
    assert [topic for topic, _ in events] == ["wamp.registration.on_create", "wamp.registration.on_register"]
    (_, (session, details)), (_, register_args) = events
    assert session == a.session_id
    assert set(details) == {"id", "created", "uri", "match", "invoke"}
    assert (details["id"], details["uri"], details["match"], details["invoke"]) == (
        registration, procedure, "exact", "roundrobin")
    _assert_created(details["created"])
    assert register_args == [a.session_id, registration]
    # a second callee on the shared registration: on_register only
    assert await b.register(procedure, invoke="roundrobin") == registration
    assert await meta_events(observer, 1, registration) == [
        ("wamp.registration.on_register", [b.session_id, registration])]
    # one callee leaves the registration: on_unregister only
    await a.unregister(registration)
    assert await meta_events(observer, 1, registration) == [
        ("wamp.registration.on_unregister", [a.session_id, registration])]
    # the last callee's transport drops: on_unregister, then on_delete
    await b.close()
    assert await meta_events(observer, 2, registration) == [
        ("wamp.registration.on_unregister", [b.session_id, registration]),
        ("wamp.registration.on_delete", [b.session_id, registration]),
    ]
    # a pattern registration, created and deleted by UNREGISTER
    pattern = await a.register(f"com.meta{uid()}..x", match="wildcard")
    events = await meta_events(observer, 2, pattern)
    assert events[0][1][1]["match"] == "wildcard" and events[0][1][1]["invoke"] == "single"
    await a.unregister(pattern)
    assert [topic for topic, _ in await meta_events(observer, 2, pattern)] == [
        "wamp.registration.on_unregister", "wamp.registration.on_delete"]
    await a.close()
    await observer.close()


async def test_registration_meta_procedures(router: RouterProcess) -> None:
    callee = await peer(router)
    other = await peer(router, "websocket")
    ns = f"com.meta{uid()}"
    exact = await callee.register(f"{ns}.a.b", invoke="random")
    assert await other.register(f"{ns}.a.b", invoke="random") == exact
    prefix = await callee.register(f"{ns}.a", match="prefix")
    wildcard = await callee.register(f"{ns}..b", match="wildcard")

    lists = await other.meta("wamp.registration.list")
    assert set(lists) == {"exact", "prefix", "wildcard"}
    assert exact in lists["exact"] and prefix in lists["prefix"] and wildcard in lists["wildcard"]

    assert await other.meta("wamp.registration.lookup", f"{ns}.a.b") == exact
    assert await other.meta("wamp.registration.lookup", f"{ns}.a.b", {"match": "exact"}) == exact
    assert await other.meta("wamp.registration.lookup", f"{ns}.a", {"match": "prefix"}) == prefix
    assert await other.meta("wamp.registration.lookup", f"{ns}..b", {"match": "wildcard"}) == wildcard
    assert await other.meta("wamp.registration.lookup", f"{ns}.a") is None  # no exact one
    assert await other.meta("wamp.registration.lookup", f"{ns}.zzz") is None

    assert await other.meta("wamp.registration.match", f"{ns}.a.b") == exact
    assert await other.meta("wamp.registration.match", f"{ns}.a.c") == prefix
    assert await other.meta("wamp.registration.match", f"{ns}x.z.b") is None  # "com.metaNx.z.b": 4 components
    assert await other.meta("wamp.registration.match", f"{ns}.z.b") == wildcard
    assert await other.meta("wamp.registration.match", "com.nothing.here.at.all") is None

    details = await other.meta("wamp.registration.get", exact)
    assert set(details) == {"id", "created", "uri", "match", "invoke"}
    assert (details["id"], details["uri"], details["match"], details["invoke"]) == (exact, f"{ns}.a.b", "exact",
                                                                                    "random")
    _assert_created(details["created"])
    assert (await other.meta("wamp.registration.get", wildcard))["match"] == "wildcard"

    assert sorted(await other.meta("wamp.registration.list_callees", exact)) == sorted(
        [callee.session_id, other.session_id])
    assert await other.meta("wamp.registration.count_callees", exact) == 2
    assert await other.meta("wamp.registration.list_callees", prefix) == [callee.session_id]
    assert await other.meta("wamp.registration.count_callees", prefix) == 1

    for procedure in ("wamp.registration.get", "wamp.registration.list_callees", "wamp.registration.count_callees"):
        assert await other.meta_error(procedure, 1) == "wamp.error.no_such_registration", procedure
    await callee.close()
    await other.close()


async def test_registration_meta_with_autobahn(router: RouterProcess, autobahn: AutobahnSessions) -> None:
    observer = await autobahn.open(ab(router, "rawsocket", "msgpack"))
    callee = await autobahn.open(ab(router, "websocket", "json"))
    events: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()
    await observer.subscribe(lambda *args, details: events.put_nowait((details.topic, args)), "wamp.registration.",
                             options=SubscribeOptions(match="prefix", details=True))
    procedure = f"com.meta{uid()}.proc"
    registration = await callee.register(lambda: None, procedure)
    assert await observer.call("wamp.registration.lookup", procedure) == registration.id
    await registration.unregister()
    got = [await asyncio.wait_for(events.get(), 5) for _ in range(4)]
    assert [topic for topic, _ in got] == ["wamp.registration.on_create", "wamp.registration.on_register",
                                           "wamp.registration.on_unregister", "wamp.registration.on_delete"]
    assert got[0][1][1]["uri"] == procedure
    assert all(args == (callee.session_id, registration.id) for _, args in got[1:])


# -- subscription meta API ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_subscription_meta_events_in_order(router: RouterProcess, kind: str) -> None:
    observer = await peer(router, kind)
    await observer.subscribe("wamp.subscription.on_", match="prefix")
    a = await peer(router, kind)
    b = await peer(router, kind, "cbor")
    topic = f"com.meta{uid()}.topic"
    subscription = await a.subscribe(topic)
    events = await meta_events(observer, 2, subscription)
    assert [name for name, _ in events] == ["wamp.subscription.on_create", "wamp.subscription.on_subscribe"]
    (_, (session, details)), (_, subscribe_args) = events
    assert session == a.session_id
    assert set(details) == {"id", "created", "uri", "match"}
    assert (details["id"], details["uri"], details["match"]) == (subscription, topic, "exact")
    _assert_created(details["created"])
    assert subscribe_args == [a.session_id, subscription]
    assert await b.subscribe(topic) == subscription
    assert await meta_events(observer, 1, subscription) == [
        ("wamp.subscription.on_subscribe", [b.session_id, subscription])]
    assert await a.subscribe(topic) == subscription  # already subscribed: no new event
    await a.unsubscribe(subscription)
    assert await meta_events(observer, 1, subscription) == [
        ("wamp.subscription.on_unsubscribe", [a.session_id, subscription])]
    await b.close()  # transport drop
    assert await meta_events(observer, 2, subscription) == [
        ("wamp.subscription.on_unsubscribe", [b.session_id, subscription]),
        ("wamp.subscription.on_delete", [b.session_id, subscription]),
    ]
    pattern = await a.subscribe(f"com.meta{uid()}", match="prefix")
    events = await meta_events(observer, 2, pattern)
    assert events[0][0] == "wamp.subscription.on_create" and events[0][1][1]["match"] == "prefix"
    await a.unsubscribe(pattern)
    assert [name for name, _ in await meta_events(observer, 2, pattern)] == [
        "wamp.subscription.on_unsubscribe", "wamp.subscription.on_delete"]
    await a.close()
    await observer.close()


async def test_subscription_meta_procedures(router: RouterProcess) -> None:
    a = await peer(router)
    b = await peer(router, "websocket", "msgpack")
    ns = f"com.meta{uid()}"
    exact = await a.subscribe(f"{ns}.x.y")
    assert await b.subscribe(f"{ns}.x.y") == exact
    prefix = await a.subscribe(f"{ns}.x", match="prefix")
    wildcard = await b.subscribe(f"{ns}..y", match="wildcard")

    lists = await a.meta("wamp.subscription.list")
    assert set(lists) == {"exact", "prefix", "wildcard"}
    assert exact in lists["exact"] and prefix in lists["prefix"] and wildcard in lists["wildcard"]

    assert await a.meta("wamp.subscription.lookup", f"{ns}.x.y") == exact
    assert await a.meta("wamp.subscription.lookup", f"{ns}.x", {"match": "prefix"}) == prefix
    assert await a.meta("wamp.subscription.lookup", f"{ns}..y", {"match": "wildcard"}) == wildcard
    assert await a.meta("wamp.subscription.lookup", f"{ns}.x") is None
    assert await a.meta("wamp.subscription.lookup", f"{ns}.x.y", {"match": "prefix"}) is None

    # match: every subscription receiving a publication to the topic, whatever its policy
    assert sorted(await a.meta("wamp.subscription.match", f"{ns}.x.y")) == sorted([exact, prefix, wildcard])
    assert sorted(await a.meta("wamp.subscription.match", f"{ns}.xx")) == [prefix]
    assert await a.meta("wamp.subscription.match", f"{ns}.z.y") == [wildcard]
    assert await a.meta("wamp.subscription.match", "com.nobody.listens") is None

    details = await a.meta("wamp.subscription.get", prefix)
    assert set(details) == {"id", "created", "uri", "match"}
    assert (details["id"], details["uri"], details["match"]) == (prefix, f"{ns}.x", "prefix")
    _assert_created(details["created"])

    assert sorted(await a.meta("wamp.subscription.list_subscribers", exact)) == sorted([a.session_id, b.session_id])
    assert await a.meta("wamp.subscription.count_subscribers", exact) == 2
    assert await a.meta("wamp.subscription.list_subscribers", wildcard) == [b.session_id]
    assert await a.meta("wamp.subscription.count_subscribers", wildcard) == 1
    for procedure in ("wamp.subscription.get", "wamp.subscription.list_subscribers",
                      "wamp.subscription.count_subscribers"):
        assert await a.meta_error(procedure, 1) == "wamp.error.no_such_subscription", procedure
    await b.close()
    # b's transport is gone: its subscriptions follow (wildcard deleted, exact down to one subscriber)
    for _ in range(50):
        if await a.meta("wamp.subscription.count_subscribers", exact) == 1:
            break
        await asyncio.sleep(0.02)
    assert await a.meta("wamp.subscription.list_subscribers", exact) == [a.session_id]
    assert await a.meta_error("wamp.subscription.get", wildcard) == "wamp.error.no_such_subscription"
    await a.close()


# -- testaments -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_testament_published_when_the_transport_drops(router: RouterProcess, autobahn: AutobahnSessions,
                                                            kind: str) -> None:
    observer = await autobahn.open(ab(router, kind, "json"))
    client = await autobahn.open(ab(router, kind, "msgpack"))
    topic = f"com.meta{uid()}.testament"
    received: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    await observer.subscribe(lambda *args, **kwargs: received.put_nowait((args, kwargs)), topic)
    # the spec's example call
    assert await client.call("wamp.session.add_testament", topic, ["Seeya!"], {"my_name": "app1"}) is None
    drop(client)
    assert await asyncio.wait_for(received.get(), 5) == (("Seeya!",), {"my_name": "app1"})


async def test_testament_published_on_goodbye_too(router: RouterProcess, autobahn: AutobahnSessions) -> None:
    observer = await autobahn.open(ab(router, "websocket", "json"))
    client = await autobahn.open(ab(router, "rawsocket", "cbor"))
    topic = f"com.meta{uid()}.testament"
    received: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    await observer.subscribe(lambda *args, details: received.put_nowait((args, details)), topic,
                             options=SubscribeOptions(details=True))
    session_id = client.session_id
    await client.call("wamp.session.add_testament", topic, [session_id])
    await leave(client)
    args, details = await asyncio.wait_for(received.get(), 5)
    assert args == (session_id,)
    assert details.publisher is None and not details.retained


async def test_testament_scopes_order_and_flush(router: RouterProcess) -> None:
    observer = await peer(router)
    ns = f"com.meta{uid()}"
    subscription = await observer.subscribe(ns, match="prefix")
    client = await peer(router, "websocket")
    for topic, scope in ((f"{ns}.d1", "destroyed"), (f"{ns}.a1", "detached"), (f"{ns}.d2", None),
                         (f"{ns}.a2", "detached")):
        kwargs = {"scope": scope} if scope else {}
        assert await client.meta("wamp.session.add_testament", topic, [topic], {"n": 1}, **kwargs) is None
    await client.close()
    # no session resumption: detached-scope testaments first, each scope in the order added
    for topic in (f"{ns}.a1", f"{ns}.a2", f"{ns}.d1", f"{ns}.d2"):
        event = await observer.recv()
        assert event[:2] == [EVENT, subscription] and event[3:] == [{"topic": topic}, [topic], {"n": 1}]
    # flushed testaments are not published
    client = await peer(router)
    await client.meta("wamp.session.add_testament", f"{ns}.flushed", ["x"])
    await client.meta("wamp.session.add_testament", f"{ns}.kept", ["y"], scope="detached")
    await client.meta("wamp.session.flush_testaments")  # default scope: destroyed
    await client.close()
    event = await observer.recv()
    assert event[3:] == [{"topic": f"{ns}.kept"}, ["y"]]
    client = await peer(router)
    await client.meta("wamp.session.add_testament", f"{ns}.flushed", ["x"], scope="detached")
    await client.meta("wamp.session.add_testament", f"{ns}.kept", ["z"])
    await client.meta("wamp.session.flush_testaments", scope="detached")
    await client.close()
    event = await observer.recv()
    assert event[3:] == [{"topic": f"{ns}.kept"}, ["z"]]
    await observer.nothing(0.1)
    await observer.close()


async def test_testament_publish_options(router: RouterProcess) -> None:
    wanted = await peer(router)
    unwanted = await peer(router, "websocket")
    topic = f"com.meta{uid()}.will"
    sub_wanted = await wanted.subscribe(topic)
    await unwanted.subscribe(topic)
    client = await peer(router)
    await client.meta("wamp.session.add_testament", topic, ["only for you"],
                      publish_options={"exclude": [unwanted.session_id]})
    await client.meta("wamp.session.add_testament", topic, ["by authid"],
                      publish_options={"eligible_authid": [wanted.authid]})
    await client.close()
    assert (await wanted.recv())[:2] == [EVENT, sub_wanted]
    assert (await wanted.recv())[:2] == [EVENT, sub_wanted]
    await unwanted.nothing()
    await wanted.close()
    await unwanted.close()


async def test_testament_errors(router: RouterProcess) -> None:
    client = await peer(router)
    assert await client.meta_error("wamp.session.add_testament", "com.x", [], {},
                                   scope="forever") == "wamp.error.invalid_argument"
    assert await client.meta_error("wamp.session.add_testament", "not a topic") == "wamp.error.invalid_uri"
    assert await client.meta_error("wamp.session.add_testament", "com.x", "args") == "wamp.error.invalid_argument"
    assert await client.meta_error("wamp.session.add_testament") == "wamp.error.invalid_argument"
    assert await client.meta_error("wamp.session.flush_testaments", scope="x") == "wamp.error.invalid_argument"
    await client.close()


async def test_add_testament_returns_no_value(router: RouterProcess) -> None:
    client = await peer(router)
    request = await client.send_call("wamp.session.add_testament", [f"com.meta{uid()}.t", ["x"]])
    assert await client.recv() == [RESULT, request, {}]
    await client.close()


async def test_flush_testaments_returns_no_value(router: RouterProcess) -> None:
    """pubsub_testament.md: "wamp.session.flush_testaments does not return a value"."""
    client = await peer(router)
    await client.meta("wamp.session.add_testament", f"com.meta{uid()}.t", ["x"])
    request = await client.send_call("wamp.session.flush_testaments")
    answer = await client.recv()
    await client.close()
    assert answer == [RESULT, request, {}]


async def test_testament_with_autobahn_flush(router: RouterProcess, autobahn: AutobahnSessions) -> None:
    observer = await autobahn.open(ab(router, "rawsocket", "json"))
    client = await autobahn.open(ab(router, "websocket", "json"))
    ns = f"com.meta{uid()}"
    received: asyncio.Queue[str] = asyncio.Queue()
    await observer.subscribe(lambda label: received.put_nowait(label), ns,
                             options=SubscribeOptions(match="prefix"))
    await client.call("wamp.session.add_testament", f"{ns}.gone", ["flushed"])
    await client.call("wamp.session.add_testament", f"{ns}.gone", ["detached"], scope="detached")
    await client.call("wamp.session.flush_testaments", scope="destroyed")
    drop(client)
    assert await collect(received, "detached") == ["detached"]


async def test_no_meta_events_about_meta_subscriptions(router: RouterProcess, autobahn: AutobahnSessions) -> None:
    # A monitor's own subscriptions to the meta topics (and another monitor's) are the router's
    # bookkeeping, not the application's: no meta events about "wamp." URIs (as Crossbar)
    monitor = await autobahn.open(ab(router, "websocket", "json"))
    events: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()
    for name in ("on_create", "on_subscribe", "on_unsubscribe", "on_delete"):
        await monitor.subscribe(lambda *args, details: events.put_nowait((details.topic, args)),
                                f"wamp.subscription.{name}", options=SubscribeOptions(details=True))  # fmt: skip
    other_monitor = await autobahn.open(ab(router, "rawsocket", "msgpack"))
    prefix = SubscribeOptions(match="prefix")
    meta = await other_monitor.subscribe(lambda *args: None, "wamp.subscription.", options=prefix)
    await meta.unsubscribe()
    app = await autobahn.open(ab(router, "rawsocket", "cbor"))
    topic = f"com.meta{uid()}.app"
    subscription = await app.subscribe(lambda: None, topic)
    await subscription.unsubscribe()
    got = [await asyncio.wait_for(events.get(), 5) for _ in range(4)]
    assert [name for name, _ in got] == ["wamp.subscription.on_create", "wamp.subscription.on_subscribe",
                                         "wamp.subscription.on_unsubscribe", "wamp.subscription.on_delete"]
    assert got[0][1][1]["uri"] == topic
    assert all(args == (app.session_id, subscription.id) for _, args in got[1:])
    await asyncio.sleep(0.2)
    assert events.empty()


@pytest.mark.parametrize("kind", KINDS)
async def test_lookups_without_a_match_answer_null(router: RouterProcess, kind: str) -> None:
    # RESULT [null], as Crossbar answers (clients read args[0]), not a RESULT without arguments
    client = await peer(router, kind)
    missing = f"com.meta{uid()}.missing"
    for procedure, args in (("wamp.registration.lookup", [missing]), ("wamp.registration.match", [missing]),
                            ("wamp.subscription.lookup", [missing, {"match": "prefix"}]),
                            ("wamp.subscription.match", [missing])):  # fmt: skip
        answer = await client.call(procedure, *args)
        assert answer[0] == RESULT and answer[3:] == [[None]], (procedure, answer)
    await client.close()
