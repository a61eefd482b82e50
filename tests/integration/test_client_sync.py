"""The synchronous facade (``cloverleaf.connect``) against a real router, from plain test functions."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import RouterProcess

import cloverleaf
from cloverleaf.client import NO_RECONNECT, ApplicationError, CallOptions, Publication, PublishOptions, Result
from cloverleaf.client.sync import SyncSession


def uri(name: str) -> str:
    return f"com.test.sync.{name}.{uuid.uuid4().hex[:8]}"


@pytest.fixture
def s(router: RouterProcess) -> Iterator[SyncSession]:
    session = cloverleaf.connect(router.ws_url, "realm1", timeout=5, reconnect=NO_RECONNECT)
    yield session
    session.leave()


def test_call_and_register(s: SyncSession) -> None:
    add, echo = uri("add"), uri("echo")
    threads: list[threading.Thread] = []

    def do_add(a: int, b: int) -> int:
        threads.append(threading.current_thread())
        return a + b

    registration = s.register(add, do_add)
    assert registration.procedure == add and registration.active
    assert s.call(add, 2, 3) == 5
    assert threads == [s._thread] and threads[0] is not threading.current_thread()  # the loop thread

    async def do_echo(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        return Result(list(args), kwargs)

    s.register(echo, do_echo)
    result = s.call(echo, 1, b"\x00bytes", key="value")
    assert result.args == [1, b"\x00bytes"] and result.kwargs == {"key": "value"}

    registration.unregister()
    assert not registration.active
    with pytest.raises(ApplicationError) as error:
        s.call(add, 1, 1)
    assert error.value.error == "wamp.error.no_such_procedure"


def test_publish_and_subscribe(s: SyncSession, router: RouterProcess) -> None:
    topic = uri("topic")
    received: list[tuple[Any, ...]] = []
    got = threading.Event()

    def on_event(*args: Any, **kwargs: Any) -> None:
        received.append((args, kwargs))
        got.set()

    subscription = s.subscribe(topic, on_event)
    assert subscription.topic == topic
    with cloverleaf.connect(router.ws_url, "realm1", timeout=5) as publisher:
        assert publisher.publish(topic, 1, x="y") is None
        assert got.wait(5)
        assert received == [((1,), {"x": "y"})]
        publication = publisher.publish(topic, 2, options=PublishOptions(acknowledge=True))
        assert isinstance(publication, Publication) and publication.id > 0
    subscription.unsubscribe()
    assert not subscription.active


def test_application_errors_propagate(s: SyncSession) -> None:
    failing = uri("failing")

    def fail(n: int) -> None:
        raise ApplicationError("com.example.too_big", n, limit=10)

    s.register(failing, fail)
    with pytest.raises(ApplicationError) as error:
        s.call(failing, 11)
    assert (error.value.error, error.value.args, error.value.kwargs) == ("com.example.too_big", (11,), {"limit": 10})
    with pytest.raises(ApplicationError) as error:
        s.register(failing, fail)
    assert error.value.error == "wamp.error.procedure_already_exists"
    with pytest.raises(ApplicationError) as error:
        s.publish("wamp.reserved", options=PublishOptions(acknowledge=True))
    assert error.value.error in ("wamp.error.invalid_uri", "wamp.error.not_authorized")


def test_blocking_call_from_a_handler_is_refused(s: SyncSession) -> None:
    inner, outer = uri("inner"), uri("outer")
    s.register(inner, lambda: "inner")
    s.register(outer, lambda: s.call(inner))  # would deadlock the loop thread
    with pytest.raises(ApplicationError) as error:
        s.call(outer)
    assert error.value.error == "wamp.error.runtime_error"
    assert "own loop thread" in str(error.value.args[0])


def test_call_timeouts(s: SyncSession) -> None:
    slow = uri("slow")
    interrupted = threading.Event()

    async def sleeper() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            interrupted.set()
            raise

    s.register(slow, sleeper)
    started = time.monotonic()
    with pytest.raises(ApplicationError) as error:
        s.call(slow, options=CallOptions(timeout=0.2))
    assert error.value.error == "wamp.error.timeout"
    assert time.monotonic() - started < 2.0
    assert interrupted.wait(5)  # the call was canceled at the callee too

    interrupted.clear()
    s.timeout = 0.3  # the session's timeout applies to calls without their own
    started = time.monotonic()
    with pytest.raises(ApplicationError) as error:
        s.call(slow)
    assert error.value.error == "wamp.error.timeout"
    assert time.monotonic() - started < 2.5
    assert interrupted.wait(5)


def test_run_timeout_raises_timeout_error(s: SyncSession) -> None:
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        s.run(forever(), timeout=0.2)
    assert time.monotonic() - started < 1.5
    assert cancelled.wait(5)
    assert s.run(asyncio.sleep(0, "done")) == "done"


def test_connect_errors_are_bounded() -> None:
    with pytest.raises(ConnectionError):
        cloverleaf.connect("ws://127.0.0.1:1/ws", "realm1", timeout=2)
    # a server that accepts TCP connections and then says nothing
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises((ConnectionError, TimeoutError)):
            cloverleaf.connect(f"ws://127.0.0.1:{port}/ws", "realm1", timeout=0.5)
        assert time.monotonic() - started < 3.0
    no_threads_left = [t for t in threading.enumerate() if t.name.startswith("cloverleaf-sync")]
    assert no_threads_left == []


def test_abort_is_an_application_error(router: RouterProcess) -> None:
    with pytest.raises(ApplicationError) as error:
        cloverleaf.connect(router.ws_url, "no.such.realm", timeout=5)
    assert error.value.error == "wamp.error.no_such_realm"


def test_leave_stops_the_thread_and_closes(router: RouterProcess) -> None:
    s = cloverleaf.connect(router.rs_url, "realm1", timeout=5, serializer="msgpack")
    assert s.is_connected and s.session_id > 0 and s.details["authrole"] == "anonymous"
    thread = s._thread
    s.leave()
    s.leave()  # idempotent
    assert not thread.is_alive() and s.loop.is_closed() and not s.is_connected
    assert "closed" in repr(s)
    with pytest.raises(RuntimeError, match="closed"):
        s.call("com.example.anything")


def test_context_manager_leaves_on_error(router: RouterProcess) -> None:
    with pytest.raises(KeyError), cloverleaf.connect(router.ws_url, "realm1", timeout=5) as s:
        raise KeyError("boom")
    assert not s.is_connected and not s._thread.is_alive()


def test_import_cloverleaf_stays_light() -> None:
    code = (
        "import sys, cloverleaf; "
        "heavy = [m for m in sys.modules if m.startswith(('cloverleaf.', 'picows', 'asyncio'))]; "
        "print(heavy); assert not heavy, heavy; assert callable(cloverleaf.connect) and cloverleaf.__version__"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
