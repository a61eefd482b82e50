"""RawSocket transport over TCP or Unix domain sockets (asyncio adapter around the sans-I/O framing)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, cast

from ..router.ratelimit import RateLimitedLog
from ..router.router import Router
from ..router.session import SessionOptions
from ..wamp.rawsocket import FrameType, RawSocketError, RawSocketServer, frame, frame_header
from ..wamp.serializers import BY_RAWSOCKET_ID, Serializer
from .link import CoalescingLink, channel_binding, describe_peer, linger_close, peer_certificate

log = logging.getLogger("cloverleaf.transport.rawsocket")
#: lines any TCP client can repeat at will, one connection after another
limited_log = RateLimitedLog(log)


@dataclass(slots=True, frozen=True)
class RawSocketSettings:
    serializers: Collection[Serializer]
    session: SessionOptions = field(default_factory=SessionOptions)
    max_message_size: int = 1024 * 1024
    handshake_timeout: float = 10.0
    #: seconds between keepalive PINGs when the peer is idle (0 disables them)
    ping_interval: float = 30.0
    #: the peer is dropped when nothing arrives this long after a PING
    ping_timeout: float = 10.0


class RawSocketLink(CoalescingLink):
    kind = "rawsocket"

    def frame_header(self, payload: bytes) -> bytes:
        return frame_header(len(payload))

    def close_transport(self) -> None:
        linger_close(self.raw)


class RawSocketProtocol(asyncio.Protocol):
    """One RawSocket connection: handshake, then frames to and from a router session."""

    def __init__(self, router: Router, settings: RawSocketSettings, scheme: str) -> None:
        self._router = router
        self._settings = settings
        self._scheme = scheme
        self._framing = RawSocketServer([s.RAWSOCKET_ID for s in settings.serializers], settings.max_message_size)
        self._raw: asyncio.Transport | None = None
        self._link: RawSocketLink | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._heard_since_ping = True
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._raw = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._settings.handshake_timeout, self._handshake_timed_out)

    def _handshake_timed_out(self) -> None:
        if self._link is None and self._raw is not None:
            limited_log.info("handshake timed out", "%s: RawSocket handshake timed out",
                             describe_peer(self._raw, self._scheme))  # fmt: skip
            self._raw.abort()

    def data_received(self, data: bytes) -> None:
        raw = self._raw
        assert raw is not None
        if self._closing or (self._link is not None and self._link.closed):
            return  # closing: input is read only so that the close does not become a reset
        self._heard_since_ping = True
        try:
            payloads = self._framing.receive(data)
        except RawSocketError as exc:
            reply = self._framing.data_to_send()
            if reply:
                raw.write(reply)
            limited_log.info("framing error", "%s: closing RawSocket connection: %s", describe_peer(raw, self._scheme),
                             exc.message)  # fmt: skip
            if self._link is not None:
                self._link.close("framing error")
                self._link.detach_session()
            else:
                self._closing = True
                linger_close(raw)
            return
        control = self._framing.data_to_send()
        link = self._link
        if link is None:
            if not self._framing.is_open:
                return
            link = self._open_session(raw)
        if control:
            raw.write(control)
        session = link.session
        for payload in payloads:
            if session is None or link.closed:
                break
            session.receive(payload)

    def _open_session(self, raw: asyncio.Transport) -> RawSocketLink:
        serializer_id = self._framing.serializer_id
        assert serializer_id is not None
        link = RawSocketLink(raw, BY_RAWSOCKET_ID[serializer_id], describe_peer(raw, self._scheme))
        link.peer_max_message_size = self._framing.peer_max_length
        if self._scheme == "tls":
            link.peer_certificate, link.peer_certificate_der = peer_certificate(raw)
            link.channel_binding = channel_binding(raw)
        link.session = self._router.open_session(link, self._settings.session)
        self._link = link
        if self._timer is not None:
            self._timer.cancel()
        if self._settings.ping_interval > 0:
            self._timer = asyncio.get_running_loop().call_later(self._settings.ping_interval, self._keepalive)
        return link

    def _keepalive(self) -> None:
        link = self._link
        if link is None or link.closed:
            return
        loop = asyncio.get_running_loop()
        self._heard_since_ping = False
        link.raw.write(frame(b"", FrameType.PING))
        self._timer = loop.call_later(self._settings.ping_timeout, self._check_pong)

    def _check_pong(self) -> None:
        link = self._link
        if link is None or link.closed:
            return
        if not self._heard_since_ping:
            session = link.session
            if session is None or session.realm is None:  # a joined session's leave line says "ping timeout"
                limited_log.info("ping timeout", "%s: ping timeout (no answer to PING within %g s), closing",
                                 link.peer, self._settings.ping_timeout)  # fmt: skip
            link.abort("ping timeout")
            return
        self._timer = asyncio.get_running_loop().call_later(self._settings.ping_interval, self._keepalive)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._link is not None:
            self._link.connection_lost()


async def serve_rawsocket_tcp(
    router: Router, settings: RawSocketSettings, host: str, port: int, ssl_context: ssl.SSLContext | None = None,
    sock: socket.socket | None = None,
) -> asyncio.Server:
    """Listen on ``host:port`` (or on ``sock``, already listening); with ``ssl_context``, for TLS
    connections only (rss://)."""
    loop = asyncio.get_running_loop()
    where: dict[str, Any] = {"sock": sock} if sock is not None else {"host": host, "port": port}
    if ssl_context is None:
        return await loop.create_server(lambda: RawSocketProtocol(router, settings, "tcp"), **where)
    return await loop.create_server(
        lambda: RawSocketProtocol(router, settings, "tls"), **where,
        ssl=ssl_context, ssl_handshake_timeout=settings.handshake_timeout,
    )  # fmt: skip


def remove_stale_socket(path: str) -> None:
    """Remove what a previous run left at ``path`` (a socket, not a regular file), so that it can
    be bound again."""
    with contextlib.suppress(FileNotFoundError):
        if os.path.exists(path) and not os.path.isfile(path):
            os.unlink(path)


async def serve_rawsocket_unix(router: Router, settings: RawSocketSettings, path: str,
                               sock: socket.socket | None = None) -> asyncio.Server:  # fmt: skip
    loop = asyncio.get_running_loop()
    if sock is not None:
        return await loop.create_unix_server(lambda: RawSocketProtocol(router, settings, "unix"), sock=sock)
    return await loop.create_unix_server(lambda: RawSocketProtocol(router, settings, "unix"), path)
