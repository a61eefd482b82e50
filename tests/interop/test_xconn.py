"""xconn (PyPI `xconn`, by xconnio, on the sans-io `wampproto`) as a real peer.

Each run opens three xconn ``AsyncClient`` sessions (A, B, C) in one serializer over one transport and
exercises the features one by one, catching each feature's failure so the matrix shows all of them; an
Autobahn|Python session is the second kind of peer where a check needs one. Its sync API (``Client``) runs
once. Its automatic reconnect lives in the ``xcorn`` app runner (``xconn._client.async_``), run here as the
``xcorn`` command through a TCP relay that cuts the connection.

What the package has (read in the installed xconn 0.5.1 / wampproto 0.4.0): serializers JSON, MsgPack and
CBOR (and Cap'n Proto, an optional extra not installed here); transports WebSocket and RawSocket over TCP
and Unix sockets (``rs://``, ``unix://``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError as AutobahnError
from autobahn.wamp.types import CallResult, PublishOptions, RegisterOptions
from tests.conftest import AutobahnSessions, RouterProcess, autobahn_transport, start_router
from tests.interop.matrix import ClientInfo, InteropResults, expect_runs
from tests.interop.relay import Relay
from wampproto.serializers import CBORSerializer, JSONSerializer, MsgPackSerializer, Serializer
from xconn import AsyncClient, Client, types
from xconn.exception import ApplicationError

CLIENT = ClientInfo("xconn", "PyPI xconn", importlib.metadata.version("xconn"),
                    f"Python {sys.version_info.major}.{sys.version_info.minor}")
SERIALIZERS: dict[str, Callable[[], Serializer]] = {
    "json": JSONSerializer, "msgpack": MsgPackSerializer, "cbor": CBORSerializer}
TRANSPORTS: dict[str, Callable[[RouterProcess], str]] = {
    "WebSocket": lambda r: r.ws_url,
    "RawSocket TCP": lambda r: f"rs://127.0.0.1:{r.rs_port}",
    "RawSocket Unix": lambda r: f"unix://{r.unix_path}",
}
expect_runs(CLIENT.name, SERIALIZERS, TRANSPORTS)

SITE = "xconn 0.5.1"
RECONNECT_RUNNER = (f"the only automatic reconnect is the xcorn app runner's ({SITE}, _client/async_.py), which "
                    "always connects with JSONSerializer (AsyncClient's default; it has no serializer option); "
                    "AsyncClient/Client sessions only call a disconnect callback")
UNSUPPORTED = {
    "progressive_caller": f"AsyncSession.call ({SITE}, async_session.py) resolves its future on the first RESULT "
                          "and pops the request, so a RESULT with progress=true ends the call and the next RESULT "
                          "is a KeyError; there is no progress callback",
    "progressive_callee": f"an invocation handler returns one types.Result, sent as the only YIELD ({SITE}, "
                          "async_session.py); there is no way to send progressive YIELDs",
    "call_cancel": "AsyncSession has no cancel and never sends CANCEL; the HELLO announces no call_canceling "
                   "(wampproto joiner CLIENT_ROLES have empty features) and wampproto's WAMPSession.receive_message "
                   f"raises 'unknown message' for an INTERRUPT ({SITE} on wampproto 0.4.0)",
}
UNSUPPORTED_JSON = {
    "binary_payloads": "wampproto 0.4.0's JSONSerializer is json.dumps/json.loads of the message, without the "
                       "WAMP convention for binary in JSON (\"\\0\" + base64): bytes cannot be sent (TypeError) and "
                       "binary from other peers arrives as that string",
}
ERROR_KWARGS_BUG = (f"client bug: an xconn callee's ApplicationError loses its kwargs: AsyncSession sends "
                    f"ErrorFields(msg.TYPE, request_id, e.message, e.args) without e.kwargs ({SITE}, "
                    "async_session.py); the caller side (args and kwargs of an Autobahn|Python callee's error, "
                    "no_such_procedure) and the callee's error URI and args pass")
BLOB = b"\x00\x01\x02\xfe\xff"
FEATURE_TIMEOUT = 8.0


class Features:
    """Runs each feature's checks, keeping what passed and the error text of what failed."""

    def __init__(self) -> None:
        self.passed: list[str] = []
        self.failures: dict[str, str] = {}
        self.expected: list[str] = []
        self.unsupported: dict[str, str] = {}

    async def run(self, feature: str, checks: Callable[[], Awaitable[str | None]]) -> None:
        """``checks`` returns None when everything passed, or a reason the feature is unsupported."""
        self.expected.append(feature)
        try:
            reason = await asyncio.wait_for(checks(), FEATURE_TIMEOUT)
        except Exception as exc:  # recorded as the feature's failure
            self.failures[feature] = f"{type(exc).__name__}: {exc}"[:500]
            return
        if reason:
            self.expected.remove(feature)
            self.unsupported[feature] = reason
        else:
            self.passed.append(feature)


