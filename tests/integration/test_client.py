"""The Cloverleaf asyncio client against the real router, over real sockets.

Every test opens its own client sessions on the module's router subprocess and leaves them at the
end. An autouse fixture fails a test when the event loop reported an unhandled error while it ran
(for example "Future exception was never retrieved"), so sloppy error paths in the client show up.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from tests.conftest import RouterProcess
from tests.rawclient import RawClient

from cloverleaf.client import (
    NO_RECONNECT,
    ApplicationError,
    CallDetails,
    CallOptions,
    EventDetails,
    NotConnected,
    Publication,
    PublishOptions,
    RegisterOptions,
    Result,
    Session,
    SessionClosed,
    SubscribeOptions,
    connect,
)

TRANSPORTS = ("ws", "rs", "unix")
SERIALIZERS = ("json", "msgpack", "cbor")

# a payload that exercises every type the three serializers share, bytes included (JSON: "\0" + base64)
ARGS: list[Any] = [1, -2, 3.5, "två ✓", b"\x00\x01\xfe\xff", None, True, False, [1, [2, "x"]], {"k": b"v", "n": None}]
KWARGS: dict[str, Any] = {"blob": b"\xde\xad\xbe\xef", "text": "", "big": 2**40, "nested": {"l": [b"", 0]}}


def uri(name: str) -> str:
    """A fresh URI per use: tests share one router, so names never collide across tests."""
    return f"com.test.{name}.{uuid.uuid4().hex[:10]}"


def url_for(router: RouterProcess, transport: str) -> str:
    return {"ws": router.ws_url, "rs": router.rs_url, "unix": f"unix://{router.unix_path}"}[transport]


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def within(awaitable: Awaitable[Any], timeout: float = 5.0) -> Any:
    return await asyncio.wait_for(awaitable, timeout)


class Sessions:
    """Opens client sessions on the module's router and leaves them all at the end of a test."""

    def __init__(self, router: RouterProcess) -> None:
        self.router = router
        self.opened: list[Session] = []

    async def open(self, transport: str = "ws", serializer: str = "json", **kw: Any) -> Session:
        kw.setdefault("reconnect", NO_RECONNECT)
        kw.setdefault("connect_timeout", 5.0)
        session = await within(connect(url_for(self.router, transport), "realm1", serializer=serializer, **kw), 10)
        self.opened.append(session)
        return session

    async def close(self) -> None:
        for session in self.opened:
            with contextlib.suppress(Exception):
                await within(session.leave(timeout=2), 5)


@pytest.fixture
async def sessions(router: RouterProcess) -> AsyncIterator[Sessions]:
    opened = Sessions(router)
    yield opened
    await opened.close()


