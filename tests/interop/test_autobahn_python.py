"""Autobahn|Python (PyPI `autobahn`, asyncio) as a peer: every feature it has, on every transport and
serializer, recorded in the interop matrix (docs/interop.md).

Each feature is one check run in turn against a fresh pair of sessions; a failing check is recorded
with its error and the test then fails, so the table and the test report agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import itertools
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import (
    CallDetails,
    CallOptions,
    CallResult,
    EventDetails,
    PublishOptions,
    RegisterOptions,
    SubscribeOptions,
)
from tests.conftest import AutobahnSessions, RouterProcess, autobahn_transport, start_router
from tests.interop.matrix import ClientInfo, InteropResults, expect_runs
from tests.interop.relay import Relay

CLIENT = ClientInfo("Autobahn|Python", "PyPI autobahn[asyncio]", importlib.metadata.version("autobahn"),
                    f"Python {sys.version_info.major}.{sys.version_info.minor}")
KINDS = {"websocket": "WebSocket", "rawsocket": "RawSocket TCP", "unix": "RawSocket Unix"}
SERIALIZERS = ["json", "msgpack", "cbor"]
expect_runs(CLIENT.name, SERIALIZERS, KINDS.values())

_ids = itertools.count(1)


def uri(name: str) -> str:
    """A URI of its own for each check (the router is shared by the whole module)."""
    return f"com.interop.py{next(_ids)}.{name}"


class Pair:
    """Two sessions of the run's transport and serializer, plus a way to open more."""

    def __init__(self, sessions: AutobahnSessions, transport: dict[str, Any]) -> None:
        self.sessions, self.transport = sessions, transport
        self.a: Any = None
        self.b: Any = None

    async def open(self) -> Any:
        return await self.sessions.open(self.transport)


async def check_connect(p: Pair) -> None:
    assert p.a.is_attached() and p.b.is_attached()
    assert p.a._session_id != p.b._session_id
    assert all(isinstance(s._session_id, int) and 0 < s._session_id <= 2**53 for s in (p.a, p.b))


async def check_rpc(p: Pair) -> None:
    procedure = uri("add2")
    seen: list[Any] = []

    def add2(x: int, y: int, **kwargs: Any) -> Any:
        seen.append(((x, y), kwargs))
        return CallResult(x + y, sum=x + y, echo=kwargs) if kwargs else x + y

    await p.a.register(add2, procedure)
    kwargs = {"label": "sum", "nested": {"list": [1, "two", None, True, 1.5]}, "unicode": "Grüße ☘ 🍀"}
    result = await p.b.call(procedure, 2, 3, **kwargs)
    assert list(result.results) == [5] and result.kwresults == {"sum": 5, "echo": kwargs}, result
    assert seen[0] == ((2, 3), kwargs)
    assert await p.b.call(procedure, 40, 2) == 42  # positional only: a plain value back


async def check_call_errors(p: Pair) -> None:
    procedure = uri("fail")

    def fail(x: int) -> None:
        raise ApplicationError("com.example.error.too_big", x, "is too big", limit=10)

    await p.a.register(fail, procedure)
    with pytest.raises(ApplicationError) as info:
        await p.b.call(procedure, 11)
    assert (info.value.error, list(info.value.args), info.value.kwargs) == \
        ("com.example.error.too_big", [11, "is too big"], {"limit": 10})
    with pytest.raises(ApplicationError) as info:
        await p.b.call(uri("nobody.registered.this"), 1)
    assert info.value.error == "wamp.error.no_such_procedure"


async def check_pubsub_acknowledged(p: Pair) -> None:
    topic = uri("topic")
    events: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

    def on_event(*args: Any, details: EventDetails, **kwargs: Any) -> None:
        events.put_nowait((args, kwargs, details))

    await p.a.subscribe(on_event, topic, options=SubscribeOptions(details_arg="details"))
    publication = await p.b.publish(topic, "hello", 42, 1.5, unicode="Grüße ☘",
                                    options=PublishOptions(acknowledge=True))
    args, kwargs, details = await asyncio.wait_for(events.get(), 5)
    assert (args, kwargs) == (("hello", 42, 1.5), {"unicode": "Grüße ☘"})
    assert details.publication == publication.id and 0 < publication.id <= 2**53


