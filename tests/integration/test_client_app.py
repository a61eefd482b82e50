"""The declarative App (decorators, hooks, start/serve) and ``cloverleaf run``, against a real router."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RouterProcess
from tests.processes import Service

from cloverleaf.client import (
    NO_RECONNECT,
    App,
    ApplicationError,
    CallDetails,
    EventDetails,
    ReconnectPolicy,
    RegisterOptions,
    Session,
    connect,
)
from cloverleaf.node.apps import AppNotFound, load_app


def uri(name: str) -> str:
    return f"com.test.app.{name}.{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def caller(router: RouterProcess) -> AsyncIterator[Session]:
    session = await asyncio.wait_for(connect(router.ws_url, "realm1", reconnect=NO_RECONNECT), 10)
    yield session
    with contextlib.suppress(Exception):
        await asyncio.wait_for(session.leave(timeout=2), 5)


async def test_decorators_register_subscribe_and_hooks(router: RouterProcess, caller: Session) -> None:
    app = App("test-app")
    add, stream, whoami, topic = uri("add"), uri("stream"), uri("whoami"), uri("topic")
    events: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    joined: list[Session] = []
    left: list[str] = []

    @app.register(add)
    def do_add(a: int, b: int) -> int:
        return a + b

    @app.register(stream)
    async def do_stream(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    @app.register(whoami, options=RegisterOptions(disclose_caller=True))
    async def do_whoami(details: CallDetails) -> Any:
        return [details.caller, details.procedure, app.session.session_id]

    @app.subscribe(topic)
    async def on_event(text: str, details: EventDetails, n: int = 0) -> None:
        await events.put((text, n, details.topic))

    @app.on_join
    async def on_join(session: Session) -> None:
        joined.append(session)
        # everything is registered and subscribed before the hooks run
        assert await session.call(add, 1, 1) == 2

    @app.on_leave
    def on_leave(session: Session, reason: str) -> None:
        left.append(reason)

    assert do_add(2, 3) == 5  # decorators return the function unchanged
    assert repr(app) == "App('test-app', 3 procedures, 1 event handlers)"

    session = await asyncio.wait_for(app.start(router.ws_url, "realm1", reconnect=NO_RECONNECT), 10)
    try:
        assert app.session is session and joined == [session]
        assert await caller.call(add, 20, 22) == 42
        assert [r.args async for r in caller.call_progressive(stream, 3)] == [[0], [1], [2], []]
        assert await caller.call(whoami) == [caller.session_id, whoami, session.session_id]
        await caller.publish(topic, "hello", n=7)
        assert await asyncio.wait_for(events.get(), 5) == ("hello", 7, topic)
    finally:
        await session.leave()
    assert left == ["wamp.close.goodbye_and_out"]
    with pytest.raises(ApplicationError) as error:
        await caller.call(add, 1, 2)
    assert error.value.error == "wamp.error.no_such_procedure"


async def test_procedure_declared_twice_is_refused() -> None:
    app = App("twice")

    @app.register("com.example.twice")
    def first() -> None: ...

    with pytest.raises(ValueError, match="declared twice"):
        app.register("com.example.twice")(first)
    # another match policy is another registration
    app.register("com.example.twice", options=RegisterOptions(match="prefix"))(first)


async def test_session_before_start_raises() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = App("idle").session


async def test_start_fails_cleanly_when_a_registration_is_refused(router: RouterProcess, caller: Session) -> None:
    taken = uri("taken")
    await caller.register(taken, lambda: None)
    app = App("clash")
    app.register(taken)(lambda: None)
    hook_ran: list[Session] = []
    app.on_join(hook_ran.append)
    with pytest.raises(ApplicationError) as error:
        await asyncio.wait_for(app.start(router.ws_url, "realm1", reconnect=NO_RECONNECT), 10)
    assert error.value.error == "wamp.error.procedure_already_exists"
    assert hook_ran == []
    with pytest.raises(RuntimeError):
        _ = app.session


async def test_start_refused_connection(router: RouterProcess) -> None:
    app = App("nowhere")
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(app.start("ws://127.0.0.1:1/ws", "realm1", connect_timeout=2), 5)


async def test_join_hooks_run_again_after_a_reconnect(
    router: RouterProcess, caller: Session, caplog: pytest.LogCaptureFixture
) -> None:
    app = App("reconnecting")
    add = uri("add")
    app.register(add)(lambda a, b: a + b)
    joins: asyncio.Queue[int] = asyncio.Queue()

    @app.on_join
    def on_join(session: Session) -> None:
        joins.put_nowait(session.session_id)

    failing_runs: list[int] = []

    @app.on_join
    async def failing_after_reconnect(session: Session) -> None:
        failing_runs.append(session.session_id)
        if len(failing_runs) > 1:
            await session.call(uri("missing"))  # raises ApplicationError: logged, the reconnection stands

    policy = ReconnectPolicy(initial_delay=0.05, jitter=0.0, max_attempts=3, wait_for_connection=5)
    session = await asyncio.wait_for(app.start(router.ws_url, "realm1", reconnect=policy), 10)
    try:
        first = await asyncio.wait_for(joins.get(), 5)
        connection = session._connection
        assert connection is not None
        connection.link.close()  # as if the network dropped
        second = await asyncio.wait_for(joins.get(), 5)
        assert second != first and second == session.session_id
        assert await caller.call(add, 2, 2) == 4  # registered again by the session itself
        await asyncio.sleep(0.3)
        assert joins.empty() and session.session_id == second  # one reconnection, no extra connections
        assert failing_runs == [first, second]
        assert "on_join hook" in caplog.text and "failed after a reconnect" in caplog.text
    finally:
        await session.leave()


async def test_serve_until_stopped(router: RouterProcess, caller: Session) -> None:
    app = App("served")
    ping = uri("ping")
    app.register(ping)(lambda: "pong")
    stop = asyncio.Event()
    serving = asyncio.create_task(app.serve(router.ws_url, "realm1", stop=stop, reconnect=NO_RECONNECT))
    for _ in range(200):
        with contextlib.suppress(ApplicationError):
            if await caller.call(ping) == "pong":
                break
        await asyncio.sleep(0.02)
    stop.set()
    assert await asyncio.wait_for(serving, 5) == 0
    with pytest.raises(ApplicationError):
        await caller.call(ping)

    # stopped before it even joined: nothing stays registered
    stopped = asyncio.Event()
    stopped.set()
    assert await asyncio.wait_for(app.serve(router.ws_url, "realm1", stop=stopped, reconnect=NO_RECONNECT), 5) == 0
    await asyncio.sleep(0.1)
    with pytest.raises(ApplicationError):
        await caller.call(ping)


async def test_serve_exits_1_when_it_cannot_connect_or_loses_the_router(router: RouterProcess) -> None:
    assert await asyncio.wait_for(App("x").serve("ws://127.0.0.1:1/ws", "realm1", connect_timeout=2), 5) == 1
    assert await asyncio.wait_for(App("x").serve(router.ws_url, "no.such.realm"), 5) == 1

    app = App("lost")
    started: asyncio.Queue[Session] = asyncio.Queue()
    app.on_join(started.put_nowait)
    serving = asyncio.create_task(app.serve(router.ws_url, "realm1", reconnect=NO_RECONNECT))
    session = await asyncio.wait_for(started.get(), 5)
    assert session._connection is not None
    session._connection.link.close()  # without reconnection, a lost connection ends the app
    assert await asyncio.wait_for(serving, 5) == 1


# -- cloverleaf run -------------------------------------------------------------------------------

SERVICE_MODULE = """
from cloverleaf.client import App

