"""Embedded components: Apps run inside the node over in-memory links, and supervised guest programs.

In-process tests drive the in-memory link against a real Router (and a Node without sockets where
that suffices); the rest runs a real router process whose node folder holds the components.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RouterProcess, start_router

from cloverleaf.client import NO_RECONNECT, ApplicationError, ReconnectPolicy, Session, connect
from cloverleaf.node.components import check_components, in_memory_opener, wamp_url
from cloverleaf.node.config import ClassComponent, ConfigError, NodeConfig, parse_config
from cloverleaf.node.node import Node
from cloverleaf.router.internal import FixedRoleAuthenticator, TrustedAuthenticator
from cloverleaf.router.router import Router
from cloverleaf.router.session import SessionOptions

REALMS: list[dict[str, Any]] = [
    {"name": "realm1", "roles": [
        {"name": "anonymous"},
        {"name": "backend",
         "permissions": [{"uri": "com.comp.role.", "match": "prefix", "allow": ["register", "call"]}]},
    ]},
]  # fmt: skip
TRANSPORTS: list[dict[str, Any]] = [{"type": "websocket", "endpoint": {"type": "tcp", "port": 0}}]


def _config(components: list[dict[str, Any]] | None = None, folder: Path | None = None) -> NodeConfig:
    config = parse_config({"realms": REALMS, "transports": TRANSPORTS, "components": components or []})
    if folder is not None:
        config._base_dir = folder
    return config


@pytest.fixture
def memory_router() -> Router:
    """A router in this process (built by a Node that never listens)."""
    return Node(_config()).router


async def _in_memory(router: Router, *, role: str | None = None, authid: str = "test",
                     reconnect: ReconnectPolicy = NO_RECONNECT) -> Session:  # fmt: skip
    authenticator = TrustedAuthenticator(authid) if role is None else FixedRoleAuthenticator(authid, role)

    class Method:  # the client's side: offered in HELLO, never challenged
        method = authenticator.method

        def __init__(self) -> None:
            self.authid: str | None = authid

        def authextra(self) -> dict[str, Any]:
            return {}

        def on_challenge(self, extra: dict[str, Any]) -> tuple[str, dict[str, Any]]:
            raise AssertionError("never challenged")

    opener = in_memory_opener(router, SessionOptions([authenticator]), f"test:{authid}")
    return await asyncio.wait_for(connect("in-memory:test", "realm1", opener=opener, authenticators=[Method()],
                                          reconnect=reconnect, serializer="json"), 5)  # fmt: skip


async def _until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)


# -- the in-memory link ----------------------------------------------------------------------------


async def test_in_memory_call_publish_in_order_and_leave(memory_router: Router) -> None:
    callee = await _in_memory(memory_router, authid="callee")
    caller = await _in_memory(memory_router, authid="caller")
    assert callee.details["authrole"] == "cloverleaf.trusted" and callee.details["authid"] == "callee"
    await callee.register("com.comp.add", lambda a, b: a + b)
    assert await caller.call("com.comp.add", 2, 3) == 5
    received: list[int] = []
    await callee.subscribe("com.comp.numbers", received.append)
    for n in range(200):  # ordered, and the router's queue drains from the loop, not inside publish
        await caller.publish("com.comp.numbers", n)
    await _until(lambda: len(received) == 200)
    assert received == list(range(200))
    # a handler sending while its message is being delivered: answered on a later pass
    await callee.register("com.comp.chain", lambda n: n)
    assert await asyncio.gather(*(caller.call("com.comp.chain", n) for n in range(50))) == list(range(50))
    await caller.leave()
    await callee.leave()
    await _until(lambda: not memory_router.sessions)


async def test_in_memory_role_is_authorized_like_a_client(memory_router: Router) -> None:
    session = await _in_memory(memory_router, role="backend", authid="limited")
    assert session.details["authrole"] == "backend" and session.details["authid"] == "limited"
    await session.register("com.comp.role.echo", lambda x: x)
    with pytest.raises(ApplicationError) as refused:
        await session.register("com.other.nope", lambda: None)
    assert refused.value.error == "wamp.error.not_authorized"
    await session.leave()
    with pytest.raises(ApplicationError) as aborted:
        await _in_memory(memory_router, role="nosuch")
    assert aborted.value.error == "wamp.error.no_such_role"
    await _until(lambda: not memory_router.sessions)


async def test_in_memory_reconnects_when_the_router_closes_it(memory_router: Router) -> None:
    session = await _in_memory(memory_router, authid="again", reconnect=ReconnectPolicy(initial_delay=0.01, jitter=0))
    await session.register("com.comp.again", lambda: "here")
    first = session.session_id
    (router_session,) = [s for s in memory_router.sessions if s.session_id == first]
    router_session.abort("wamp.error.test", "closed by the test")  # the router drops it
    await _until(lambda: session.is_connected and session.session_id not in (0, first))
    caller = await _in_memory(memory_router, authid="caller")
    assert await caller.call("com.comp.again") == "here"  # registered again on the new session
    await caller.leave()
    await session.leave()


async def test_shutdown_says_goodbye_over_the_in_memory_link(memory_router: Router) -> None:
    session = await _in_memory(memory_router)
    memory_router.shutdown()
    assert await asyncio.wait_for(session.wait_closed(), 5) == "wamp.close.system_shutdown"
    await _until(lambda: not memory_router.sessions)


# -- configuration -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("component", "expected"), [
    ({"type": "app", "app": "backend:app", "realm": "realm1", "colour": 1},
     "components[0].colour: unknown key (expected one of: app, authid, name, realm, role, start_timeout, type)"),
    ({"type": "app", "app": "backend.py", "realm": "realm1"}, "components[0].app: expected MODULE[:ATTRIBUTE]"),
    ({"type": "app", "app": "backend", "realm": "nowhere"},
     "expected components[0].realm: one of the configured realms"),
    ({"type": "guest", "executable": "x", "env": {"N": 1}}, 'components[0].env["N"]: Input should be a valid string'),
    ({"type": "guest", "executable": "x", "restart": {"initial_delay": 5, "max_delay": 1}},
     "components[0].restart: expected max_delay: at least initial_delay"),
    ({"type": "guest"}, "components[0].executable: required key is missing"),
    ({"type": "container"},
     "components[0].type: unknown type 'container' (expected one of: app, guest, class, http-subscriber, "
     "http-callee)"),
    ({"type": "class", "classname": "backend", "realm": "realm1"}, "components[0].classname: expected MODULE.CLASS"),
    ({"type": "class", "classname": "b.B", "realm": "nowhere"}, "expected components[0].realm: one of the configured"),
    ({"type": "class", "classname": "b.B", "realm": "realm1", "transport": {"type": "mqtt", "url": "x"}},
     "components[0].transport.type"),
    ({"type": "class", "classname": "b.B", "realm": "realm1", "role": "backend",
      "transport": {"type": "websocket", "url": "ws://127.0.0.1:8080/ws"}},
     "components[0]: expected role: only without a transport"),
])  # fmt: skip
def test_config_errors_name_the_key(component: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        _config([component])
    assert expected in str(error.value), str(error.value)


def test_config_defaults_and_names() -> None:
    config = _config([
        {"type": "app", "app": "backend:app", "realm": "realm1"},
        {"type": "guest", "executable": "python3", "arguments": ["worker.py", "-v"]},
    ])  # fmt: skip
    app, guest = config.components
    assert app.label == "backend:app" and app.role is None and app.authid is None
    assert guest.label == "python3 worker.py" and guest.stop_timeout == 5.0 and guest.restart.policy == "always"
    with pytest.raises(ConfigError, match="a name of its own"):
        _config([{"type": "guest", "executable": "w"}, {"type": "guest", "executable": "w"}])
    [cls, remote] = _config([
        {"type": "class", "classname": "backend.Backend", "realm": "realm1"},
        # over a transport of its own it may join another router's realm; Autobahn's other keys pass
        {"type": "class", "classname": "backend.Backend", "realm": "elsewhere", "name": "remote",
         "transport": {"type": "rawsocket", "url": "rs://10.0.0.1:8081", "max_retries": 3}},
    ]).components  # fmt: skip
    assert isinstance(cls, ClassComponent) and isinstance(remote, ClassComponent)
    assert (cls.label, cls.role, cls.authid, cls.extra, cls.restart.policy) == (
        "backend.Backend", "anonymous", None, None, "always")
    assert remote.transport is not None and remote.transport.model_dump() == {
        "type": "rawsocket", "url": "rs://10.0.0.1:8081", "max_retries": 3}


def test_the_documented_components_example_is_a_valid_config() -> None:
    """docs/configuration.md's components block, with every key it shows, is what the node accepts."""
    import re

    import yaml

    text = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if b.startswith("components:\n  - type: app")]
    config = _config(yaml.safe_load(block)["components"])
    assert [type(c).__name__ for c in config.components] == ["AppComponent", "GuestComponent", "ClassComponent"]