async def check_progressive(p: Pair) -> None:
    procedure = uri("count")

    async def count(n: int, details: CallDetails) -> str:
        assert details.progress is not None, "the router did not forward receive_progress"
        for i in range(n):
            details.progress(i, step=i)
            await asyncio.sleep(0)
        return "done"

    await p.a.register(count, procedure, options=RegisterOptions(details_arg="details"))
    progress: list[Any] = []
    result = await p.b.call(procedure, 3, options=CallOptions(
        on_progress=lambda *a, **kw: progress.append((a, kw))))
    assert result == "done"
    assert progress == [((i,), {"step": i}) for i in range(3)]


async def check_unsubscribe_unregister(p: Pair) -> None:
    topic, procedure = uri("topic"), uri("proc")
    events: asyncio.Queue[Any] = asyncio.Queue()
    subscription = await p.a.subscribe(events.put_nowait, topic)
    registration = await p.a.register(lambda: "here", procedure)
    await subscription.unsubscribe()
    await registration.unregister()
    assert not subscription.active and not registration.active
    await p.b.publish(topic, "unheard", options=PublishOptions(acknowledge=True))
    with pytest.raises(ApplicationError) as info:
        await p.b.call(procedure)
    assert info.value.error == "wamp.error.no_such_procedure"
    await asyncio.sleep(0.05)
    assert events.empty()


async def check_pubsub_options(p: Pair) -> None:
    topic = uri("topic")
    third = await p.open()
    received: dict[str, list[Any]] = {"a": [], "b": [], "third": []}
    for name, session in (("a", p.a), ("b", p.b), ("third", third)):
        await session.subscribe(lambda *args, _n=name: received[_n].append(args), topic)
    a_id, third_id = p.a._session_id, third._session_id
    publish = p.b.publish
    await publish(topic, "default", options=PublishOptions(acknowledge=True))
    await publish(topic, "me too", options=PublishOptions(acknowledge=True, exclude_me=False))
    await publish(topic, "not a", options=PublishOptions(acknowledge=True, exclude=[a_id]))
    await publish(topic, "only third", options=PublishOptions(acknowledge=True, eligible=[third_id]))
    await publish(topic, "authrole", options=PublishOptions(acknowledge=True, exclude_authrole=["anonymous"]))
    # a marker every subscriber gets last: ordering per publisher/subscriber pair is guaranteed
    await publish(topic, "end", options=PublishOptions(acknowledge=True, exclude_me=False))
    for name in received:
        for _ in range(100):
            if received[name] and received[name][-1] == ("end",):
                break
            await asyncio.sleep(0.02)
    assert received["a"] == [("default",), ("me too",), ("end",)], received
    assert received["b"] == [("me too",), ("end",)], received
    assert received["third"] == [("default",), ("me too",), ("not a",), ("only third",), ("end",)], received


async def check_pattern_subscriptions(p: Pair) -> None:
    base = uri("sensor")
    events: asyncio.Queue[tuple[str, Any, Any]] = asyncio.Queue()

    def handler(kind: str) -> Callable[..., None]:
        return lambda *args, details: events.put_nowait((kind, args, details.topic))

    await p.a.subscribe(handler("exact"), f"{base}.room1.temp", options=SubscribeOptions(details_arg="details"))
    await p.a.subscribe(handler("prefix"), f"{base}.room1",
                        options=SubscribeOptions(match="prefix", details_arg="details"))
    await p.a.subscribe(handler("wildcard"), f"{base}..temp",
                        options=SubscribeOptions(match="wildcard", details_arg="details"))
    await p.b.publish(f"{base}.room1.temp", 21.5, options=PublishOptions(acknowledge=True))
    got = sorted([await asyncio.wait_for(events.get(), 5) for _ in range(3)])
    concrete = f"{base}.room1.temp"
    # (Autobahn fills details.topic in itself for an exact subscription)
    assert got == [("exact", (21.5,), concrete), ("prefix", (21.5,), concrete), ("wildcard", (21.5,), concrete)]
    await p.b.publish(f"{base}.room2.temp", 19.0, options=PublishOptions(acknowledge=True))
    assert await asyncio.wait_for(events.get(), 5) == ("wildcard", (19.0,), f"{base}.room2.temp")
    await asyncio.sleep(0.05)
    assert events.empty()


