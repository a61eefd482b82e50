"""Client reconnection against a real router that is killed and started again on the same ports."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import free_port, router_config, wait_for_port

from cloverleaf.client import (
    NO_RECONNECT,
    ApplicationError,
    NotConnected,
    PublishOptions,
    ReconnectPolicy,
    Session,
    TransportLost,
    connect,
)

FAST = ReconnectPolicy(initial_delay=0.1, max_delay=0.5)


class RestartableRouter:
    """A router subprocess on ports chosen once: kill() it with SIGKILL and start() it again with the
    very same command, config file and ports (the Unix socket file it leaves behind is stale)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ws_port, self.rs_port = free_port(), free_port()
        self.unix_path = str(directory / "router.sock")
        self.config_path = directory / "node.yaml"
        self.config_path.write_text(yaml.safe_dump(router_config(self.ws_port, self.rs_port, self.unix_path)))
        self.log_path = directory / "router.log"
        self.command = [sys.executable, "-m", "cloverleaf", "start", "--config", str(self.config_path)]
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def url(self, transport: str) -> str:
        return {
            "ws": f"ws://127.0.0.1:{self.ws_port}/ws",
            "rs": f"rs://127.0.0.1:{self.rs_port}",
            "unix": f"unix://{self.unix_path}",
        }[transport]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        self.starts += 1
        try:
            wait_for_port(self.ws_port)
            wait_for_port(self.rs_port)
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.socket(socket.AF_UNIX) as sock:
                        sock.settimeout(0.2)
                        sock.connect(self.unix_path)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"nothing listens on {self.unix_path}") from None
                    time.sleep(0.02)
        except TimeoutError:
            self.process.kill()
            self.process.wait(5)
            raise RuntimeError(f"router did not start (start #{self.starts}):\n{self.log()}") from None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        """Graceful: SIGINT, the router says GOODBYE (wamp.close.system_shutdown) to every session."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@pytest.fixture(scope="module")
def module_router() -> Iterator[RestartableRouter]:
    directory = Path(tempfile.mkdtemp(prefix="clv-rc-"))  # short: a Unix socket path has ~100 bytes at most
    router = RestartableRouter(directory)
    try:
        yield router
    finally:
        router.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def restartable(module_router: RestartableRouter) -> RestartableRouter:
    """The module's router, running (tests kill, stop and start it; one subprocess start per test is enough)."""
    if not module_router.running:
        module_router.start()
    return module_router


@pytest.fixture
async def cleanup() -> AsyncIterator[list[Session]]:
    """Sessions to leave at the end of the test, whatever happened."""
    sessions: list[Session] = []
    yield sessions
    for session in sessions:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.leave(timeout=1), 3)


