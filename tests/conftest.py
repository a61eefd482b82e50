"""Shared fixtures: free ports, a router running as a real subprocess, Autobahn|Python sessions."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml


def _ephemeral_port_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _worker_share(ports: range) -> range:
    """This pytest-xdist worker's slice of ``ports`` (all of them outside xdist): two workers never
    hand out the same port, which the bind check alone cannot promise (a port one worker chose is
    free until its server binds it)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or count <= 1:
        return ports
    index = int(worker[2:])
    size = len(ports) // count
    return range(ports.start + index * size, ports.start + (index + 1) * size)


#: the ports free_port() hands out: below the ephemeral range, from which the OS takes the local
#: port of every outgoing connection and of every bind to port 0
_TEST_PORTS = _worker_share(range(10000, max(10001, min(32768, _ephemeral_port_floor()))))
#: where the next free_port() looks first; seeded by the PID so that two test runs on one machine
#: start far apart
_port_cursor = os.getpid() * 7919 % len(_TEST_PORTS)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and that nothing but another free_port() takes
    before the process a test starts binds it.

    A port the OS picked (bind to port 0) was in the ephemeral range: between the check and the
    bind, any of the suite's many outgoing connections could get it as its local port, and a
    nats-server or router then failed to start now and then. Consecutive calls return different
    ports (a cursor walks the range), so ports chosen for one cluster do not collide either."""
    global _port_cursor
    for _ in range(len(_TEST_PORTS)):
        port = _TEST_PORTS[_port_cursor]
        _port_cursor = (_port_cursor + 1) % len(_TEST_PORTS)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use, or in TIME_WAIT
            return port
    raise RuntimeError(f"no free TCP port on 127.0.0.1 in {_TEST_PORTS}")


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class RouterProcess:
    """A `cloverleaf start --config` subprocess and the addresses it serves."""

    process: subprocess.Popen[bytes]
    ws_url: str
    rs_url: str
    unix_path: str
    ws_port: int
    rs_port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(2)  # SIGINT
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def router_config(ws_port: int, rs_port: int, unix_path: str, ws_options: dict[str, Any] | None = None,
                  rs_options: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "realms": [{"name": "realm1"}, {"name": "strict.realm", "uri_check": "strict"}],
        "transports": [
            {"type": "websocket", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": ws_port}, "path": "/ws",
             "max_message_size": 65536},
            {"type": "rawsocket", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": rs_port},
             "max_message_size": 65536},
            {"type": "rawsocket", "endpoint": {"type": "unix", "path": unix_path}},
        ],
        "logging": {"level": "info"},
        "shutdown_timeout": 2.0,
    }
    config["transports"][0].update(ws_options or {})
    config["transports"][1].update(rs_options or {})
    config.update(extra)
    return config


def start_router(tmp: Path, **extra: Any) -> RouterProcess:
    return launch_router(tmp, lambda ws_port, rs_port, unix_path: router_config(ws_port, rs_port, unix_path, **extra))


#: what `cloverleaf start` logs once its transports listen and its components have started
READY_LINE = "cloverleaf router ready"


def launch_router(
    tmp: Path, make_config: Callable[[int, int, str], dict[str, Any]], wait_ports: Sequence[int] = (),
    start_timeout: float = 10.0,
) -> RouterProcess:
    """`cloverleaf start` on ``make_config(ws_port, rs_port, unix_path)`` written to tmp/node.yaml
    (log in tmp/router.log); returns once the WebSocket, RawSocket and ``wait_ports`` listen and
    the node has logged that it is ready (its components started), each within ``start_timeout``
    seconds."""
    ws_port, rs_port = free_port(), free_port()
    unix_path = str(tmp / "router.sock")
    config_path = tmp / "node.yaml"
    config_path.write_text(yaml.safe_dump(make_config(ws_port, rs_port, unix_path)))
    log_path = tmp / "router.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cloverleaf", "start", "--config", str(config_path)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        for port in (ws_port, rs_port, *wait_ports):
            wait_for_port(port, start_timeout)
        # The node listens before its components start (docs/configuration.md, "Order"): a test
        # calling an http-callee or a class component right away waits for the ready line too.
        deadline = time.monotonic() + start_timeout
        while READY_LINE not in log_path.read_text(errors="replace") and process.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError
            time.sleep(0.02)
    except TimeoutError:
        process.kill()
        raise RuntimeError(f"router did not start:\n{log_path.read_text()}") from None
    return RouterProcess(process, f"ws://127.0.0.1:{ws_port}/ws", f"rs://127.0.0.1:{rs_port}", unix_path,
                         ws_port, rs_port, log_path)


class RouterCluster:
    """Router nodes of one cluster (on one nats-server) standing in for one router: every
    connection address a test reads (``ws_url``, ``rs_port``, ``unix_path``) is the next node's,
    so the sessions a test opens one after the other land on different nodes."""

    def __init__(self, nodes: list[RouterProcess], nats: Any) -> None:
        self.nodes = nodes
        self.nats = nats
        self._turn = 0

    def _next(self) -> RouterProcess:
        node = self.nodes[self._turn % len(self.nodes)]
        self._turn += 1
        return node

    @property
    def ws_url(self) -> str:
        return self._next().ws_url

    @property
    def ws_port(self) -> int:
        return self._next().ws_port

    @property
    def rs_port(self) -> int:
        return self._next().rs_port

    @property
    def unix_path(self) -> str:
        return self._next().unix_path

    @property
    def rs_url(self) -> str:
        return self.nodes[0].rs_url

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.nodes[0].process

    def log(self) -> str:
        return "\n".join(f"--- node {index} ---\n{node.log()}" for index, node in enumerate(self.nodes))

    def stop(self, timeout: float = 10.0) -> int:
        codes = [node.stop(timeout) for node in self.nodes]
        self.nats.cleanup()
        return next((code for code in codes if code != 0), 0)


def start_router_cluster(tmp: Path, nodes: int = 2, **extra: Any) -> RouterCluster:
    """``nodes`` router processes in one cluster on a nats-server of their own."""
    from tests.cluster.nats import NatsServer

    nats = NatsServer(tmp / "nats", name="n1").start()
    processes = []
    for index in range(nodes):
        folder = tmp / f"node{index}"
        folder.mkdir()
        section = {"name": "test", "node": f"node{index}", "nats": {"servers": [nats.url]}}
        processes.append(launch_router(
            folder, lambda ws, rs, unix: router_config(ws, rs, unix, cluster=section, **extra)))  # noqa: B023
    return RouterCluster(processes, nats)


#: Workers (pytest-xdist, ``-n 2 --dist load`` in pyproject.toml, the scheduler below): most tests
#: wait on processes and sockets, so two run at once. Each group runs on one worker, one test at a
#: time, in collection order:
#: - the cluster tests assert time bounds (a node's death noticed within 3 s, say) and start NATS
#:   clusters; the fuzz tests use a core each: kept apart from each other, as in a serial run;
#: - the interop tests feed one table, checked by the last of them (test_zz_interop_table.py).
_XDIST_GROUPS = (("tests/cluster/", "cluster-and-fuzz"), ("tests/fuzz/", "cluster-and-fuzz"),
                 ("tests/interop/", "interop"))  # fmt: skip


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Load scheduling, with the groups above each sent to one worker whole. (xdist's own
    ``--dist loadgroup`` renames the grouped tests, which pytest 9.2 no longer lets a plugin do:
    its groups are silently ignored.)"""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            for prefix, group in _XDIST_GROUPS:
                if nodeid.startswith(prefix):
                    return group
            return nodeid  # any other test is a unit of its own

    return GroupScheduling(config, log)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A pytest-xdist worker hands the fuzz inputs it tried to the controller (the summary below)."""
    from tests.fuzz.budget import COUNTS

    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["fuzz_counts"] = dict(COUNTS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    from tests.fuzz.budget import COUNTS

    COUNTS.update(getattr(node, "workeroutput", {}).get("fuzz_counts", {}))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fuzz inputs tried in this run (tests/fuzz/budget.py), whichever worker tried them."""
    from tests.fuzz.budget import COUNTS, PROFILE, SCALE

    if not COUNTS or hasattr(terminalreporter.config, "workeroutput"):
        return
    terminalreporter.write_sep("-", f"fuzz inputs tried (profile {PROFILE}, scale {SCALE:g})")
    width = max(len(k) for k in COUNTS)
    for key in sorted(COUNTS):
        terminalreporter.write_line(f"{key:<{width}}  {COUNTS[key]:>12,}")
    examples = sum(v for k, v in COUNTS.items() if k.endswith(": examples"))
    inputs = sum(v for k, v in COUNTS.items() if k.endswith(": inputs"))
    terminalreporter.write_line(f"total: {examples:,} examples, {inputs:,} inputs")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Test modules with ``CLUSTER_READY = True`` run against one router and against a cluster of
    two router nodes on NATS, their sessions spread over both (docs/cluster.md)."""
    if "router" in metafunc.fixturenames and getattr(metafunc.module, "CLUSTER_READY", False):
        metafunc.parametrize("router", ["single", "cluster"], indirect=True, scope="module")


@pytest.fixture(scope="module")
def router(request: pytest.FixtureRequest) -> Iterator[RouterProcess]:
    """One router subprocess shared by a test module (or, for a CLUSTER_READY module's "cluster"
    run, two router nodes of one cluster posing as one)."""
    with tempfile.TemporaryDirectory(prefix="cloverleaf-test-") as tmp:
        if getattr(request, "param", "single") == "cluster":
            process: Any = start_router_cluster(Path(tmp))
        else:
            process = start_router(Path(tmp))
        yield process
        code = process.stop()
        assert code == 0, f"router exited with {code}:\n{process.log()}"
        assert "Traceback" not in process.log(), process.log()


@pytest.fixture
def fresh_router(tmp_path: Path) -> Iterator[RouterProcess]:
    """A router subprocess of the test's own (for tests that stop or disturb it)."""
    process = start_router(tmp_path)
    yield process
    process.stop()