async def check_rpc_options(p: Pair) -> None:
    # (Autobahn|Python 26 has no option to ask for caller disclosure: CallOptions lost disclose_me)
    # pattern registrations: exact beats prefix beats wildcard; the concrete URI is in the details
    base = uri("api")

    def named(kind: str) -> Callable[..., Any]:
        return lambda details: [kind, details.procedure]

    for kind, target in (("exact", f"{base}.v1.echo"), ("prefix", f"{base}.v1"), ("wildcard", f"{base}..echo")):
        await p.a.register(named(kind), target,
                           options=RegisterOptions(match=None if kind == "exact" else kind, details_arg="details"))
    assert await p.b.call(f"{base}.v1.echo") == ["exact", f"{base}.v1.echo"]  # Autobahn fills it in itself
    assert await p.b.call(f"{base}.v1.other") == ["prefix", f"{base}.v1.other"]
    assert await p.b.call(f"{base}.v2.echo") == ["wildcard", f"{base}.v2.echo"]
    # a shared registration: round robin over two callees
    shared = uri("shared")
    await p.a.register(lambda: "a", shared, options=RegisterOptions(invoke="roundrobin"))
    await p.b.register(lambda: "b", shared, options=RegisterOptions(invoke="roundrobin"))
    assert [await p.b.call(shared) for _ in range(4)] == ["a", "b", "a", "b"]
    with pytest.raises(ApplicationError) as info:
        await p.b.register(lambda: "c", shared, options=RegisterOptions(invoke="random"))
    assert info.value.error == "wamp.error.procedure_exists_with_different_invocation_policy"


async def _sleepy_callee(p: Pair) -> tuple[str, asyncio.Event]:
    procedure = uri("sleepy")
    interrupted = asyncio.Event()

    async def sleepy(seconds: float) -> str:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            interrupted.set()
            raise
        return "awake"

    await p.a.register(sleepy, procedure)
    return procedure, interrupted