@pytest.fixture
async def tasks() -> AsyncIterator[Callable[[Any], asyncio.Task[Any]]]:
    """create_task() whose tasks are always awaited at the end, so that a test failing half-way never
    leaves a "Task exception was never retrieved" to be logged from a finalizer at some random moment."""
    created: list[asyncio.Task[Any]] = []

    def create(coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        created.append(task)
        return task

    yield create
    for task in created:
        task.cancel()
    await asyncio.wait_for(asyncio.gather(*created, return_exceptions=True), 5)


async def within(awaitable: Any, timeout: float = 5.0) -> Any:
    return await asyncio.wait_for(awaitable, timeout)


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


class Probe:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def __call__(self) -> str:
        self.started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.outcome.set_result("cancelled")
            raise
        return "finished"


# -- the whole story on each transport --------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["ws", "rs", "unix"])
async def test_reconnect_restores_registrations_and_subscriptions(
    restartable: RestartableRouter, cleanup: list[Session], tasks: Any, transport: str
) -> None:
    client = Session(restartable.url(transport), "realm1", serializer="msgpack", reconnect=FAST)
    cleanup.append(client)
    joins: list[int] = []
    leaves: list[str] = []

    async def on_join(session: Session) -> None:
        joins.append(session.session_id)

    client.on_join(on_join)
    client.on_leave(lambda _session, reason: leaves.append(reason))
    await within(client.start())
    first_session = client.session_id
    assert joins == [first_session]

    probe = Probe()
    slow = await client.register("com.rc.slow", probe)
    add = await client.register("com.rc.add", lambda a, b: a + b)
    echo = await client.register("com.rc.echo", lambda value: value)
    events: list[Any] = []
    subscription = await client.subscribe("com.rc.topic", events.append)

    # a call in flight when the router dies fails with TransportLost; the callee side is canceled too
    inflight = tasks(client.call("com.rc.slow"))
    await within(probe.started.wait())
    await asyncio.to_thread(restartable.kill)
    with pytest.raises(TransportLost):
        await within(inflight)
    assert await within(probe.outcome) == "cancelled"
    await wait_until(lambda: not client.is_connected, what="the loss to be noticed")
    assert len(leaves) == 1 and client.session_id == 0
    assert not leaves[0].startswith("wamp.close"), leaves  # no GOODBYE: the transport just went away

    # requests made while disconnected wait for the connection (wait_for_connection: 10 s by default)
    held_publish = tasks(
        client.publish("com.rc.topic", "held", options=PublishOptions(acknowledge=True, exclude_me=False))
    )
    held_call = tasks(client.call("com.rc.echo", "hello"))
    await asyncio.sleep(0.3)
    assert not held_publish.done() and not held_call.done()
    await asyncio.to_thread(restartable.start)
    assert (await within(held_publish, 10)).id > 0

    await wait_until(lambda: len(joins) == 2, what="on_join to run again")
    assert client.session_id not in (0, first_session) and joins[1] == client.session_id
    assert len(leaves) == 1
    assert all(r.active and r.id for r in (slow, add, echo, subscription))

    # another client sees the restored registrations and subscription
    async with await within(connect(restartable.url("ws"), "realm1", reconnect=NO_RECONNECT)) as other:
        assert await within(other.call("com.rc.add", 2, 3)) == 5
        assert await within(other.call("com.rc.echo", b"\x00bin")) == b"\x00bin"
        await within(other.publish("com.rc.topic", "after", options=PublishOptions(acknowledge=True)))
        await wait_until(lambda: "after" in events, what="the event from the other client")
        with pytest.raises(ApplicationError) as info:  # one registration each: nothing was doubled
            await within(other.register("com.rc.add", lambda a, b: 0))
        assert info.value.error == "wamp.error.procedure_already_exists"

    # last, what was held during the outage must have reached this client's restored procedure and
    # subscription: the held PUBLISH was acknowledged, but was its event delivered to us?
    assert await within(held_call, 2) == "hello"
    assert events == ["held", "after"]


async def test_held_call_to_own_procedure(restartable: RestartableRouter, cleanup: list[Session], tasks: Any) -> None:
    """One procedure, one call made during the outage: the router answers REGISTERED and, right behind it,
    sends the INVOCATION for the held call (often in the same read)."""
    client = Session(restartable.url("rs"), "realm1", reconnect=FAST)
    cleanup.append(client)
    await within(client.start())
    await client.register("com.rc.only", lambda: "only")
    await asyncio.to_thread(restartable.kill)
    await wait_until(lambda: not client.is_connected, what="the loss to be noticed")
    held = tasks(client.call("com.rc.only"))
    await asyncio.to_thread(restartable.start)
    try:
        result = await within(held, 10)
    except ApplicationError as exc:
        result = exc.error
    assert result == "only"


async def test_held_calls_reach_every_restored_procedure(
    restartable: RestartableRouter, cleanup: list[Session], tasks: Any
) -> None:
    """Requests held while disconnected must not overtake the re-registration of this session's own
    procedures: each of several procedures is callable by a call made during the outage."""
    client = Session(restartable.url("ws"), "realm1", reconnect=FAST)
    cleanup.append(client)
    await within(client.start())
    names = [f"com.rc.proc{i}" for i in range(5)]
    for i, name in enumerate(names):
        await client.register(name, lambda i=i: i)
    await asyncio.to_thread(restartable.kill)
    await wait_until(lambda: not client.is_connected, what="the loss to be noticed")
    held = [tasks(client.call(name)) for name in names]
    await asyncio.to_thread(restartable.start)
    results = await within(asyncio.gather(*held, return_exceptions=True), 10)
    assert results == list(range(5)), [getattr(r, "error", r) for r in results]


async def test_graceful_router_shutdown_then_reconnect(restartable: RestartableRouter, cleanup: list[Session]) -> None:
    client = Session(restartable.url("rs"), "realm1", serializer="cbor", reconnect=FAST)
    cleanup.append(client)
    leaves: list[str] = []
    client.on_leave(lambda _s, reason: leaves.append(reason))
    await within(client.start())
    await client.register("com.rc.ping", lambda: "pong")
    await asyncio.to_thread(restartable.stop)  # SIGINT: the router says GOODBYE first
    await wait_until(lambda: bool(leaves), what="the session to end")
    assert leaves == ["wamp.close.system_shutdown"]
    await asyncio.to_thread(restartable.start)
    await wait_until(lambda: client.is_connected, timeout=10, what="the reconnection")
    assert await within(client.call("com.rc.ping", options=None)) == "pong"


async def test_on_join_failure_after_reconnect_does_not_open_another_connection(
    restartable: RestartableRouter, cleanup: list[Session], caplog: pytest.LogCaptureFixture
) -> None:
    """An on_join callback that fails after a reconnect (here: its call gets wamp.error.no_such_procedure)
    is the application's problem; the client must not treat the join as failed and connect once more
    while the joined connection stays open (which would leak a session and its registrations)."""
    caplog.set_level(logging.INFO, logger="cloverleaf.client")
    client = Session(restartable.url("ws"), "realm1", reconnect=FAST)
    cleanup.append(client)
    joins: list[int] = []

    async def on_join(session: Session) -> None:
        joins.append(session.session_id)
        if len(joins) == 2:
            await session.call("com.rc.nobody_registered_this")

    client.on_join(on_join)
    await within(client.start())
    await client.register("com.rc.joined", lambda: "ok")
    await asyncio.to_thread(restartable.restart)
    await wait_until(lambda: len(joins) >= 2, timeout=10, what="the reconnection")
    await asyncio.sleep(0.8)  # room for the bug: further reconnect attempts (0.1 to 0.5 s apart)
    assert len(joins) == 2, f"joined {len(joins)} times: {joins}"
    async with await within(connect(restartable.url("rs"), "realm1", reconnect=NO_RECONNECT)) as other:
        assert await within(other.call("com.rc.joined")) == "ok"
        count = await within(other.call("wamp.session.count"))
        assert count == 2, f"the router has {count} sessions, expected this client's one and the checker's"


# -- waiting or failing fast while disconnected ---------------------------------------------------------------


async def test_without_wait_for_connection_requests_fail_fast(
    restartable: RestartableRouter, cleanup: list[Session]
) -> None:
    policy = ReconnectPolicy(initial_delay=0.1, max_delay=0.5, wait_for_connection=None)
    client = await within(connect(restartable.url("ws"), "realm1", reconnect=policy))
    cleanup.append(client)
    await client.register("com.rc.ping", lambda: "pong")
    await asyncio.to_thread(restartable.kill)
    await wait_until(lambda: not client.is_connected, what="the loss to be noticed")
    for request in (client.call("com.rc.ping"), client.publish("com.rc.t"), client.subscribe("com.rc.t", print)):
        started = time.monotonic()
        with pytest.raises(NotConnected):
            await within(request)
        assert time.monotonic() - started < 0.2
    assert client._subscriptions == []  # the failed subscribe is not restored later
    # reconnection still happens in the background
    await asyncio.to_thread(restartable.start)
    await wait_until(lambda: client.is_connected, timeout=10, what="the reconnection")
    assert await within(client.call("com.rc.ping")) == "pong"


async def test_wait_for_connection_is_bounded(restartable: RestartableRouter, cleanup: list[Session]) -> None:
    policy = ReconnectPolicy(initial_delay=0.1, max_delay=0.2, wait_for_connection=0.4)
    client = await within(connect(restartable.url("unix"), "realm1", reconnect=policy))
    cleanup.append(client)
    await asyncio.to_thread(restartable.kill)
    await wait_until(lambda: not client.is_connected, what="the loss to be noticed")
    started = time.monotonic()
    with pytest.raises(NotConnected):
        await within(client.call("com.rc.anything"))
    assert 0.35 <= time.monotonic() - started < 1.5


# -- turning reconnection off or limiting it ------------------------------------------------------------------


async def test_reconnect_disabled(restartable: RestartableRouter, cleanup: list[Session]) -> None:
    client = await within(connect(restartable.url("ws"), "realm1", reconnect=NO_RECONNECT))
    # enabled=False, with wait_for_connection left at its default (10 s): fails fast as well
    client2 = await within(
        connect(restartable.url("rs"), "realm1", reconnect=ReconnectPolicy(enabled=False, initial_delay=0.05))
    )
    cleanup.extend((client, client2))
    leaves: list[str] = []
    client.on_leave(lambda _s, reason: leaves.append(reason))
    await asyncio.to_thread(restartable.restart)
    await wait_until(lambda: bool(leaves) and not client2.is_connected, what="the sessions to end")
    await asyncio.sleep(0.6)  # a reconnecting client (first delay 0.05 s) would be back by now
    for session in (client, client2):
        assert not session.is_connected and session._reconnector is None
        started = time.monotonic()
        with pytest.raises(NotConnected):
            await within(session.call("com.rc.anything"), 1)
        assert time.monotonic() - started < 0.2


async def test_max_attempts(
    restartable: RestartableRouter, cleanup: list[Session], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cloverleaf.client")
    policy = ReconnectPolicy(initial_delay=0.05, max_delay=0.1, jitter=0.0, max_attempts=3)
    client = await within(connect(restartable.url("ws"), "realm1", reconnect=policy))
    cleanup.append(client)
    await asyncio.to_thread(restartable.kill)
    await wait_until(lambda: client._reconnector is not None and client._reconnector.done(), what="giving up")
    failures = [r.getMessage() for r in caplog.records if "failed (attempt" in r.getMessage()]
    assert len(failures) == 3, failures
    assert [f"(attempt {i})" in line for i, line in enumerate(failures, 1)] == [True] * 3
    assert any("giving up reconnecting" in r.getMessage() and "after 3 attempts" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    # a router coming back later is not noticed any more
    await asyncio.to_thread(restartable.start)
    await asyncio.sleep(0.5)
    assert not client.is_connected


async def test_requests_fail_fast_after_giving_up(restartable: RestartableRouter, cleanup: list[Session]) -> None:
    """Once max_attempts are used up no connection will ever come: a request must not sit out
    wait_for_connection (10 s by default) before failing with NotConnected."""
    policy = ReconnectPolicy(initial_delay=0.05, max_delay=0.1, jitter=0.0, max_attempts=2)
    client = await within(connect(restartable.url("ws"), "realm1", reconnect=policy))
    cleanup.append(client)
    await asyncio.to_thread(restartable.kill)
    await wait_until(lambda: client._reconnector is not None and client._reconnector.done(), what="giving up")
    started = time.monotonic()
    with pytest.raises(NotConnected):
        await within(client.call("com.rc.anything"), 2)
    assert time.monotonic() - started < 1


# -- the backoff itself ------------------------------------------------------------------------------------


def test_delay_backoff_and_jitter_bounds() -> None:
    policy = ReconnectPolicy(initial_delay=0.1, max_delay=0.5, multiplier=2.0, jitter=0.2)
    rng = random.Random(1234)
    for attempt in range(1, 30):
        base = min(0.5, 0.1 * 2.0 ** (attempt - 1))
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(base * 0.8 - 1e-12 <= d <= base * 1.2 + 1e-12 for d in delays), (attempt, min(delays), max(delays))
        assert max(delays) - min(delays) > base * 0.2  # jitter really spreads the delays
    # attempt 0 (or less) counts as the first
    assert 0.08 <= policy.delay(0, rng) <= 0.12
    # without jitter the delays are exact: 0.1, 0.2, 0.4, then capped at 0.5
    exact = ReconnectPolicy(initial_delay=0.1, max_delay=0.5, jitter=0.0)
    assert [exact.delay(a, rng) for a in range(1, 6)] == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    # jitter above 1 never gives a negative delay
    wild = ReconnectPolicy(initial_delay=1.0, max_delay=1.0, jitter=3.0)
    assert all(wild.delay(1, rng) >= 0 for _ in range(200))
    # the default policy stays within its documented bounds
    default = ReconnectPolicy()
    assert 0.4 <= default.delay(1, rng) <= 0.6
    assert default.delay(40, rng) <= 36.0


def test_delay_after_very_many_attempts() -> None:
    """A reconnect loop with max_attempts=None runs forever; after ~1025 attempts (about 8.5 hours at
    the default 30 s cap) multiplier ** attempt no longer fits in a float."""
    rng = random.Random(7)
    policy = ReconnectPolicy(initial_delay=0.5, max_delay=30.0)
    for attempt in (1100, 5000, 10**6):
        assert 24.0 <= policy.delay(attempt, rng) <= 36.0