def test_check_reports_missing_modules_and_programs(tmp_path: Path) -> None:
    (tmp_path / "present_module_for_check.py").write_text("")
    config = _config([
        {"type": "app", "app": "present_module_for_check:app", "realm": "realm1"},
        {"type": "app", "app": "absent_module_for_check:app", "realm": "realm1"},
        {"type": "guest", "executable": "no-such-program-anywhere", "cwd": "missing-dir"},
        {"type": "guest", "executable": sys.executable},
    ], tmp_path)  # fmt: skip
    problems = check_components(config)
    assert len(problems) == 3, problems
    assert problems[0].startswith("components[1].app: cannot find module 'absent_module_for_check'")
    assert problems[1] == "components[2].executable: executable 'no-such-program-anywhere' not found on PATH"
    assert problems[2].startswith("components[2].cwd: working directory")


def test_check_reports_what_class_components_need(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "txcheck_backend.py").write_text("from autobahn.twisted.wamp import ApplicationSession\n")
    (tmp_path / "aiocheck_backend.py").write_text("from autobahn.asyncio.wamp import ApplicationSession\n")
    config = _config([
        {"type": "class", "classname": "txcheck_backend.Backend", "realm": "realm1", "pythonpath": ["lib"]},
        {"type": "class", "classname": "aiocheck_backend.Backend", "realm": "realm1"},
        {"type": "class", "classname": "absent_check_backend.Backend", "realm": "realm1", "name": "absent"},
        {"type": "class", "classname": "aiocheck_backend.Backend", "realm": "realm1", "name": "lost", "cwd": "gone"},
    ], tmp_path)  # fmt: skip
    problems = check_components(config)
    assert len(problems) == 2, problems
    assert problems[0].startswith("components[2].classname: cannot find module 'absent_check_backend' (in "
                                  f"{tmp_path} or on sys.path)")  # fmt: skip
    assert problems[1].startswith("components[3].cwd: working directory")
    # what this Python lacks: Twisted for a Twisted component, Autobahn for any
    monkeypatch.setitem(sys.modules, "twisted.internet", None)  # (find_spec answers None for these)
    assert check_components(config)[0] == (
        f"components[0].classname: txcheck_backend.Backend is written for Twisted, which is not installed in "
        f"{sys.executable} (pip install twisted there)")
    monkeypatch.setitem(sys.modules, "autobahn.wamp", None)
    assert check_components(config)[0] == (
        f"components[0]: Autobahn is not installed in {sys.executable}, which runs class components "
        "(pip install autobahn there)")