async def check_call_cancel(p: Pair) -> None:
    procedure, interrupted = await _sleepy_callee(p)
    call = asyncio.ensure_future(p.b.call(procedure, 30))
    await asyncio.sleep(0.1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.wait_for(interrupted.wait(), 5)  # INTERRUPT reached the callee and stopped its work
    assert await p.b.call(procedure, 0.01) == "awake"


async def check_call_timeout(p: Pair) -> None:
    procedure, interrupted = await _sleepy_callee(p)
    with pytest.raises(ApplicationError) as info:
        await p.b.call(procedure, 30, options=CallOptions(timeout=200))  # milliseconds
    assert info.value.error == "wamp.error.timeout"
    await asyncio.wait_for(interrupted.wait(), 5)


async def check_slow_calls(p: Pair) -> None:
    procedure = uri("delayed")
    finished: list[int] = []

    async def delayed(n: int, seconds: float) -> int:
        await asyncio.sleep(seconds)
        finished.append(n)
        return n * 10

    await p.a.register(delayed, procedure)
    results = await asyncio.gather(*(p.b.call(procedure, n, delay) for n, delay in ((1, 0.3), (2, 0.1), (3, 0.2))))
    assert results == [10, 20, 30]
    assert finished == [2, 3, 1]  # answered out of order, each result still reached its own call


async def check_binary_payloads(p: Pair) -> None:
    procedure, topic = uri("bytes"), uri("bytes.topic")
    blob = bytes(range(256))

    def echo(*args: Any, **kwargs: Any) -> CallResult:
        return CallResult(*args, **kwargs)

    await p.a.register(echo, procedure)
    result = await p.b.call(procedure, blob, b"", [b"\x00"], blob=blob, nested={"b": b"\xff\x00"})
    assert list(result.results) == [blob, b"", [b"\x00"]]
    assert result.kwresults == {"blob": blob, "nested": {"b": b"\xff\x00"}}
    events: asyncio.Queue[Any] = asyncio.Queue()
    await p.a.subscribe(lambda *a, **kw: events.put_nowait((a, kw)), topic)
    await p.b.publish(topic, blob, blob=blob, options=PublishOptions(acknowledge=True))
    assert await asyncio.wait_for(events.get(), 5) == ((blob,), {"blob": blob})


async def check_meta_api(p: Pair) -> None:
    joins: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await p.a.subscribe(lambda info: joins.put_nowait(info), "wamp.session.on_join")
    assert await p.b.call("wamp.session.count") >= 2
    details = await p.b.call("wamp.session.get", p.a._session_id)
    assert details["session"] == p.a._session_id and details["realm"] == "realm1"
    assert details["authrole"] == "anonymous"
    newcomer = await p.open()
    info = await asyncio.wait_for(joins.get(), 5)
    while info["session"] != newcomer._session_id:
        info = await asyncio.wait_for(joins.get(), 5)
    assert p.a._session_id in await p.b.call("wamp.session.list")
    procedure = uri("looked.up")
    registration = await p.a.register(lambda: None, procedure)
    assert await p.b.call("wamp.registration.lookup", procedure) == registration.id
    assert await p.b.call("wamp.registration.lookup", uri("nothing.here")) is None  # [null], as Crossbar
    assert await p.b.call("wamp.registration.list_callees", registration.id) == [p.a._session_id]


async def check_leave(p: Pair) -> None:
    for session in (p.a, p.b):
        await session.leave()
    for _ in range(100):
        if not p.a.is_attached() and not p.b.is_attached():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("sessions still attached after leave()")


CHECKS: dict[str, Callable[[Pair], Awaitable[None]]] = {
    "connect": check_connect,
    "rpc": check_rpc,
    "call_errors": check_call_errors,
    "pubsub_acknowledged": check_pubsub_acknowledged,
    "progressive_caller": check_progressive,  # one check shows both sides (an Autobahn caller and callee)
    "progressive_callee": check_progressive,
    "unsubscribe_unregister": check_unsubscribe_unregister,
    "pubsub_options": check_pubsub_options,
    "pattern_subscriptions": check_pattern_subscriptions,
    "rpc_options": check_rpc_options,
    "call_cancel": check_call_cancel,
    "call_timeout": check_call_timeout,
    "slow_calls": check_slow_calls,
    "binary_payloads": check_binary_payloads,
    "meta_api": check_meta_api,
    "leave": check_leave,
}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("serializer", SERIALIZERS)
async def test_autobahn_python_features(router: RouterProcess, autobahn: AutobahnSessions,
                                        interop_results: InteropResults, kind: str, serializer: str) -> None:
    pair = Pair(autobahn, autobahn_transport(router, kind, serializer))
    passed: set[str] = set()
    failures: dict[str, str] = {}
    done: dict[Callable[[Pair], Awaitable[None]], str | None] = {}
    for feature, check in CHECKS.items():
        if check not in done:
            try:
                pair.a, pair.b = await pair.open(), await pair.open()
                await asyncio.wait_for(check(pair), 10)
                done[check] = None
            except Exception as exc:  # recorded, then the test fails below
                done[check] = f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
        if done[check] is None:
            passed.add(feature)
        else:
            failures[feature] = str(done[check])
    interop_results.record(CLIENT, serializer, KINDS[kind], passed, expected=CHECKS, failures=failures)
    assert not failures, failures


@pytest.mark.parametrize("kind", ["websocket", "rawsocket"])
async def test_autobahn_python_reconnects(tmp_path: Path, autobahn: AutobahnSessions,
                                          interop_results: InteropResults, kind: str) -> None:
    """A Component with retries: when its connection is cut it reconnects and its on_join renews the
    registration; a caller on the router sees the procedure come back."""
    from autobahn.asyncio.component import Component

    router = start_router(tmp_path)
    relay = Relay(router.ws_port if kind == "websocket" else router.rs_port)
    await relay.start()
    transport = autobahn_transport(router, kind, "json")
    if kind == "websocket":
        transport["url"] = f"ws://127.0.0.1:{relay.port}/ws"
    else:
        transport["url"] = f"rs://127.0.0.1:{relay.port}"
        transport["endpoint"] = {"type": "tcp", "host": "127.0.0.1", "port": relay.port}
    component = Component(transports=[{**transport, "max_retries": 10, "initial_retry_delay": 0.1,
                                       "max_retry_delay": 0.2, "retry_delay_jitter": 0}], realm="realm1")
    joins: asyncio.Queue[int] = asyncio.Queue()
    procedure = uri("comeback")

    @component.on_join  # type: ignore[misc]
    async def _joined(session: Any, details: Any) -> None:
        await session.register(lambda: details.session, procedure)
        joins.put_nowait(details.session)

    done = component.start(asyncio.get_running_loop())
    failure = ""
    try:
        caller = await autobahn.open(autobahn_transport(router, kind, "json"))
        first = await asyncio.wait_for(joins.get(), 10)
        assert await caller.call(procedure) == first
        relay.cut()
        second = await asyncio.wait_for(joins.get(), 10)
        assert second != first
        assert await caller.call(procedure) == second
    except Exception as exc:
        failure = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        interop_results.record(CLIENT, "json", KINDS[kind], [] if failure else ["reconnect"], expected=["reconnect"],
                               failures={"reconnect": failure})
        with contextlib.suppress(Exception):
            await asyncio.wait_for(component.stop(), 5)
        if not done.done():
            done.cancel()
        await relay.stop()
        assert router.stop() == 0
