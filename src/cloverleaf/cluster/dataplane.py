"""The cluster's data plane: one lean core-NATS connection per node for the traffic between nodes
(publications, RPC, heartbeats), beside nats-py's connection, which keeps JetStream KV and the
read-your-writes requests (docs/cluster.md, "Design").

Why not nats-py for this too: every message it receives goes through a stream reader's task, the
parser, a Msg object, an ``asyncio.Queue`` and the subscription's own task before the handler
runs, and every message sent through a flusher task; measured, that was a third of a node's CPU
per cross-node call (docs/benchmarks.md, "Cluster"). Here a message is parsed and handled in the
``data_received`` call that brought it, and everything published in one pass of the event loop
leaves in one write at its end, as a WebSocket link flushes.

Only the protocol parts the data plane needs: CONNECT (user/password, token, credentials file,
TLS), SUB, PUB, PING/PONG; reconnection to the configured servers and the ones the server
announces; a keepalive PING that drops a connection whose server stopped answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..router.ratelimit import RateLimitedLog
from . import natsproto
from .natsproto import Err, Info, Msg, NatsParser, NatsProtocolError, Ping, Pong

log = logging.getLogger("cloverleaf.cluster")
limited_log = RateLimitedLog(log)

#: bytes waiting to be written (NATS unreachable or slow) at most; past it a publish is refused and
#: counted (the node fences itself when its own heartbeats stop coming back)
MAX_BUFFER = 64 * 1024 * 1024


class DataPlaneError(ConnectionError):
    """No configured NATS server could be connected to (the reasons, server by server, inside)."""


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection to one server; a new one for each (re)connection."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self.parser = NatsParser()
        self.transport: asyncio.Transport | None = None
        self.info: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # (uvloop's are not asyncio.Transport subclasses)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.parser.feed(data)
        except NatsProtocolError as exc:
            log.warning("cluster: NATS data connection: %s: reconnecting", exc)
            if self.transport is not None:
                self.transport.abort()
            return
        plane = self.plane
        handlers = plane.handlers
        for event in events:
            if type(event) is Msg:
                handler = handlers.get(event.sid)
                if handler is not None:
                    plane.received += 1
                    handler(event.payload)
            else:
                plane.control(self, event)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        if not self.info.done():
            self.info.set_exception(ConnectionError(f"connection closed before INFO: {exc}"))
        self.plane.connection_lost(self, exc)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.plane.schedule_flush()


class DataPlane:
    """A core-NATS connection that delivers each message of its subscriptions to a handler, in the
    order the server sent them, synchronously (``subscriptions``: subject -> handler of the
    payload). ``publish`` never blocks: messages wait in a bounded buffer while the connection is
    down and leave in one write per event-loop pass."""

    def __init__(
        self,
        servers: list[str],
        subscriptions: dict[str, Callable[[bytes], None]],
        *,
        name: str = "cloverleaf",
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        credentials: str | None = None,
        tls: ssl.SSLContext | None = None,
        max_buffer: int = MAX_BUFFER,
        ping_interval: float = 2.0,
        max_outstanding_pings: int = 2,
        reconnect_wait: float = 0.1,
        connect_timeout: float = 5.0,
    ) -> None:
        if not servers:
            raise ValueError("no NATS server to connect to")
        self.servers = list(servers)
        self.subjects = list(subscriptions)
        self.handlers: dict[int, Callable[[bytes], None]] = {
            sid: handler for sid, handler in enumerate(subscriptions.values(), start=1)
        }
        self.name = name
        self.user, self.password, self.token = user, password, token
        self.credentials = credentials
        self.tls = tls
        self.max_buffer = max_buffer
        self.ping_interval = ping_interval
        self.max_outstanding_pings = max_outstanding_pings
        self.reconnect_wait = reconnect_wait
        self.connect_timeout = connect_timeout
        #: the server's max_payload (a publish larger than this is refused by the server)
        self.max_payload = 1024 * 1024
        #: messages handed to a handler, messages refused because the buffer was full, reconnections
        self.received = 0
        self.dropped = 0
        self.reconnects = 0
        #: the address of the server connected to ("" while disconnected)
        self.connected_url = ""
        self._current_url = ""
        self._connection: _Connection | None = None
        self._ready = False
        self._closing = False
        self._out: list[bytes] = []
        self._out_size = 0
        self._flush_scheduled = False
        #: one entry per PING on the wire: a future to resolve (a flush) or None (a keepalive)
        self._pongs: deque[asyncio.Future[None] | None] = deque()
        self._keepalives_unanswered = 0
        self._discovered: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- life cycle ------------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._ready

    async def start(self) -> None:
        """Connect to the first configured server that takes the connection (in order); raise
        :class:`DataPlaneError` when none does."""
        self._loop = asyncio.get_running_loop()
        problems = []
        for url in self.servers:
            try:
                await self._connect(url)
                break
            except Exception as exc:
                problems.append(f"{_display(url)}: {exc or type(exc).__name__}")
        else:
            raise DataPlaneError("; ".join(problems))
        self._spawn(self._keepalive())

    async def close(self, timeout: float = 1.0) -> None:
        """Write what is buffered, wait (up to ``timeout``) until the server has it, close."""
        if self._closing:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), timeout)
        self._closing = True
        self._ready = False
        for task in list(self._tasks):
            task.cancel()
        connection = self._connection
        if connection is not None and connection.transport is not None:
            connection.transport.close()
        for waiter in self._pongs:
            if waiter is not None and not waiter.done():
                waiter.cancel()

    async def flush(self) -> None:
        """Return once the server has processed everything published before the call (a PING
        answered); raises ConnectionError when the connection is down."""
        connection = self._connection
        if not self._ready or connection is None or connection.transport is None:
            raise ConnectionError("not connected to NATS")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._write_now()
        self._pongs.append(waiter)
        connection.transport.write(natsproto.PING)
        await waiter

    # -- sending ---------------------------------------------------------------------------------

    def publish(self, subject: str, payload: bytes) -> bool:
        """Queue one message (sent at the end of this event-loop pass, or once reconnected);
        False if the buffer is full (the message is dropped and counted)."""
        size = len(payload)
        if self._out_size + size > self.max_buffer or self._closing:
            self.dropped += 1
            return False
        out = self._out
        out.append(natsproto.publish_header(subject, size))
        out.append(payload)
        out.append(b"\r\n")
        self._out_size += size + 64
        if not self._flush_scheduled and self._ready:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)
        return True

    def schedule_flush(self) -> None:
        if not self._flush_scheduled and self._ready and self._out:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._write_now()

    def _write_now(self) -> None:
        connection = self._connection
        if not self._out or not self._ready or connection is None or connection.paused:
            return
        transport = connection.transport
        if transport is None:
            return
        data = b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        transport.write(data)

    # -- what the server says ----------------------------------------------------------------------

    def control(self, connection: _Connection, event: natsproto.Event) -> None:
        """Everything but MSG, from ``connection``."""
        transport = connection.transport
        if type(event) is Ping:
            if transport is not None:
                transport.write(natsproto.PONG)
        elif type(event) is Pong:
            if self._pongs:
                waiter = self._pongs.popleft()
                if waiter is None:
                    self._keepalives_unanswered = max(0, self._keepalives_unanswered - 1)
                elif not waiter.done():
                    waiter.set_result(None)
        elif type(event) is Info:
            options = event.options
            if type(options.get("max_payload")) is int:
                self.max_payload = options["max_payload"]
            urls = options.get("connect_urls")
            if type(urls) is list:
                self._discovered = [f"nats://{url}" for url in urls if type(url) is str]
            if not connection.info.done():
                connection.info.set_result(options)
        elif type(event) is Err:
            if connection is not self._connection:
                return
            # during the handshake this fails the connection attempt (the PONG never comes)
            for waiter in self._pongs:
                if waiter is not None and not waiter.done():
                    waiter.set_exception(ConnectionError(f"NATS refused: {event.message}"))
            limited_log.warning("nats data err", "cluster: NATS data connection: -ERR %s", event.message)

    def connection_lost(self, connection: _Connection, exc: Exception | None) -> None:
        if connection is not self._connection:
            return
        was_ready = self._ready
        self._ready = False
        self.connected_url = ""
        for waiter in self._pongs:
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionError("the NATS connection closed"))
        self._pongs.clear()
        self._keepalives_unanswered = 0
        if self._closing or not was_ready:
            return
        log.warning("cluster: NATS data connection lost (%s): reconnecting", exc or "closed by the server")
        self._spawn(self._reconnect())

    # -- connecting --------------------------------------------------------------------------------

    async def _connect(self, url: str) -> None:
        loop = asyncio.get_running_loop()
        parts = urlsplit(url if "://" in url else f"nats://{url}")
        host, port = parts.hostname or "127.0.0.1", parts.port or 4222
        connection = _Connection(self)
        self._connection = connection
        self._pongs.clear()
        try:
            await asyncio.wait_for(self._handshake(loop, connection, parts, host, port), self.connect_timeout)
        except BaseException:
            if connection.transport is not None:
                connection.transport.abort()
            if self._connection is connection:
                self._connection = None
            raise
        self._ready = True
        self._current_url = url
        self.connected_url = f"{host}:{port}"
        self._keepalives_unanswered = 0
        self.schedule_flush()

    async def _handshake(self, loop: asyncio.AbstractEventLoop, connection: _Connection, parts: Any,
                         host: str, port: int) -> None:  # fmt: skip
        await loop.create_connection(lambda: connection, host, port)
        info = await connection.info
        wants_tls = self.tls is not None or parts.scheme == "tls" or bool(info.get("tls_required"))
        if wants_tls:
            context = self.tls or ssl.create_default_context()
            assert connection.transport is not None
            upgraded = await loop.start_tls(connection.transport, connection, context, server_hostname=host)
            if upgraded is None:
                raise ConnectionError("TLS upgrade failed")
            connection.transport = upgraded
        options: dict[str, Any] = {
            "verbose": False, "pedantic": False, "tls_required": wants_tls, "name": self.name,
            "lang": "python-cloverleaf", "version": "1", "protocol": 1, "echo": True,
            "headers": False, "no_responders": False,
        }  # fmt: skip
        user = unquote(parts.username) if parts.username else self.user
        password = unquote(parts.password) if parts.password else self.password
        if self.credentials:
            jwt, seed = natsproto.read_credentials(Path(self.credentials).read_text())
            options["jwt"] = jwt
            options["sig"] = natsproto.sign_nonce(seed, str(info.get("nonce", "")))
        elif user and password:
            options["user"], options["pass"] = user, password
        elif user or self.token:
            options["auth_token"] = user or self.token
        pong: asyncio.Future[None] = loop.create_future()
        self._pongs.append(pong)
        assert connection.transport is not None
        connection.transport.write(
            natsproto.connect(options)
            + b"".join(natsproto.subscribe(subject, sid) for sid, subject in enumerate(self.subjects, start=1))
            + natsproto.PING
        )
        await pong  # -ERR (e.g. an authorization violation) fails it

    async def _reconnect(self) -> None:
        round_number = 0
        lost = self._current_url
        while not self._closing:
            candidates = list(dict.fromkeys(self.servers + self._discovered))
            if lost in candidates:  # the server just lost last (it may be frozen: a handshake would time out)
                at = candidates.index(lost)
                candidates = candidates[at + 1 :] + candidates[: at + 1]
            for url in candidates:
                if self._closing:
                    return
                try:
                    await self._connect(url)
                except Exception as exc:
                    limited_log.debug("nats data reconnect", "cluster: NATS data connection to %s: %s",
                                      _display(url), exc)  # fmt: skip
                    continue
                self.reconnects += 1
                log.info("cluster: NATS data connection restored via %s", self.connected_url)
                return
            round_number += 1
            await asyncio.sleep(self.reconnect_wait * min(round_number, 20))

    async def _keepalive(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.ping_interval)
            connection = self._connection
            if not self._ready or connection is None or connection.transport is None:
                continue
            if self._keepalives_unanswered >= self.max_outstanding_pings:
                log.warning("cluster: NATS server %s stopped answering: reconnecting", self.connected_url)
                connection.transport.abort()
                continue
            self._keepalives_unanswered += 1
            self._pongs.append(None)
            connection.transport.write(natsproto.PING)

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _display(url: str) -> str:
    """A server URL without its password."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 4222}"