async def _join(url: str, serializer: str) -> Any:
    return await asyncio.wait_for(AsyncClient(serializer=SERIALIZERS[serializer]()).connect(url, "realm1"), 5)


def _queue() -> tuple[asyncio.Queue[types.Event], Callable[[types.Event], Awaitable[None]]]:
    queue: asyncio.Queue[types.Event] = asyncio.Queue()

    async def handler(event: types.Event) -> None:
        queue.put_nowait(event)

    return queue, handler


async def _until(queue: asyncio.Queue[types.Event], last: str) -> list[str]:
    """The first args of the events in ``queue`` up to and including the one whose first arg is ``last``."""
    tags: list[str] = []
    while not tags or tags[-1] != last:
        tags.append((await asyncio.wait_for(queue.get(), 3)).args[0])
    return tags


async def _raises(call: Awaitable[Any]) -> ApplicationError:
    try:
        result = await call
    except ApplicationError as exc:
        return exc
    raise AssertionError(f"expected an error, got {result!r}")


@pytest.mark.parametrize("transport", list(TRANSPORTS))
@pytest.mark.parametrize("serializer", list(SERIALIZERS))
async def test_xconn_async(router: RouterProcess, autobahn: AutobahnSessions, interop_results: InteropResults,
                           serializer: str, transport: str) -> None:
    url = TRANSPORTS[transport](router)
    P = f"com.xconn.{serializer}.{transport.split()[-1].lower()}"
    py = await autobahn.open(autobahn_transport(router, "websocket", "json"))
    await py.register(lambda details: details.caller, f"{P}.whoami", options=RegisterOptions(details_arg="details"))
    features = Features()
    sessions: dict[str, Any] = {}
    ids: dict[str, int] = {}

    async def connect() -> None:
        sessions.update(zip("ABC", await asyncio.gather(*(_join(url, serializer) for _ in "ABC")), strict=True))
        for label, s in sessions.items():
            # the session ID, as the router disclosed it to an Autobahn|Python callee
            ids[label] = (await s.call(f"{P}.whoami", options=types.CallOptions(disclose_me=True))).args[0]
        assert len(set(ids.values())) == 3 and all(isinstance(i, int) and 0 < i <= 2**53 for i in ids.values()), ids

    await features.run("connect", connect)
    if "connect" not in features.passed:
        interop_results.record(CLIENT, serializer, transport, [], expected=["connect"], failures=features.failures)
        pytest.fail(f"xconn did not connect: {features.failures}\n{router.log()[-3000:]}")
    A, B, C = sessions["A"], sessions["B"], sessions["C"]

    seen: list[tuple[Any, Any, Any]] = []

    async def add(inv: types.Invocation) -> types.Result:
        seen.append((inv.args, inv.kwargs, (inv.details or {}).get("procedure")))
        total = inv.args[0] + inv.args[1]
        return types.Result(args=[total], kwargs={"sum": total, "echo": inv.kwargs})

    registrations: dict[str, Any] = {}

    async def rpc() -> None:
        registrations["add"] = await B.register(f"{P}.add", add)
        assert isinstance(registrations["add"].registration_id, int)
        kw = {"label": "sum", "nested": {"list": [1, "two", None, True, 1.5]}, "unicode": "Grüße ☘ 🍀"}
        result = await A.call(f"{P}.add", [2, 3], kw)
        assert (result.args, result.kwargs) == ([5], {"sum": 5, "echo": kw}), result
        assert seen == [([2, 3], kw, None)], seen
        via_py = await py.call(f"{P}.add", 20, 22, x="y")  # an Autobahn|Python caller, the other way round
        assert (list(via_py.results), via_py.kwresults) == ([42], {"sum": 42, "echo": {"x": "y"}}), via_py

    async def fail(inv: types.Invocation) -> types.Result:
        raise ApplicationError("com.xconn.error.app", "bad", inv.args[0], code=42, why="test")

    def py_fail(n: int) -> None:
        raise AutobahnError("com.py.error.app", "bad", n, code=42, why="test")

    async def call_errors() -> str | None:
        await py.register(py_fail, f"{P}.py_fail")
        exc = await _raises(A.call(f"{P}.py_fail", [7]))
        assert (exc.message, list(exc.args), exc.kwargs) == ("com.py.error.app", ["bad", 7],
                                                             {"code": 42, "why": "test"}), vars(exc)
        exc = await _raises(A.call(f"{P}.nobody", [1]))
        assert exc.message == "wamp.error.no_such_procedure", vars(exc)
        await B.register(f"{P}.fail", fail)
        exc = await _raises(A.call(f"{P}.fail", [7]))
        assert (exc.message, list(exc.args)) == ("com.xconn.error.app", ["bad", 7]), vars(exc)
        with pytest.raises(AutobahnError) as info:
            await py.call(f"{P}.fail", 7)
        assert (info.value.error, list(info.value.args)) == ("com.xconn.error.app", ["bad", 7]), info.value
        if info.value.kwargs != {"code": 42, "why": "test"}:
            assert info.value.kwargs in ({}, None), info.value.kwargs
            return ERROR_KWARGS_BUG
        return None

    events, on_event = _queue()
    subscriptions: dict[str, Any] = {}

    async def pubsub_acknowledged() -> None:
        subscriptions["topic"] = await A.subscribe(f"{P}.topic", on_event)
        py_events: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        await py.subscribe(lambda *a, **kw: py_events.put_nowait((a, kw)), f"{P}.topic")
        kw = {"n": 1, "nested": {"a": [True, None]}, "unicode": "Grüße ☘"}
        assert await B.publish(f"{P}.topic", ["hello", 1], kw, types.PublishOptions(acknowledge=True)) is None
        event = await asyncio.wait_for(events.get(), 3)
        assert (event.args, event.kwargs) == (["hello", 1], kw), event
        assert await asyncio.wait_for(py_events.get(), 3) == (("hello", 1), kw)
        await py.publish(f"{P}.topic", "from python", k=2, options=PublishOptions(acknowledge=True))
        event = await asyncio.wait_for(events.get(), 3)
        assert (event.args, event.kwargs) == (["from python"], {"k": 2}), event

    async def slow(inv: types.Invocation) -> types.Result:
        await asyncio.sleep(inv.args[0] / 1000)
        return types.Result(args=[inv.args[0]])

    async def slow_calls() -> None:
        await B.register(f"{P}.sleep", slow)
        order: list[int] = []

        async def one(delay: int) -> int:
            result = await A.call(f"{P}.sleep", [delay])
            order.append(result.args[0])
            return int(result.args[0])

        assert await asyncio.gather(one(300), one(50), one(150)) == [300, 50, 150]
        assert order == [50, 150, 300], order

    async def call_timeout() -> None:
        started = time.monotonic()
        exc = await _raises(A.call(f"{P}.sleep", [600], options=types.CallOptions(timeout=300)))
        took = time.monotonic() - started
        assert exc.message == "wamp.error.timeout", vars(exc)
        assert 0.25 <= took < 2.5, took
        # the callee announced no call_canceling: no INTERRUPT; its late YIELD is dropped and it stays usable
        await asyncio.sleep(0.4)
        assert (await A.call(f"{P}.add", [2, 2])).args == [4]

    async def pubsub_options() -> None:
        topic = f"{P}.opts"
        queues = {label: _queue() for label in "ABC"}
        subs = [await s.subscribe(topic, queues[label][1]) for label, s in sessions.items()]

        async def pub(tag: str, **options: Any) -> None:
            await A.publish(topic, [tag], None, types.PublishOptions(acknowledge=True, **options))

        await pub("default")  # exclude_me defaults to true
        await pub("me", exclude_me=False)
        await pub("exclude-B", exclude_me=False, exclude=[ids["B"]])
        await pub("eligible-C", exclude_me=False, eligible=[ids["C"]])
        await pub("eligible-AB-exclude-A", exclude_me=False, eligible=[ids["A"], ids["B"]], exclude=[ids["A"]])
        await pub("end", exclude_me=False)
        got = {label: await _until(queues[label][0], "end") for label in "ABC"}
        assert got == {"A": ["me", "exclude-B", "end"], "B": ["default", "me", "eligible-AB-exclude-A", "end"],
                       "C": ["default", "me", "exclude-B", "eligible-C", "end"]}, got
        for sub in subs:
            await sub.unsubscribe()

    async def pattern_subscriptions() -> None:
        (exact, on_exact), (prefix, on_prefix), (wild, on_wild) = _queue(), _queue(), _queue()
        subs = [
            await B.subscribe(f"{P}.pat.a.ev", on_exact),
            await B.subscribe(f"{P}.pat", on_prefix, types.SubscribeOptions(match=types.MatchOptions.PREFIX)),
            await B.subscribe(f"{P}.pat..ev", on_wild, types.SubscribeOptions(match=types.MatchOptions.WILDCARD)),
        ]
        assert len({s.subscription_id for s in subs}) == 3
        # prefix matching is by string prefix ("...pat" matches "...patx.ev"), wildcard by URI component
        topics = [f"{P}.pat.a.ev", f"{P}.pat.b.other", f"{P}.pat.c.ev", f"{P}.patx.ev", f"{P}.pa.x.ev"]
        for topic in topics:
            await A.publish(topic, [topic], None, types.PublishOptions(acknowledge=True))

        async def take(queue: asyncio.Queue[types.Event], n: int) -> list[tuple[Any, Any]]:
            return [((e := await asyncio.wait_for(queue.get(), 3)).args[0], (e.details or {}).get("topic"))
                    for _ in range(n)]

        assert [t for t, _ in await take(exact, 1)] == [topics[0]]
        assert await take(prefix, 4) == [(t, t) for t in topics[:4]]
        assert await take(wild, 2) == [(topics[0], topics[0]), (topics[2], topics[2])]
        await asyncio.sleep(0.1)
        assert exact.empty() and prefix.empty() and wild.empty()
        for sub in subs:
            await sub.unsubscribe()

    async def rpc_options() -> None:
        async def who(inv: types.Invocation) -> types.Result:
            details = inv.details or {}
            return types.Result(args=[details.get("caller"), details.get("procedure")])

        await B.register(f"{P}.who", who)
        assert (await A.call(f"{P}.who", options=types.CallOptions(disclose_me=True))).args == [ids["A"], None]
        assert (await A.call(f"{P}.who")).args == [None, None]
        await B.register(f"{P}.pre", who, types.RegisterOptions(match=types.MatchOptions.PREFIX))
        await B.register(f"{P}..wild", who, types.RegisterOptions(match=types.MatchOptions.WILDCARD))
        assert (await A.call(f"{P}.pre.x.y")).args == [None, f"{P}.pre.x.y"]
        assert (await A.call(f"{P}.some.wild")).args == [None, f"{P}.some.wild"]
        for label in "BC":
            async def name(inv: types.Invocation, label: str = label) -> types.Result:
                return types.Result(args=[label])

            await sessions[label].register(f"{P}.shared", name,
                                           types.RegisterOptions(invoke=types.InvokeOptions.ROUNDROBIN))
        assert [(await A.call(f"{P}.shared")).args[0] for _ in range(4)] == ["B", "C", "B", "C"]

    async def echo(inv: types.Invocation) -> types.Result:
        return types.Result(args=inv.args, kwargs=inv.kwargs)

    async def binary_payloads() -> None:
        await B.register(f"{P}.echo", echo)
        result = await A.call(f"{P}.echo", [BLOB, "text"], {"blob": BLOB, "nested": [BLOB]})
        assert (result.args, result.kwargs) == ([BLOB, "text"], {"blob": BLOB, "nested": [BLOB]}), result
        via_py = await py.call(f"{P}.echo", BLOB, blob=BLOB)  # Autobahn|Python json: "\0"+base64 on its side
        assert (list(via_py.results), via_py.kwresults) == ([BLOB], {"blob": BLOB}), via_py
        queue, handler = _queue()
        sub = await C.subscribe(f"{P}.bin", handler)
        await A.publish(f"{P}.bin", [BLOB], {"blob": BLOB}, types.PublishOptions(acknowledge=True))
        event = await asyncio.wait_for(queue.get(), 3)
        assert (event.args, event.kwargs) == ([BLOB], {"blob": BLOB}), event
        await sub.unsubscribe()

    async def meta_api() -> None:
        count = (await A.call("wamp.session.count")).args[0]
        assert isinstance(count, int) and count >= 4, count
        info = (await A.call("wamp.session.get", [ids["B"]])).args[0]
        assert (info["session"], info["transport"]["serializer"]) == (ids["B"], serializer), info
        assert (await A.call("wamp.registration.lookup", [f"{P}.add"])).args[0] == \
            registrations["add"].registration_id
        joins, on_join = _queue()
        sub = await A.subscribe("wamp.session.on_join", on_join)
        extra = await _join(url, serializer)
        joined = await asyncio.wait_for(joins.get(), 3)
        assert joined.args[0]["session"] not in ids.values(), joined
        await extra.leave()
        await sub.unsubscribe()

    async def unsubscribe_unregister() -> None:
        await subscriptions["topic"].unsubscribe()
        marker, on_marker = _queue()
        sub = await A.subscribe(f"{P}.marker", on_marker)
        await B.publish(f"{P}.topic", ["after unsubscribe"], None, types.PublishOptions(acknowledge=True))
        await B.publish(f"{P}.marker", ["marker"], None, types.PublishOptions(acknowledge=True))
        await asyncio.wait_for(marker.get(), 3)
        assert events.empty(), events.get_nowait()
        await sub.unsubscribe()
        await registrations["add"].unregister()
        exc = await _raises(A.call(f"{P}.add", [1, 2]))
        assert exc.message == "wamp.error.no_such_procedure", vars(exc)

    async def leave() -> None:
        leaves: asyncio.Queue[int] = asyncio.Queue()
        await py.subscribe(lambda session_id, *rest: leaves.put_nowait(session_id), "wamp.session.on_leave")
        for label in "CBA":
            started = time.monotonic()
            await sessions[label].leave()  # waits up to 10 s for the GOODBYE answer, silently: time it
            assert time.monotonic() - started < 2, f"{label}: no GOODBYE answer"
            assert await asyncio.wait_for(leaves.get(), 3) == ids[label]

    await features.run("rpc", rpc)
    await features.run("call_errors", call_errors)
    await features.run("pubsub_acknowledged", pubsub_acknowledged)
    await features.run("slow_calls", slow_calls)
    await features.run("call_timeout", call_timeout)
    await features.run("pubsub_options", pubsub_options)
    await features.run("pattern_subscriptions", pattern_subscriptions)
    await features.run("rpc_options", rpc_options)
    if serializer != "json":
        await features.run("binary_payloads", binary_payloads)
    await features.run("meta_api", meta_api)
    await features.run("unsubscribe_unregister", unsubscribe_unregister)
    await features.run("leave", leave)
    if "leave" not in features.passed:
        for s in sessions.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(s.leave(), 1)

    unsupported = {**UNSUPPORTED, **features.unsupported, **(UNSUPPORTED_JSON if serializer == "json" else {})}
    if serializer != "json":
        # json over WebSocket and RawSocket TCP: test_xconn_reconnect (not over Unix: the relay is TCP)
        unsupported["reconnect"] = RECONNECT_RUNNER
    interop_results.record(CLIENT, serializer, transport, features.passed, expected=features.expected,
                           unsupported=unsupported, failures=features.failures)
    assert not features.failures, f"{features.failures}\nrouter log:\n{router.log()[-3000:]}"