@pytest.fixture
async def tasks() -> AsyncIterator[Callable[[Any], asyncio.Task[Any]]]:
    """create_task() whose tasks are always awaited at the end: a test failing half-way must not leave
    a "Task exception was never retrieved" to be logged by a finalizer at a random later moment."""
    created: list[asyncio.Task[Any]] = []

    def create(coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        created.append(task)
        return task

    yield create
    for task in created:
        task.cancel()
    await asyncio.wait_for(asyncio.gather(*created, return_exceptions=True), 5)


@pytest.fixture(autouse=True)
async def no_unhandled_loop_errors(caplog: pytest.LogCaptureFixture) -> AsyncIterator[list[dict[str, Any]]]:
    """Fail the test if the loop reported an unhandled error or the client saw a protocol violation."""
    caplog.set_level(logging.INFO, logger="cloverleaf.client")
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    yield reported
    await asyncio.sleep(0.05)
    gc.collect()
    loop.set_exception_handler(previous)
    assert not reported, f"unhandled errors on the event loop: {[c.get('message') for c in reported]} {reported}"
    violations = [r.getMessage() for r in caplog.records if "protocol violation" in r.getMessage()]
    assert not violations, violations


class Probe:
    """An async procedure that signals when it starts and records how it ended."""

    def __init__(self, run_for: float = 30.0) -> None:
        self.run_for = run_for
        self.started = asyncio.Event()
        self.outcome: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()

    async def __call__(self, *args: Any) -> str:
        self.started.set()
        try:
            await asyncio.sleep(self.run_for)
        except asyncio.CancelledError as exc:
            if not self.outcome.done():
                self.outcome.set_result(("cancelled", exc.args))
            raise
        if not self.outcome.done():
            self.outcome.set_result(("finished", None))
        return "finished"


# -- the core round trip on every transport and serializer ------------------------------------------


@pytest.mark.parametrize("serializer", SERIALIZERS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_round_trip(sessions: Sessions, transport: str, serializer: str) -> None:
    callee = await sessions.open(transport, serializer)
    caller = await sessions.open(transport, serializer)
    assert callee.is_connected and callee.session_id > 0 and caller.session_id not in (0, callee.session_id)
    assert callee.details["authrole"] and {"broker", "dealer"} <= set(callee.details["roles"])

    procedure = uri("echo")
    registration = await callee.register(procedure, lambda *args, **kwargs: Result(list(args), kwargs))
    assert registration.id > 0 and registration.active

    result = await within(caller.call(procedure, *ARGS, **KWARGS))
    assert isinstance(result, Result)
    assert result.args == ARGS and result.kwargs == KWARGS
    assert await within(caller.call(procedure, b"\x00only bytes")) == b"\x00only bytes"
    assert await within(caller.call(procedure)) is None

    topic = uri("topic")
    received: asyncio.Queue[tuple[tuple[Any, ...], dict[str, Any]]] = asyncio.Queue()
    subscription = await callee.subscribe(topic, lambda *args, **kwargs: received.put_nowait((args, kwargs)))
    assert subscription.id > 0
    publication = await within(caller.publish(topic, *ARGS, options=PublishOptions(acknowledge=True), **KWARGS))
    assert isinstance(publication, Publication) and publication.id > 0
    args, kwargs = await within(received.get())
    assert list(args) == ARGS and kwargs == KWARGS


async def test_websocket_library_logs_nothing_at_info(sessions: Sessions, caplog: pytest.LogCaptureFixture) -> None:
    """A client script with logging at INFO shows the client's own lines, not picows' "WS
    connection established" for every connection (that is DEBUG)."""
    caplog.set_level(logging.INFO)
    await sessions.open("ws", "json")
    assert "joined realm" in caplog.text
    assert not [r for r in caplog.records if r.name.startswith(("picows", "cloverleaf.client.picows"))]
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="cloverleaf.client.picows")
    await sessions.open("ws", "json")
    assert [r for r in caplog.records if "WS connection established" in r.getMessage() and r.levelno == logging.DEBUG]


async def test_payloads_cross_serializers(sessions: Sessions) -> None:
    """The router translates between serializers: bytes and all values survive json <-> msgpack <-> cbor."""
    callee = await sessions.open("ws", "json")
    procedure = uri("echo")
    await callee.register(procedure, lambda *args, **kwargs: Result(list(args), kwargs))
    for transport, serializer in (("rs", "msgpack"), ("unix", "cbor"), ("ws", "cbor")):
        caller = await sessions.open(transport, serializer)
        result = await within(caller.call_result(procedure, *ARGS, **KWARGS))
        assert (result.args, result.kwargs) == (ARGS, KWARGS), (transport, serializer)


# -- call: what comes back ------------------------------------------------------------------------------


async def test_call_result_shapes(sessions: Sessions) -> None:
    callee = await sessions.open()
    caller = await sessions.open("rs", "msgpack")
    answers: dict[str, Callable[..., Any]] = {
        "none": lambda: None,
        "one": lambda: 42,
        "list": lambda: [1, 2],
        "many": lambda: Result([1, 2, 3]),
        "kwargs_only": lambda: Result(kwargs={"a": 1}),
        "both": lambda: Result(["x"], {"y": b"z"}),
        "echo_kwargs": lambda **kwargs: Result(kwargs=kwargs),
        "arity": lambda *args, **kwargs: len(args) * 100 + len(kwargs),
    }
    names = {key: uri(key) for key in answers}
    for key, handler in answers.items():
        await callee.register(names[key], handler)

    assert await within(caller.call(names["none"])) is None
    assert await within(caller.call(names["one"])) == 42
    assert await within(caller.call(names["list"])) == [1, 2]  # one positional value that is a list
    many = await within(caller.call(names["many"]))
    assert isinstance(many, Result) and many.args == [1, 2, 3] and many.kwargs == {} and not many.progress
    kwargs_only = await within(caller.call(names["kwargs_only"]))
    assert isinstance(kwargs_only, Result) and kwargs_only.args == [] and kwargs_only.kwargs == {"a": 1}
    assert kwargs_only.value is None
    both = await within(caller.call(names["both"]))
    assert isinstance(both, Result) and both.args == ["x"] and both.kwargs == {"y": b"z"} and both.value == "x"
    assert (await within(caller.call(names["echo_kwargs"], a=1, b=[2]))).kwargs == {"a": 1, "b": [2]}
    assert await within(caller.call(names["arity"])) == 0
    assert await within(caller.call(names["arity"], 1, 2, k=3)) == 201

    # call_result always gives the whole Result
    assert await within(caller.call_result(names["one"])) == Result([42], {}, {})
    assert await within(caller.call_result(names["none"])) == Result([], {}, {})
    whole = await within(caller.call_result(names["both"]))
    assert (whole.args, whole.kwargs) == (["x"], {"y": b"z"})


async def test_handler_kinds(sessions: Sessions) -> None:
    callee = await sessions.open("unix", "cbor")
    caller = await sessions.open()

    def plain(a: int, b: int) -> int:
        return a + b

    async def coroutine(a: int, b: int) -> int:
        await asyncio.sleep(0.01)
        return a * b

    async def generator(n: int) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    async def later(value: str) -> str:
        return value.upper()

    class Counter:
        def __init__(self) -> None:
            self.count = 0

        def bump(self, by: int = 1) -> int:
            self.count += by
            return self.count

    counter = Counter()
    names = {key: uri(key) for key in ("plain", "coroutine", "generator", "awaitable", "method")}
    await callee.register(names["plain"], plain)
    await callee.register(names["coroutine"], coroutine)
    await callee.register(names["generator"], generator)
    await callee.register(names["awaitable"], lambda value: later(value))  # a plain function returning a coroutine
    await callee.register(names["method"], counter.bump)

    assert await within(caller.call(names["plain"], 2, 3)) == 5
    assert await within(caller.call(names["coroutine"], 2, 3)) == 6
    # without receive_progress an async generator answers with its last item only
    assert await within(caller.call(names["generator"], 4)) == 3
    assert await within(caller.call(names["generator"], 0)) is None
    assert await within(caller.call(names["awaitable"], "abc")) == "ABC"
    assert await within(caller.call(names["method"], by=5)) == 5
    assert await within(caller.call(names["method"])) == 6
    # many calls in flight at once, each answered to its own caller
    results = await within(asyncio.gather(*(caller.call(names["coroutine"], i, i) for i in range(50))))
    assert results == [i * i for i in range(50)]


async def test_handler_details(sessions: Sessions) -> None:
    callee = await sessions.open()
    caller = await sessions.open("rs", "cbor")
    seen: list[CallDetails] = []

    def plain(x: Any, details: CallDetails) -> Any:
        seen.append(details)
        return x

    async def coroutine(details: CallDetails | None = None) -> int | None:
        assert details is not None
        seen.append(details)
        return details.caller

    plain_uri, coroutine_uri = uri("plain"), uri("coroutine")
    plain_reg = await callee.register(plain_uri, plain)
    coroutine_reg = await callee.register(coroutine_uri, coroutine)

    assert await within(caller.call(plain_uri, 7)) == 7
    details = seen.pop()
    assert isinstance(details, CallDetails)
    assert details.registration == plain_reg.id and details.procedure == plain_uri
    assert details.caller is None and details.caller_authid is None and details.progress is None

    assert await within(caller.call(coroutine_uri, options=CallOptions(disclose_me=True))) == caller.session_id
    details = seen.pop()
    assert details.registration == coroutine_reg.id
    assert details.caller == caller.session_id
    assert details.caller_authid == caller.details["authid"]
    assert details.caller_authrole == caller.details["authrole"]

    # a caller that does not ask stays anonymous
    assert await within(caller.call(coroutine_uri, options=CallOptions(disclose_me=False))) is None


async def test_register_disclose_caller(sessions: Sessions) -> None:
    """RegisterOptions(disclose_caller=True): the callee learns every caller (REGISTER.Options.disclose_caller)."""
    callee = await sessions.open()
    caller = await sessions.open()
    procedure = uri("who")
    await callee.register(procedure, lambda details: details.caller, RegisterOptions(disclose_caller=True))
    assert await within(caller.call(procedure)) == caller.session_id


# -- errors -----------------------------------------------------------------------------------------------


async def test_application_error_from_handlers(sessions: Sessions) -> None:
    callee = await sessions.open("rs", "msgpack")
    caller = await sessions.open()

    def plain(n: int) -> None:
        raise ApplicationError("com.example.too_big", n, "extra", limit=10, blob=b"\x01")

    async def coroutine() -> None:
        await asyncio.sleep(0)
        raise ApplicationError("com.example.async_error")

    async def generator() -> AsyncIterator[int]:
        yield 1
        raise ApplicationError("com.example.gen_error", 2)

    names = {key: uri(key) for key in ("plain", "coroutine", "generator")}
    for key, handler in (("plain", plain), ("coroutine", coroutine), ("generator", generator)):
        await callee.register(names[key], handler)

    with pytest.raises(ApplicationError) as info:
        await within(caller.call(names["plain"], 11))
    assert info.value.error == "com.example.too_big"
    assert info.value.args == (11, "extra") and info.value.kwargs == {"limit": 10, "blob": b"\x01"}

    with pytest.raises(ApplicationError) as info:
        await within(caller.call(names["coroutine"]))
    assert (info.value.error, info.value.args, info.value.kwargs) == ("com.example.async_error", (), {})

    with pytest.raises(ApplicationError) as info:
        await within(caller.call(names["generator"]))
    assert (info.value.error, info.value.args) == ("com.example.gen_error", (2,))

    # the same error after progressive results
    results: list[Result] = []
    with pytest.raises(ApplicationError) as info:
        async for result in caller.call_progressive(names["generator"]):
            results.append(result)
    assert [r.args for r in results] == [[1]] and results[0].progress
    assert info.value.error == "com.example.gen_error"


async def test_other_exceptions_become_runtime_error(sessions: Sessions) -> None:
    callee = await sessions.open()
    caller = await sessions.open("unix", "json")

    def plain() -> None:
        raise ValueError("bad value")

    async def coroutine() -> None:
        raise KeyError("missing")

    async def generator() -> AsyncIterator[int]:
        yield 1
        raise RuntimeError("generator broke")

    names = {key: uri(key) for key in ("plain", "coroutine", "generator", "arity")}
    await callee.register(names["plain"], plain)
    await callee.register(names["coroutine"], coroutine)
    await callee.register(names["generator"], generator)
    await callee.register(names["arity"], lambda a: a)

    for key, text in (("plain", "bad value"), ("coroutine", "'missing'"), ("generator", "generator broke")):
        with pytest.raises(ApplicationError) as info:
            await within(caller.call(names[key]))
        assert info.value.error == "wamp.error.runtime_error", key
        assert info.value.args == (text,), key
    # calling with the wrong arguments is a TypeError in the callee: runtime_error too, the callee survives
    with pytest.raises(ApplicationError) as info:
        await within(caller.call(names["arity"], 1, 2, 3))
    assert info.value.error == "wamp.error.runtime_error"
    assert await within(caller.call(names["arity"], 1)) == 1
    assert callee.is_connected


@pytest.mark.parametrize("kind", ["sync", "async", "generator"])
async def test_unsendable_answers_become_errors(sessions: Sessions, kind: str) -> None:
    """A handler whose result (or ApplicationError payload) cannot be serialized, or is bigger than the
    router accepts, answers the caller with an ERROR; the callee stays connected and keeps serving."""
    callee = await sessions.open("rs", "json")  # RawSocket: the router accepts 64 KiB at most here
    caller = await sessions.open()

    def make(produce: Callable[[], Any]) -> Callable[..., Any]:
        if kind == "sync":
            return produce

        async def coroutine() -> Any:
            return produce()

        async def generator() -> AsyncIterator[Any]:
            yield produce()

        return coroutine if kind == "async" else generator

    def bad_error_payload() -> None:
        raise ApplicationError("com.example.error", object())

    cases: dict[str, Callable[[], Any]] = {
        "unencodable": lambda: {1, 2},
        "too_big": lambda: "x" * 70_000,
        "bad_error_payload": bad_error_payload,
    }
    fine = uri("fine")
    await callee.register(fine, lambda: "fine")
    for name, produce in cases.items():
        procedure = uri(name)
        await callee.register(procedure, make(produce))
        with pytest.raises(ApplicationError) as info:
            await within(caller.call(procedure), 2)
        assert info.value.error != "wamp.error.canceled", f"{name}: the callee was disconnected"
        assert callee.is_connected, name
        assert await within(caller.call(fine)) == "fine", name


async def test_router_errors_are_typed(sessions: Sessions) -> None:
    session = await sessions.open()
    other = await sessions.open("rs", "cbor")

    with pytest.raises(ApplicationError) as info:
        await within(session.call(uri("nobody")))
    assert info.value.error == "wamp.error.no_such_procedure"
    assert isinstance(info.value.args[0], str)

    with pytest.raises(ApplicationError) as info:
        await within(session.call("not a uri"))
    assert info.value.error == "wamp.error.invalid_uri"

    taken = uri("taken")
    await other.register(taken, lambda: 1)
    with pytest.raises(ApplicationError) as info:
        await within(session.register(taken, lambda: 2))
    assert info.value.error == "wamp.error.procedure_already_exists"
    assert await within(session.call(taken)) == 1  # the first registration still answers

    with pytest.raises(ApplicationError) as info:
        await within(session.register("wamp.mine", lambda: 1))
    assert info.value.error == "wamp.error.invalid_uri"

    with pytest.raises(ApplicationError) as info:
        await within(session.subscribe("com..empty", lambda: None))
    assert info.value.error == "wamp.error.invalid_uri"

    with pytest.raises(ApplicationError) as info:
        await within(session.publish("wamp.reserved", options=PublishOptions(acknowledge=True)))
    assert info.value.error == "wamp.error.not_authorized"

    with pytest.raises(ApplicationError) as info:
        await within(session.publish("bad topic", options=PublishOptions(acknowledge=True)))
    assert info.value.error == "wamp.error.invalid_uri"

    # none of the failures left a registration or subscription behind to restore later
    assert session._registrations == [] and session._subscriptions == []
    # and the session still works
    assert session.is_connected and await within(session.call(taken)) == 1


async def test_unencodable_arguments_leave_the_session_usable(sessions: Sessions) -> None:
    """A request whose payload cannot be serialized fails locally, and must not consume a request ID:
    the router enforces 1, 2, 3, ... and would ABORT the session at the next request after a gap."""
    callee = await sessions.open()
    session = await sessions.open("rs", "json")
    procedure, topic = uri("echo"), uri("topic")
    await callee.register(procedure, lambda value: value)
    for bad in (object(), {1, 2}):
        with pytest.raises(Exception) as info:
            await within(session.call(procedure, bad))
        assert not isinstance(info.value, (ApplicationError, SessionClosed, ConnectionError)), info.value
        with pytest.raises(Exception):  # noqa: B017
            await within(session.publish(topic, bad, options=PublishOptions(acknowledge=True)))
        with pytest.raises(Exception):  # noqa: B017
            await within(session.publish(topic, key=bad))
        # the session goes on: the next requests are answered
        assert await within(session.call(procedure, "fine")) == "fine", session.last_close_reason
        assert await within(session.publish(topic, options=PublishOptions(acknowledge=True))) is not None
    assert session.is_connected
    assert session._connection is not None
    assert session._connection.calls == {} and session._connection.requests == {}


async def test_oversized_request_on_rawsocket_leaves_the_session_usable(sessions: Sessions) -> None:
    """The router accepts at most 64 KiB here (RawSocket handshake); the client refuses a bigger message
    before sending it, and the session must survive that (no request-ID gap, no leaked pending call)."""
    callee = await sessions.open()
    session = await sessions.open("rs", "msgpack")
    procedure = uri("echo")
    await callee.register(procedure, lambda value: value)
    with pytest.raises(Exception) as info:
        await within(session.call(procedure, b"x" * 70_000))
    assert not isinstance(info.value, (SessionClosed, ConnectionError)), info.value
    assert await within(session.call(procedure, b"x" * 1000)) == b"x" * 1000, session.last_close_reason
    assert session._connection is not None and session._connection.calls == {}


async def test_connect_errors(router: RouterProcess) -> None:
    with pytest.raises(ApplicationError) as info:
        await within(connect(router.ws_url, "no.such.realm", reconnect=NO_RECONNECT))
    assert info.value.error == "wamp.error.no_such_realm"
    with pytest.raises(ConnectionError):
        await within(connect(router.ws_url.replace("/ws", "/nowhere"), "realm1", reconnect=NO_RECONNECT))
    with pytest.raises(ConnectionError):
        await within(connect("unix:///nonexistent/cloverleaf.sock", "realm1", reconnect=NO_RECONNECT))
    with pytest.raises(ValueError):
        await within(connect("http://127.0.0.1:1/", "realm1", reconnect=NO_RECONNECT))


# -- publish and subscribe ----------------------------------------------------------------------------------


async def test_publish_acknowledged_and_not(sessions: Sessions) -> None:
    publisher = await sessions.open()
    subscriber = await sessions.open("rs", "msgpack")
    topic = uri("topic")
    events: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    await subscriber.subscribe(topic, lambda *args: events.put_nowait(args))

    assert await within(publisher.publish(topic, 1)) is None
    publication = await within(publisher.publish(topic, 2, options=PublishOptions(acknowledge=True)))
    assert isinstance(publication, Publication) and publication.id > 0
    assert await within(publisher.publish(topic)) is None
    assert [await within(events.get()) for _ in range(3)] == [(1,), (2,), ()]
    # a publication to a topic without subscribers is acknowledged as well
    assert isinstance(
        await within(publisher.publish(uri("empty"), options=PublishOptions(acknowledge=True))), Publication
    )


async def test_exclude_me(sessions: Sessions) -> None:
    session = await sessions.open()
    topic = uri("self")
    events: asyncio.Queue[Any] = asyncio.Queue()
    await session.subscribe(topic, lambda value: events.put_nowait(value))
    await within(session.publish(topic, "default", options=PublishOptions(acknowledge=True)))
    await within(session.publish(topic, "exclude_me=False", options=PublishOptions(acknowledge=True, exclude_me=False)))
    await within(session.publish(topic, "exclude_me=True", options=PublishOptions(acknowledge=True, exclude_me=True)))
    await within(session.publish(topic, "last", options=PublishOptions(exclude_me=False)))
    assert await within(events.get()) == "exclude_me=False"
    assert await within(events.get()) == "last"  # the excluded ones never came (one publisher: ordered)
    assert events.empty()


async def test_exclude_and_eligible_by_session_id(sessions: Sessions) -> None:
    publisher = await sessions.open()
    subscribers = [await sessions.open(t, s) for t, s in (("ws", "json"), ("rs", "msgpack"), ("unix", "cbor"))]
    topic = uri("audience")
    got: dict[int, list[str]] = {i: [] for i in range(3)}
    done = [asyncio.Event() for _ in range(3)]

    def handler_for(i: int) -> Callable[[str], None]:
        def handler(label: str) -> None:
            got[i].append(label)
            if label == "end":
                done[i].set()

        return handler

    for i, subscriber in enumerate(subscribers):
        await subscriber.subscribe(topic, handler_for(i))
    a, b, c = (s.session_id for s in subscribers)
    ack = PublishOptions(acknowledge=True)
    await within(publisher.publish(topic, "all", options=ack))
    await within(publisher.publish(topic, "not b", options=PublishOptions(acknowledge=True, exclude=[b])))
    await within(publisher.publish(topic, "only a", options=PublishOptions(acknowledge=True, eligible=[a])))
    await within(publisher.publish(topic, "a or c, not c", options=PublishOptions(eligible=[a, c], exclude=[c])))
    await within(publisher.publish(topic, "end"))
    await within(asyncio.gather(*(event.wait() for event in done)))
    assert got[0] == ["all", "not b", "only a", "a or c, not c", "end"]
    assert got[1] == ["all", "end"]
    assert got[2] == ["all", "not b", "end"]


async def test_publisher_disclosure(sessions: Sessions) -> None:
    publisher = await sessions.open("rs", "cbor")
    subscriber = await sessions.open()
    topic = uri("disclosed")
    events: asyncio.Queue[tuple[Any, EventDetails]] = asyncio.Queue()

    def handler(value: Any, details: EventDetails) -> None:
        events.put_nowait((value, details))

    subscription = await subscriber.subscribe(topic, handler)
    hidden = await within(publisher.publish(topic, 1, options=PublishOptions(acknowledge=True)))
    shown = await within(publisher.publish(topic, 2, options=PublishOptions(acknowledge=True, disclose_me=True)))
    assert hidden is not None and shown is not None

    value, details = await within(events.get())
    assert value == 1 and isinstance(details, EventDetails)
    assert details.subscription == subscription.id and details.publication == hidden.id and details.topic == topic
    assert details.publisher is None and details.publisher_authid is None and not details.retained

    value, details = await within(events.get())
    assert value == 2 and details.publication == shown.id
    assert details.publisher == publisher.session_id
    assert details.publisher_authid == publisher.details["authid"]
    assert details.publisher_authrole == publisher.details["authrole"]


async def test_sync_and_async_handlers_share_a_topic(sessions: Sessions) -> None:
    publisher = await sessions.open()
    subscriber = await sessions.open("unix", "msgpack")
    topic = uri("shared")
    sync_got: asyncio.Queue[Any] = asyncio.Queue()
    async_got: asyncio.Queue[Any] = asyncio.Queue()
    kw_got: asyncio.Queue[Any] = asyncio.Queue()

    def sync_handler(value: Any) -> None:
        sync_got.put_nowait(value)

    async def async_handler(value: Any, details: EventDetails) -> None:
        await asyncio.sleep(0.01)
        async_got.put_nowait((value, details.subscription))

    async def kwargs_handler(*args: Any, **kwargs: Any) -> None:
        kw_got.put_nowait((args, kwargs))

    first = await subscriber.subscribe(topic, sync_handler)
    second = await subscriber.subscribe(topic, async_handler)
    third = await subscriber.subscribe(topic, kwargs_handler)
    assert first.id == second.id == third.id  # one subscription at the router, three handlers here

    await within(publisher.publish(topic, "one", options=PublishOptions(acknowledge=True)))
    assert await within(sync_got.get()) == "one"
    assert await within(async_got.get()) == ("one", first.id)
    assert await within(kw_got.get()) == (("one",), {})

    # dropping one handler keeps the others
    await within(second.unsubscribe())
    assert not second.active and first.active
    await within(publisher.publish(topic, "two", options=PublishOptions(acknowledge=True)))
    assert await within(sync_got.get()) == "two"
    assert await within(kw_got.get()) == (("two",), {})

    # a handler that raises does not disturb the others
    def broken(value: Any) -> None:
        raise RuntimeError("handler bug")

    fourth = await subscriber.subscribe(topic, broken)
    await within(publisher.publish(topic, "three", options=PublishOptions(acknowledge=True)))
    assert await within(sync_got.get()) == "three"
    assert await within(kw_got.get()) == (("three",), {})
    await within(fourth.unsubscribe())

    # unsubscribing the last handlers ends the router-side subscription: nothing arrives
    await within(first.unsubscribe())
    await within(third.unsubscribe())
    await within(first.unsubscribe())  # twice is harmless
    marker: asyncio.Queue[Any] = asyncio.Queue()
    other_topic = uri("marker")
    await subscriber.subscribe(other_topic, lambda: marker.put_nowait(True))
    await within(publisher.publish(topic, "four"))
    await within(publisher.publish(other_topic))
    await within(marker.get())
    await asyncio.sleep(0.05)
    assert sync_got.empty() and async_got.empty() and kw_got.empty()
    assert async_got.empty()


async def test_pattern_options_are_refused_or_honoured(sessions: Sessions) -> None:
    """match="prefix" for REGISTER and SUBSCRIBE reaches the router: it refuses it with invalid_argument
    (no pattern matching yet) or honours it, but never silently treats the URI as an exact one."""
    session = await sessions.open()
    other = await sessions.open("rs", "msgpack")
    prefix = uri("prefix")
    try:
        await within(session.register(prefix, lambda details: details.procedure, RegisterOptions(match="prefix")))
    except ApplicationError as exc:
        assert exc.error == "wamp.error.invalid_argument"
        assert session._registrations == []
    else:
        assert await within(other.call(prefix + ".deeper")) == prefix + ".deeper"

    events: asyncio.Queue[str | None] = asyncio.Queue()
    try:
        await within(session.subscribe(prefix, lambda details: events.put_nowait(details.topic),
                                       SubscribeOptions(match="prefix")))  # fmt: skip
    except ApplicationError as exc:
        assert exc.error == "wamp.error.invalid_argument"
        assert session._subscriptions == []
    else:
        await within(other.publish(prefix + ".deeper", options=PublishOptions(acknowledge=True)))
        assert await within(events.get()) == prefix + ".deeper"


async def test_unregister(sessions: Sessions) -> None:
    callee = await sessions.open()
    caller = await sessions.open("rs", "json")
    procedure = uri("temp")
    registration = await callee.register(procedure, lambda: "first")
    assert await within(caller.call(procedure)) == "first"
    await within(registration.unregister())
    assert not registration.active
    with pytest.raises(ApplicationError) as info:
        await within(caller.call(procedure))
    assert info.value.error == "wamp.error.no_such_procedure"
    await within(registration.unregister())  # twice is harmless
    # the URI is free again, for this session or another
    again = await caller.register(procedure, lambda: "second")
    assert await within(callee.call(procedure)) == "second"
    assert again.id != 0


async def test_event_right_behind_subscribed_is_delivered(sessions: Sessions) -> None:
    """The router sends SUBSCRIBED, then EVENTs for it (spec: ordering guarantee); an EVENT that arrives
    in the same read as the SUBSCRIBED must reach the handler, not be dropped as "unsubscribed"."""
    session = await sessions.open("rs", "json")
    for _ in range(5):
        topic = uri("eager")
        events: asyncio.Queue[Any] = asyncio.Queue()
        publish = session.publish(topic, "first", options=PublishOptions(acknowledge=True, exclude_me=False))
        await within(asyncio.gather(session.subscribe(topic, events.put_nowait), publish))
        assert await within(events.get(), 1) == "first"


async def test_invocation_right_behind_registered_is_answered(sessions: Sessions) -> None:
    """REGISTERED, then at once an INVOCATION for it (here: this session's own call sent right behind the
    REGISTER): the handler must run, not be answered with wamp.error.no_such_registration."""
    session = await sessions.open("ws", "msgpack")
    for _ in range(5):
        procedure = uri("eager")
        _registration, result = await within(asyncio.gather(session.register(procedure, lambda: "ran"),
                                                             session.call(procedure)))  # fmt: skip
        assert result == "ran"


# -- leaving ---------------------------------------------------------------------------------------------------


async def test_leave_says_goodbye(router: RouterProcess) -> None:
    session = Session(router.rs_url, "realm1", serializer="cbor", reconnect=NO_RECONNECT)
    joins: list[int] = []
    leaves: list[str] = []
    session.on_join(lambda s: joins.append(s.session_id))
    session.on_leave(lambda _s, reason: leaves.append(reason))
    await within(session.start())
    session_id = session.session_id
    assert joins == [session_id] and session.is_connected
    procedure = uri("gone")
    await session.register(procedure, lambda: 1)

    await within(session.leave("com.example.bye"))
    assert leaves == ["wamp.close.goodbye_and_out"]  # the router's answer to our GOODBYE
    assert session.last_close_reason == "wamp.close.goodbye_and_out"
    assert not session.is_connected and session.session_id == 0 and session.phase is None
    # the router saw our reason, and dropped the registration
    await wait_until(lambda: f"session {session_id} left" in router.log(), what="the router's log line")
    assert "com.example.bye" in router.log()
    with pytest.raises(SessionClosed):
        await within(session.call(procedure))
    with pytest.raises(SessionClosed):
        await within(session.publish(procedure))
    await within(session.leave())  # twice is harmless
    assert leaves == ["wamp.close.goodbye_and_out"]

    async with await within(connect(router.ws_url, "realm1", reconnect=NO_RECONNECT)) as other:
        with pytest.raises(ApplicationError) as info:
            await within(other.call(procedure))
        assert info.value.error == "wamp.error.no_such_procedure"
    assert not other.is_connected


async def test_not_connected_without_reconnect(router: RouterProcess) -> None:
    session = await within(connect(router.ws_url, "realm1", reconnect=NO_RECONNECT))
    assert session._connection is not None
    session._connection.link.close()  # the transport drops under the session
    await wait_until(lambda: not session.is_connected, what="the loss to be noticed")
    started = time.monotonic()
    with pytest.raises(NotConnected):
        await within(session.call(uri("x")))
    assert time.monotonic() - started < 1
    await within(session.leave())


# -- progressive results ---------------------------------------------------------------------------------------


async def test_progressive_results(sessions: Sessions) -> None:
    callee = await sessions.open()
    caller = await sessions.open("rs", "msgpack")

    async def countdown(n: int) -> AsyncIterator[Any]:
        for i in range(n, 0, -1):
            await asyncio.sleep(0.005)
            yield i
        yield Result(["liftoff"], {"n": n})

    def reporter(n: int, details: CallDetails) -> str:
        assert details.progress is not None
        for i in range(n):
            details.progress(i, of=n)
        return "done"

    async def async_reporter(details: CallDetails) -> str:
        if details.progress is None:
            return "no progress asked"
        details.progress("halfway")
        await asyncio.sleep(0.01)
        details.progress()
        return "done"

    names = {key: uri(key) for key in ("countdown", "reporter", "async_reporter")}
    await callee.register(names["countdown"], countdown)
    await callee.register(names["reporter"], reporter)
    await callee.register(names["async_reporter"], async_reporter)

    results = [r async for r in caller.call_progressive(names["countdown"], 3)]
    assert [r.args for r in results[:-1]] == [[3], [2], [1], ["liftoff"]]
    assert all(r.progress for r in results[:-1])
    assert results[3].kwargs == {"n": 3}
    final = results[-1]
    assert not final.progress and final.args == [] and final.kwargs == {}

    results = [r async for r in caller.call_progressive(names["reporter"], 2)]
    assert [(r.args, r.kwargs, r.progress) for r in results] == [
        ([0], {"of": 2}, True), ([1], {"of": 2}, True), (["done"], {}, False),
    ]  # fmt: skip

    # CallOptions(on_progress=...) with call(): progress to the callback, the final result returned
    progress: list[Result] = []
    options = CallOptions(on_progress=progress.append)
    assert await within(caller.call(names["async_reporter"], options=options)) == "done"
    assert [(r.args, r.progress) for r in progress] == [(["halfway"], True), ([], True)]

    # an async callback is awaited in the background
    async_progress: asyncio.Queue[Result] = asyncio.Queue()

    async def on_progress(result: Result) -> None:
        await async_progress.put(result)

    assert await within(caller.call(names["reporter"], 1, options=CallOptions(on_progress=on_progress))) == "done"
    assert (await within(async_progress.get())).args == [0]

    # without asking, no progress reaches the callee's handler
    assert await within(caller.call(names["async_reporter"])) == "no progress asked"


async def test_leaving_progressive_loop_early_cancels(sessions: Sessions) -> None:
    callee = await sessions.open()
    caller = await sessions.open("unix", "cbor")
    outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def endless() -> AsyncIterator[int]:
        i = 0
        try:
            while True:
                yield i
                i += 1
                await asyncio.sleep(0.01)
        except asyncio.CancelledError as exc:
            outcome.set_result(exc.args)
            raise

    procedure = uri("endless")
    await callee.register(procedure, endless)
    async with contextlib.aclosing(caller.call_progressive(procedure)) as results:
        async for result in results:
            if result.value == 2:
                break
    assert await within(outcome) == ("killnowait",)
    assert caller.is_connected and callee.is_connected
    assert caller._connection is not None and caller._connection.calls == {}


# -- cancellation and timeouts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["skip", "kill", "killnowait"])
async def test_cancel_by_task_cancel(sessions: Sessions, tasks: Any, mode: str) -> None:
    callee = await sessions.open("rs", "msgpack")
    caller = await sessions.open()
    probe = Probe(run_for=0.3 if mode == "skip" else 30)
    procedure, ping = uri("slow"), uri("ping")
    await callee.register(procedure, probe)
    await callee.register(ping, lambda: "pong")

    task = tasks(caller.call(procedure, options=CallOptions(cancel_mode=mode)))
    await within(probe.started.wait())
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await within(task)
    assert time.monotonic() - started < 1, "canceling must not wait for the callee"

    kind, detail = await within(probe.outcome)
    if mode == "skip":
        assert kind == "finished"  # the callee is not told; its late answer is dropped
    else:
        assert (kind, detail) == ("cancelled", (mode,))
    await asyncio.sleep(0.05)  # let any late answer arrive at the caller
    assert caller._connection is not None and caller._connection.calls == {}
    assert callee._connection is not None and callee._connection.invocations == {}
    # both sessions are healthy afterwards
    assert await within(caller.call(ping)) == "pong"
    assert caller.is_connected and callee.is_connected


async def test_cancel_a_waiting_progressive_call(sessions: Sessions, tasks: Any) -> None:
    callee = await sessions.open()
    caller = await sessions.open()
    probe = Probe()
    procedure = uri("slow")
    await callee.register(procedure, probe)

    async def consume() -> list[Result]:
        return [r async for r in caller.call_progressive(procedure, options=CallOptions(cancel_mode="kill"))]

    task = tasks(consume())
    await within(probe.started.wait())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await within(task)
    assert await within(probe.outcome) == ("cancelled", ("kill",))


async def test_timeout(sessions: Sessions) -> None:
    callee = await sessions.open()
    caller = await sessions.open("rs", "cbor")
    probe = Probe()
    procedure = uri("slow")
    await callee.register(procedure, probe)

    started = time.monotonic()
    with pytest.raises(ApplicationError) as info:
        await within(caller.call(procedure, options=CallOptions(timeout=0.3)))
    elapsed = time.monotonic() - started
    assert info.value.error == "wamp.error.timeout"
    assert 0.25 <= elapsed < 2, elapsed
    # the callee is canceled too (default cancel mode, and the router's own on timeout: killnowait)
    assert await within(probe.outcome) == ("cancelled", ("killnowait",))
    assert caller._connection is not None and caller._connection.calls == {}

    # a fast answer within the timeout is simply returned
    fast = uri("fast")
    await callee.register(fast, lambda: "quick")
    assert await within(caller.call(fast, options=CallOptions(timeout=2))) == "quick"


async def test_timeout_with_kill_and_progressive(sessions: Sessions) -> None:
    callee = await sessions.open("unix", "msgpack")
    caller = await sessions.open()

    probe = Probe()
    slow = uri("slow")
    await callee.register(slow, probe)
    with pytest.raises(ApplicationError) as info:
        await within(caller.call(slow, options=CallOptions(timeout=0.2, cancel_mode="kill")))
    assert info.value.error == "wamp.error.timeout"
    # the client's CANCEL (mode kill) or, when the router enforces call timeouts, the router's own
    # INTERRUPT (killnowait): either way the callee's handler is canceled
    kind, detail = await within(probe.outcome)
    assert kind == "cancelled" and detail in (("kill",), ("killnowait",))

    cancelled = asyncio.Event()

    async def trickle(details: CallDetails) -> str:
        try:
            assert details.progress is not None
            details.progress("first")
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    trickle_uri = uri("trickle")
    await callee.register(trickle_uri, trickle)
    got: list[Any] = []
    started = time.monotonic()
    with pytest.raises(ApplicationError) as info:
        async for result in caller.call_progressive(trickle_uri, options=CallOptions(timeout=0.3)):
            got.append(result.value)
    assert info.value.error == "wamp.error.timeout"
    assert got == ["first"] and time.monotonic() - started < 2
    await within(cancelled.wait())


async def test_timeout_on_a_sync_handler_that_never_answers(sessions: Sessions) -> None:
    """A callee that never yields (here: a raw peer that ignores INVOCATION) still times out."""
    caller = await sessions.open()
    callee = await within(RawClient.rawsocket(sessions.router.rs_port))
    try:
        await callee.join()
        procedure = uri("silent")
        registered = await callee.request([64, callee.request_id(), {}, procedure])
        assert registered[0] == 65
        with pytest.raises(ApplicationError) as info:
            await within(caller.call(procedure, options=CallOptions(timeout=0.2, cancel_mode="skip")))
        assert info.value.error == "wamp.error.timeout"
        invocation = await callee.recv()
        assert invocation[0] == 68
    finally:
        await callee.close()


# -- callees that go away ------------------------------------------------------------------------------------------


async def test_callee_leaves_mid_call(sessions: Sessions, tasks: Any) -> None:
    callee = await sessions.open("rs", "msgpack")
    caller = await sessions.open()
    probe = Probe()
    procedure = uri("doomed")
    await callee.register(procedure, probe)
    task = tasks(caller.call(procedure))
    await within(probe.started.wait())
    await within(callee.leave())
    with pytest.raises(ApplicationError) as info:
        await within(task)
    assert info.value.error == "wamp.error.canceled"
    assert info.value.args == ("callee disconnected from in-flight request",)
    # the leaving callee's own handler was canceled
    kind, _detail = await within(probe.outcome)
    assert kind == "cancelled"
    with pytest.raises(ApplicationError) as info:
        await within(caller.call(procedure))
    assert info.value.error == "wamp.error.no_such_procedure"


async def test_callee_connection_drops_mid_call(sessions: Sessions, tasks: Any) -> None:
    caller = await sessions.open("unix", "cbor")
    callee = await within(RawClient.rawsocket(sessions.router.rs_port, "msgpack"))
    await callee.join()
    procedure = uri("dropped")
    registered = await callee.request([64, callee.request_id(), {}, procedure])
    assert registered[0] == 65
    task = tasks(caller.call(procedure, 1))
    invocation = await callee.recv()
    assert invocation[0] == 68 and invocation[4] == [1]
    await callee.close()  # no GOODBYE: the socket just closes
    with pytest.raises(ApplicationError) as info:
        await within(task)
    assert info.value.error == "wamp.error.canceled"
    with pytest.raises(ApplicationError) as info:
        await within(caller.call(procedure))
    assert info.value.error == "wamp.error.no_such_procedure"
    assert caller.is_connected