# -- Autobahn|Python as a third-party client ----------------------------------------------------


def autobahn_transport(router: RouterProcess, kind: str, serializer: str) -> dict[str, Any]:
    """Autobahn Component transport config for kind in {"websocket", "rawsocket", "unix"}."""
    if kind == "websocket":
        return {"type": "websocket", "url": router.ws_url, "serializers": [serializer]}
    if kind == "rawsocket":
        return {"type": "rawsocket", "url": router.rs_url, "serializer": serializer,
                "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": router.rs_port}}
    return {"type": "rawsocket", "url": "rs://localhost", "serializer": serializer,
            "endpoint": {"type": "unix", "path": router.unix_path}}


class AutobahnSessions:
    """Opens Autobahn|Python sessions on the running loop and closes them at the end of a test."""

    def __init__(self) -> None:
        self._running: list[tuple[Any, asyncio.Future[Any]]] = []

    async def open(self, transport: dict[str, Any], realm: str = "realm1", **kw: Any) -> Any:
        from autobahn.asyncio.component import Component

        loop = asyncio.get_running_loop()
        joined: asyncio.Future[Any] = loop.create_future()
        component = Component(transports=[{**transport, "max_retries": 0}], realm=realm, **kw)

        @component.on_join  # type: ignore[misc]
        def _on_join(session: Any, details: Any) -> None:
            if not joined.done():
                joined.set_result(session)

        @component.on_disconnect  # type: ignore[misc]
        def _on_disconnect(session: Any, was_clean: bool = True) -> None:
            if not joined.done():
                joined.set_exception(ConnectionError("disconnected before joining"))

        done = component.start(loop)
        self._running.append((component, done))
        return await asyncio.wait_for(joined, 10)

    async def close(self) -> None:
        for component, done in self._running:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(component.stop(), 5)
            if not done.done():
                done.cancel()