async def test_xconn_sync_api(router: RouterProcess, interop_results: InteropResults) -> None:
    """xconn's blocking API (Client/Session, a reader thread per session), once: json over WebSocket."""
    P = "com.xconn.sync"

    def scenario() -> None:
        a = Client(serializer=JSONSerializer()).connect(router.ws_url, "realm1")
        b = Client(serializer=JSONSerializer()).connect(router.ws_url, "realm1")
        try:
            b.register(f"{P}.add", lambda inv: types.Result(args=[sum(inv.args)], kwargs={"echo": inv.kwargs}))
            result = a.call(f"{P}.add", [1, 2, 3], {"k": "v"})
            assert (result.args, result.kwargs) == ([6], {"echo": {"k": "v"}}), result
            got: list[types.Event] = []
            a.subscribe(f"{P}.topic", got.append)
            b.publish(f"{P}.topic", ["hi"], {"n": 1}, types.PublishOptions(acknowledge=True))
            for _ in range(100):
                if got:
                    break
                time.sleep(0.02)
            assert [(e.args, e.kwargs) for e in got] == [(["hi"], {"n": 1})], got
        finally:
            for session in (a, b):
                started = time.monotonic()
                session.leave()
                assert time.monotonic() - started < 2, "no GOODBYE answer"

    failure = None
    try:
        await asyncio.wait_for(asyncio.to_thread(scenario), 15)
    except Exception as exc:  # recorded, then raised below
        failure = f"{type(exc).__name__}: {exc}"
    features_run = ["connect", "rpc", "pubsub_acknowledged", "leave"]
    interop_results.record(CLIENT, "json", "WebSocket", [] if failure else features_run, expected=features_run,
                           failures=dict.fromkeys(features_run, f"sync API: {failure}"))
    assert failure is None, failure