def test_check_reads_a_class_components_own_transport_url_as_autobahn_will(tmp_path: Path) -> None:
    (tmp_path / "aiourl_backend.py").write_text("from autobahn.asyncio.wamp import ApplicationSession\n")
    good = [{"type": "websocket", "url": "wss://router.example.com/ws"},
            {"type": "rawsocket", "url": "rs://127.0.0.1:9000"},
            {"type": "rawsocket", "url": "ws://127.0.0.1:9000"},  # (Autobahn takes its host and port)
            {"type": "rawsocket", "url": "rs://ignored", "endpoint": {"type": "unix", "path": "/tmp/r.sock"}}]
    bad = [{"type": "websocket", "url": "rs://127.0.0.1:9000"},
           {"type": "websocket", "url": "ws:/127.0.0.1/ws"},
           {"type": "rawsocket", "url": "http://127.0.0.1:9000"}]
    config = _config([{"type": "class", "classname": "aiourl_backend.Backend", "realm": "realm1",
                       "name": f"c{index}", "transport": transport}
                      for index, transport in enumerate([*good, *bad])], tmp_path)  # fmt: skip
    problems = check_components(config)
    assert problems == [
        "components[4].transport.url: invalid WebSocket URL: protocol scheme 'rs' is not for WebSocket "
        "(a websocket transport takes ws:// or wss:// URLs)",
        "components[5].transport.url: invalid WebSocket URL: missing hostname "
        "(a websocket transport takes ws:// or wss:// URLs)",
        "components[6].transport.url: invalid WebSocket URL: protocol scheme 'http' is not for WebSocket "
        "(a rawsocket transport takes rs://, rss:// or ws:// URLs)",
    ], problems