app = App("adder")


@app.register("{procedure}")
def add(a, b):
    return a + b


@app.on_join
def ready(session):
    print("ready", flush=True)


def create_app():
    return app


not_an_app = 42
"""


def write_module(directory: Path, name: str, procedure: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(SERVICE_MODULE).format(procedure=procedure))


@pytest.mark.parametrize(("target", "sig"), [("app", signal.SIGINT), ("create_app", signal.SIGTERM)])
async def test_cloverleaf_run_serves_until_a_signal(
    router: RouterProcess, caller: Session, tmp_path: Path, target: str, sig: signal.Signals
) -> None:
    procedure = uri("run_add")
    module = f"adder_{uuid.uuid4().hex[:6]}"
    write_module(tmp_path, module, procedure)
    service = Service.python(
        "-m", "cloverleaf", "run", f"{module}:{target}", "--url", router.ws_url, "--realm", "realm1",
        "--serializer", "msgpack", cwd=tmp_path,
    )  # fmt: skip
    try:
        await asyncio.to_thread(service.wait_for, "ready", 10)
        assert await caller.call(procedure, 40, 2) == 42
        assert await asyncio.to_thread(service.stop, sig, 10) == 0
    finally:
        service.kill()
    assert "leaving" in service.output and "Traceback" not in service.output
    with pytest.raises(ApplicationError):
        await caller.call(procedure, 1, 2)


def test_cloverleaf_run_bad_module_is_one_clear_line(tmp_path: Path) -> None:
    service = Service.python("-m", "cloverleaf", "run", "no_such_module_here:app", "--url", "ws://127.0.0.1:1/ws",
                             cwd=tmp_path)  # fmt: skip
    assert service.wait(10) == 1
    assert service.lines == ["cloverleaf run: cannot import module 'no_such_module_here': no module named "
                             "'no_such_module_here'"]  # fmt: skip


def test_load_app_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = f"adder_{uuid.uuid4().hex[:6]}"
    write_module(tmp_path, module, "com.example.add")
    (tmp_path / f"{module}_broken.py").write_text("import no_such_dependency_here\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        assert isinstance(load_app(module), App)  # ATTRIBUTE defaults to app
        assert load_app(f"{module}:create_app") is load_app(f"{module}:app")
        for spec, message in [
            ("no_such_module_here", "cannot import module 'no_such_module_here'"),
            ("no_such_package_here.sub:app", "no module named 'no_such_package_here'"),
            (f"{module}:nope", f"module '{module}' has no attribute 'nope'"),
            (f"{module}:app.nope", "has no attribute 'app.nope'"),
            (f"{module}:not_an_app", "is not a cloverleaf.client.App (or a function returning one) but a 'int'"),
            (f"{module}:App", "but a 'type'"),
            (f"{module}.py", "is not MODULE[:ATTRIBUTE]"),
            (":app", "is not MODULE[:ATTRIBUTE]"),
        ]:
            with pytest.raises(AppNotFound, match=re.escape(message)):
                load_app(spec)
        # a module that exists but fails to import is its own bug: the real exception propagates
        with pytest.raises(ModuleNotFoundError, match="no_such_dependency_here"):
            load_app(f"{module}_broken")
    finally:
        for name in [m for m in sys.modules if m.startswith(module)]:
            del sys.modules[name]