@pytest.fixture
async def autobahn() -> AsyncIterator[AutobahnSessions]:
    sessions = AutobahnSessions()
    yield sessions
    await sessions.close()


@pytest.fixture(scope="session")
def autobahn_browser_js(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """AutobahnJS's browser build (autobahn.min.js from the npm package autobahn-browser), fetched
    once per test run the way `cloverleaf init` does (npm pack)."""
    from cloverleaf.node.scaffold import InitError, install_autobahn_js

    directory = tmp_path_factory.mktemp("autobahn-browser")
    try:
        install_autobahn_js(directory)
    except InitError as exc:
        pytest.skip(f"AutobahnJS browser build unavailable: {exc}")
    return directory / "autobahn.min.js"


@pytest.fixture(autouse=True)
def _txaio_loop_restored() -> Iterator[None]:
    """Autobahn's ApplicationRunner points txaio's global loop at the running test's loop; once
    that loop is closed, every later Autobahn session in the run would schedule onto it and hang.
    Put it back after each test."""
    txaio = sys.modules.get("txaio")
    previous = txaio.config.loop if txaio is not None else None
    yield
    txaio = sys.modules.get("txaio")
    if txaio is not None:
        txaio.config.loop = previous


#: the Node peers of the test suite (tests/js/package.json, installed with `npm ci`)
JS_DIR = Path(__file__).resolve().parent / "js"
JS_PACKAGES = ("autobahn", "wampy", "@verkehrsministerium/kraftfahrstrasse")


@pytest.fixture(scope="session")
def node() -> str:
    """Path of the node executable, with tests/js/node_modules installed (npm ci) if it was missing.

    Skipped only when node or npm are not installed at all; a failing `npm ci` is a test failure."""
    node_path, npm_path = shutil.which("node"), shutil.which("npm")
    if node_path is None or npm_path is None:
        reason = f"the Node peers need node and npm on PATH (node={node_path}, npm={npm_path})"
        print(reason)
        pytest.skip(reason)
    if not all((JS_DIR / "node_modules" / package / "package.json").exists() for package in JS_PACKAGES):
        try:
            done = subprocess.run([npm_path, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, capture_output=True,
                                  text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`npm ci` in {JS_DIR} did not finish within 300 s")
        if done.returncode != 0:
            pytest.fail(f"`npm ci` in {JS_DIR} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return node_path