def test_guest_url_prefers_plain_websocket() -> None:
    web = parse_config({"realms": REALMS, "transports": [
        {"type": "web", "endpoint": {"port": 8080},
         "paths": {"/": {"type": "nodeinfo"}, "/wamp": {"type": "websocket"}}},
    ]})  # fmt: skip
    assert wamp_url(["http://127.0.0.1:8080"], web) == "ws://127.0.0.1:8080/wamp"
    assert wamp_url(["rss://127.0.0.1:1", "unix:///tmp/s", "rs://127.0.0.1:2"], web) == "rs://127.0.0.1:2"
    assert wamp_url([], web) is None


# -- a Node in this process ----------------------------------------------------------------------------


async def test_node_components_in_process(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Apps start after the transports, in order; one that hangs or fails is left out, logged once."""
    module = f"inproc_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent("""
        import asyncio
        from cloverleaf.client import App

        app = App("inproc")

        @app.register("com.comp.inproc.hello")
        def hello(name):
            return f"hello {name}"

        hangs = App("hangs")

        @hangs.on_join
        async def forever(session):
            await asyncio.Event().wait()

        def second():  # a factory: a new App each time
            other = App("second")

            @other.on_join
            async def uses_the_first(session):
                other.greeting = await session.call("com.comp.inproc.hello", "second")

            return other
    """))
    caplog.set_level(logging.INFO, logger="cloverleaf")
    config = _config([
        {"type": "app", "app": module, "realm": "realm1", "name": "first"},
        {"type": "app", "app": f"{module}:hangs", "realm": "realm1", "start_timeout": 0.3},
        {"type": "app", "app": f"{module}:second", "realm": "realm1", "name": "second"},
    ], tmp_path)  # fmt: skip
    node = Node(config)
    await node.start()
    try:
        assert node.components is not None
        first, hangs, second = node.components.apps
        assert first.app is not None and hangs.app is None and second.app is not None
        assert second.app.greeting == "hello second"  # type: ignore[attr-defined]
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == [f"app {module}:hangs: cannot start: not started within 0.3s (an on_join hook must return: "
                          "run long work in a task)"]  # fmt: skip
        session = await connect(node.addresses[0], "realm1", reconnect=NO_RECONNECT)
        assert await session.call("com.comp.inproc.hello", "ws") == "hello ws"
        await session.leave()
    finally:
        await node.stop()
    assert not node.router.sessions and first.app is None
    assert "stopped (0 sessions closed)" in caplog.text  # the apps had left before the router's GOODBYE


async def test_a_class_component_without_a_socket_is_left_out(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """No folder for its private socket (a full or read-only temporary folder): that component is
    reported once and left out; the node runs on."""
    import tempfile

    def no_folder(*args: Any, **kwargs: Any) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "mkdtemp", no_folder)
    caplog.set_level(logging.INFO, logger="cloverleaf")
    node = Node(_config([{"type": "class", "classname": "nowhere.Backend", "realm": "realm1"}], tmp_path))
    await node.start()
    try:
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == ["class nowhere.Backend: cannot start: no socket for it: No space left on device "
                          "(not retried)"]
        assert node.components is not None and node.components.classes[0].process is None
        session = await connect(node.addresses[0], "realm1", reconnect=NO_RECONNECT)
        await session.leave()
    finally:
        await node.stop()


# -- a router process with components ------------------------------------------------------------------

BACKEND = """
    import asyncio
    from cloverleaf.client import App

    app = App("backend")
    counter = {"task": None}

    @app.register("com.comp.add")
    def add(a, b):
        return a + b

    @app.register("com.comp.whoami")
    def whoami():
        return [app.session.details["authid"], app.session.details["authrole"]]

    @app.on_join
    def start_counting(session):
        async def count():
            n = 0
            while True:
                n += 1
                await session.publish("com.comp.counter", n)
                await asyncio.sleep(0.05)
        counter["task"] = asyncio.get_running_loop().create_task(count())

    @app.on_leave
    def stop_counting(session, reason):
        if counter["task"] is not None:
            counter["task"].cancel()
"""

LIMITED = """
    from cloverleaf.client import App

    app = App("limited")

    @app.register("com.comp.role.whoami")
    def whoami():
        return [app.session.details["authid"], app.session.details["authrole"]]

    refused = App("refused")

    @refused.register("com.other.procedure")  # not allowed for role backend
    def nope():
        return None
"""

BROKEN = """
    from cloverleaf.client import App

    app = App("broken")

    @app.on_join
    def explode(session):
        raise RuntimeError("kaboom in on_join")
"""

# Exits with 1 on its first run; on the next it registers a procedure and stays until SIGTERM.
WORKER = """
    import asyncio, os, signal, sys
    from cloverleaf.client import connect

    runs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs.txt")
    with open(runs, "a") as f:
        f.write(f"{os.getpid()}\\n")
    with open(runs) as f:
        run = len(f.read().split())
    print(f"worker run {run}, tag {os.environ.get('WORKER_TAG')}, cwd {os.path.basename(os.getcwd())}")
    if run == 1:
        print("first run: failing on purpose", file=sys.stderr)
        sys.exit(1)

    async def main():
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        session = await connect(os.environ["CLOVERLEAF_URL"], "realm1")
        await session.register("com.comp.guest.pid", os.getpid)
        print("worker ready")
        await stop.wait()
        await session.leave()
        print("worker left cleanly")

    asyncio.run(main())
"""


CLASS_BACKEND = """
    import os
    from autobahn.asyncio.wamp import ApplicationSession

    class Backend(ApplicationSession):
        \"\"\"An Autobahn class component, as Crossbar runs them.\"\"\"

        async def onJoin(self, details):
            extra = self.config.extra

            def who():
                return [details.authid, details.authrole, extra, os.getpid()]

            await self.register(who, "com.comp.role.classwho")
            print("class backend joined")
"""


def _write(folder: Path, name: str, source: str) -> None:
    (folder / name).write_text(textwrap.dedent(source))


def _node_folder(folder: Path) -> dict[str, Any]:
    _write(folder, "backend.py", BACKEND)
    _write(folder, "limited.py", LIMITED)
    _write(folder, "broken.py", BROKEN)
    (folder / "guest").mkdir()
    _write(folder / "guest", "worker.py", WORKER)
    (folder / "lib").mkdir()
    _write(folder / "lib", "classbackend.py", CLASS_BACKEND)
    return {
        "realms": REALMS,
        "components": [
            {"type": "app", "app": "backend:app", "realm": "realm1", "name": "backend"},
            {"type": "app", "app": "broken", "realm": "realm1", "name": "broken"},
            {"type": "app", "app": "limited", "realm": "realm1", "role": "backend", "name": "limited"},
            {"type": "app", "app": "limited:refused", "realm": "realm1", "role": "backend", "name": "refused"},
            {"type": "app", "app": "not_there:app", "realm": "realm1", "name": "missing"},
            {"type": "guest", "name": "worker", "executable": sys.executable, "arguments": ["worker.py"],
             "cwd": "guest", "env": {"WORKER_TAG": "tagged"}, "restart": {"initial_delay": 0.2}, "stop_timeout": 3},
            {"type": "class", "classname": "classbackend.Backend", "realm": "realm1", "role": "backend",
             "authid": "class-1", "pythonpath": ["lib"], "extra": {"colour": "green"}},
        ],
    }  # fmt: skip


async def _wait_for_log(router: RouterProcess, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in (log := router.log()):
        if router.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in the log:\n{log}")
        await asyncio.sleep(0.05)
    return log


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    folder = tmp_path_factory.mktemp("node")
    process = start_router(folder, **_node_folder(folder))
    yield process
    code = process.stop()
    assert code == 0, process.log()


@pytest.fixture
async def client(node: RouterProcess) -> AsyncIterator[Session]:
    session = await asyncio.wait_for(connect(node.ws_url, "realm1", reconnect=NO_RECONNECT), 10)
    yield session
    with contextlib.suppress(Exception):
        await asyncio.wait_for(session.leave(timeout=2), 5)


async def test_app_component_serves_calls_and_events(node: RouterProcess, client: Session) -> None:
    await _wait_for_log(node, "app backend: running on realm realm1 as the trusted role")
    assert await client.call("com.comp.add", 2, 40) == 42
    assert await client.call("com.comp.whoami") == ["component:backend:app", "cloverleaf.trusted"]
    events: asyncio.Queue[int] = asyncio.Queue()
    await client.subscribe("com.comp.counter", events.put_nowait)
    seen = [await asyncio.wait_for(events.get(), 5) for _ in range(3)]
    assert seen == sorted(seen) and len(set(seen)) == 3


async def test_app_component_with_a_role_is_authorized(node: RouterProcess, client: Session) -> None:
    assert await client.call("com.comp.role.whoami") == ["component:limited", "backend"]


async def test_failing_apps_are_logged_once_and_the_node_goes_on(node: RouterProcess, client: Session) -> None:
    log = await _wait_for_log(node, "app missing: cannot start")
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len([e for e in errors if "app broken:" in e]) == 1
    assert any("app broken: cannot start: RuntimeError: kaboom in on_join" in e for e in errors), errors
    assert any("app refused: cannot start: wamp.error.not_authorized" in e for e in errors), errors
    assert any("app missing: cannot start: cannot import module 'not_there'" in e for e in errors), errors
    assert "Traceback" not in log
    assert node.process.poll() is None
    assert await client.call("com.comp.add", 1, 1) == 2  # the others run
    with pytest.raises(ApplicationError) as absent:
        await client.call("com.other.procedure")
    assert absent.value.error == "wamp.error.no_such_procedure"


async def test_guest_is_restarted_after_failing(node: RouterProcess, client: Session) -> None:
    log = await _wait_for_log(node, "worker: worker ready")
    assert "worker: worker run 1, tag tagged, cwd guest" in log
    assert "worker (stderr): first run: failing on purpose" in log
    assert "guest worker: exited with code 1 after" in log and "restarting in 0.2s" in log
    assert log.count("guest worker: started (pid") == 2
    pid = await client.call("com.comp.guest.pid")
    runs = (node.log_path.parent / "guest" / "runs.txt").read_text().split()
    assert runs[-1] == str(pid) and len(runs) == 2


def _class_started(log: str, label: str) -> tuple[int, Path]:
    """The pid and private socket of class component ``label``, from its "started" log line."""
    started = next(line for line in log.splitlines() if f"class {label}: started (pid" in line)
    return int(started.split("(pid ", 1)[1].split(")", 1)[0]), Path(started.split('"path":"', 1)[1].split('"', 1)[0])


async def test_class_component_joins_through_its_private_socket(node: RouterProcess, client: Session) -> None:
    log = await _wait_for_log(node, "classbackend.Backend: class backend joined")
    authid, authrole, extra, pid = await client.call("com.comp.role.classwho")
    assert (authid, authrole, extra) == ("class-1", "backend", {"colour": "green"})
    # its socket is in a folder of the node's own, which only the node's user may enter
    started_pid, socket_path = _class_started(log, "classbackend.Backend")
    assert started_pid == pid
    assert socket_path.is_socket() and socket_path.parent.stat().st_mode & 0o777 == 0o700
    sessions = await client.call("wamp.session.list")
    details = [await client.call("wamp.session.get", s) for s in sessions]
    [mine] = [d for d in details if d["authid"] == "class-1"]
    assert mine["authmethod"] == "anonymous" and mine["transport"]["type"] == "rawsocket"


async def test_node_stop_terminates_guests_first(tmp_path: Path) -> None:
    _write(tmp_path, "worker.py", WORKER)
    (tmp_path / "runs.txt").write_text("0\n")  # the first run is done: this one stays up
    _write(tmp_path, "backend.py", BACKEND)
    _write(tmp_path, "classbackend.py", CLASS_BACKEND)
    node = start_router(tmp_path, realms=REALMS, components=[
        {"type": "app", "app": "backend", "realm": "realm1", "name": "backend"},
        {"type": "guest", "name": "worker", "executable": sys.executable, "arguments": ["worker.py"]},
        {"type": "class", "classname": "classbackend.Backend", "realm": "realm1", "role": "backend"},
    ])  # fmt: skip
    try:
        log = await _wait_for_log(node, "class backend joined")
        await _wait_for_log(node, "worker: worker ready")
        pid = int((tmp_path / "runs.txt").read_text().split()[-1])
        assert _alive(pid)
        class_pid, socket_path = _class_started(log, "classbackend.Backend")
        private_folder = socket_path.parent
        assert _alive(class_pid) and private_folder.is_dir()
    finally:
        code = node.stop()
    log = node.log()
    assert code == 0, log
    assert not _alive(pid) and not _alive(class_pid)
    assert not private_folder.exists()
    order = [log.index(text) for text in (
        "guest worker: stopping (SIGTERM", "worker: worker left cleanly", "guest worker: stopped (code 0)",
        "left realm realm1 (component:backend): client said goodbye", "cloverleaf.node: stopped (",
    )]  # fmt: skip
    assert order == sorted(order), log
    assert "Traceback" not in log