# -- automatic reconnect: the xcorn app runner ---------------------------------------------------------------

APP = '''
from xconn import App
from xconn.types import Result

app = App()


@app.register("com.xconn.reco.echo")
async def echo(tag: str) -> Result:
    return Result(args=["echo", tag])


@app.subscribe("com.xconn.reco.topic")
async def on_topic(tag: str) -> None:
    await app.session.publish("com.xconn.reco.reply", ["got", tag])
'''


async def _callee_session(session: Any) -> int:
    registration = await session.call("wamp.registration.lookup", "com.xconn.reco.echo")
    assert registration is not None, "com.xconn.reco.echo is not registered"
    callees = await session.call("wamp.registration.list_callees", registration)
    assert len(callees) == 1, callees
    return int(callees[0])


async def _eventually(check: Callable[[], Awaitable[Any]], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("transport", ["WebSocket", "RawSocket TCP"])
async def test_xconn_reconnect(tmp_path: Path, autobahn: AutobahnSessions, interop_results: InteropResults,
                               transport: str) -> None:
    """The xcorn runner (json only) through a relay that cuts the connection: it reconnects (after a random
    1-3 s wait) and registers and subscribes again."""
    router = start_router(tmp_path)
    relay = Relay(router.ws_port if transport == "WebSocket" else router.rs_port)
    await relay.start()
    url = f"ws://127.0.0.1:{relay.port}/ws" if transport == "WebSocket" else f"rs://127.0.0.1:{relay.port}"
    (tmp_path / "reco_app.py").write_text(APP)
    xcorn = Path(sys.executable).parent / "xcorn"
    process = await asyncio.create_subprocess_exec(
        str(xcorn), "reco_app:app", "--url", url, "--realm", "realm1", "--directory", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    failure = None
    try:
        session = await autobahn.open(autobahn_transport(router, "websocket", "json"))
        replies: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        await session.subscribe(lambda *args: replies.put_nowait(args), "com.xconn.reco.reply")

        async def works(tag: str) -> None:
            result = await session.call("com.xconn.reco.echo", tag)
            assert result == ["echo", tag] or (isinstance(result, CallResult) and list(result.results)
                                               == ["echo", tag]), result
            await session.publish("com.xconn.reco.topic", tag, options=PublishOptions(acknowledge=True))
            assert await asyncio.wait_for(replies.get(), 2) == ("got", tag)

        try:
            await _eventually(lambda: works("before"), 8)
            first = await _callee_session(session)
            relay.cut()
            await _eventually(lambda: works("after"), 10)
            second = await _callee_session(session)
            assert second != first, "the same session after the cut"
        except Exception as exc:  # recorded, then raised below
            failure = f"{type(exc).__name__}: {exc}"
    finally:
        process.terminate()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(process.wait(), 5)
        if process.returncode is None:
            process.kill()
            await process.wait()
        output = (await process.stdout.read()).decode(errors="replace") if process.stdout else ""
        await relay.stop()
        router.stop()
    interop_results.record(CLIENT, "json", transport, [] if failure else ["reconnect"], expected=["reconnect"],
                           failures={"reconnect": f"xcorn runner: {failure}"})
    assert failure is None, f"{failure}\nxcorn output:\n{output}\nrouter log:\n{router.log()[-3000:]}"
