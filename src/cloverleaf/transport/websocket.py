"""WebSocket transport on picows: subprotocol negotiation, Origin checks, pings, frames to sessions.

Subprotocols are ``wamp.2.<serializer>`` and, per the spec's batched WebSocket transport,
``wamp.2.<serializer>.batched``: then every WebSocket message carries a batch of WAMP messages
(see :mod:`cloverleaf.wamp.batching`), and what the router sends during one event-loop pass goes
out as one batch.

picows was chosen on measurement (docs/benchmarks.md): it relays about 2.3x the messages per
server-CPU-second of the ``websockets`` library on this hardware. Outgoing frames are built here
and joined into one socket write per event-loop pass (see :class:`CoalescingLink`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from picows import (
    WSCloseCode,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)

from ..router.ratelimit import RateLimitedLog
from ..router.router import Router
from ..router.session import SessionOptions
from ..wamp import errors
from ..wamp.batching import (
    RECORD_SEPARATOR,
    BatchError,
    Framing,
    choose_framing,
    framings_for,
    json_separator,
    split_batch,
)
from ..wamp.serializers import Serializer
from .cookies import CookieTracking, is_cross_origin
from .link import CoalescingLink, channel_binding, describe_peer, origin_allowed, peer_certificate
from .rfc6455 import CheckedListener, serve

log = logging.getLogger("cloverleaf.transport.websocket")
#: refusals any browser page can cause again and again
limited_log = RateLimitedLog(log)

_pack_short = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack


@dataclass(slots=True, frozen=True)
class WebSocketSettings:
    path: str = "/ws"
    #: in order of preference when a client offers several
    serializers: Sequence[Serializer] = ()
    session: SessionOptions = field(default_factory=SessionOptions)
    max_message_size: int = 1024 * 1024
    #: shell-style patterns for the Origin header; requests without Origin (non-browsers) pass
    allowed_origins: Sequence[str] = field(default_factory=lambda: ["*"])
    handshake_timeout: float = 10.0
    #: seconds of silence before the server pings (0 disables pings)
    ping_interval: float = 30.0
    ping_timeout: float = 10.0
    #: cookie authentication (None: off)
    cookies: CookieTracking | None = None
    #: the endpoint speaks TLS (wss://): a cross-site page then gets a SameSite=None; Secure cookie
    tls: bool = False


class WebSocketLink(CoalescingLink):
    kind = "websocket"

    def __init__(self, ws: WSTransport, serializer: Serializer, peer: str) -> None:
        # the socket's own transport, not the wrapper picows is given (see GuardedProtocol)
        super().__init__(getattr(ws.underlying_transport, "raw", ws.underlying_transport), serializer, peer)
        self.ws = ws
        self._first_byte = 0x82 if serializer.BINARY else 0x81  # FIN + binary/text opcode
        #: the code of the close frame that follows the router's last message (ABORT, GOODBYE)
        self.close_code = WSCloseCode.OK

    def frame_header(self, payload: bytes) -> bytes:
        # Server frames are never masked (RFC 6455, 5.1).
        length = len(payload)
        if length < 126:
            return bytes((self._first_byte, length))
        if length < 65536:
            return _pack_short(self._first_byte, 126, length)
        return _pack_long(self._first_byte, 127, length)

    def flush(self) -> None:
        if self.ws.is_close_frame_sent:
            # picows closed on its own (ping timeout): nothing may follow its close frame
            self._pending.clear()
            self._pending_bytes = 0
            return
        super().flush()

    def close_transport(self) -> None:
        # the close frame after what is queued; then FIN, and the client's close is awaited
        # (GuardedProtocol: no reset, input after the close is discarded)
        self.ws.send_close(self.close_code)
        self.ws.disconnect(graceful=True)

    def stop(self) -> None:
        """The WebSocket is closing: drop what is queued, send nothing more, end the session now."""
        self._closed = True
        self._pending.clear()
        self._pending_bytes = 0
        self.detach_session()


class BatchedWebSocketLink(WebSocketLink):
    """``wamp.2.*.batched``: the payloads queued during one loop pass go out as ONE WebSocket
    message, a batch (a single payload is a batch of one, as the spec requires).

    The queue is the base class's, so flushing, the backlog and the queue policy work unchanged:
    ``frame_header`` queues each payload's batch prefix (the length, for binary serializers;
    nothing for JSON, whose separator follows the payload and is added when joining), and
    ``join_pending`` makes the batch one WebSocket message.
    """

    #: the JSON separator to send: the spec's, or the peer's own (Autobahn's 0x18) once it used it
    separator = RECORD_SEPARATOR

    def frame_header(self, payload: bytes) -> bytes:
        return len(payload).to_bytes(4, "big") if self.serializer.BINARY else b""

    def join_pending(self, pending: list[bytes]) -> bytes:
        # binary: [length, payload, length, payload, ...]; JSON: [b"", payload, b"", payload, ...]
        binary = self.serializer.BINARY
        body = b"".join(pending) if binary else self.separator.join(pending[1::2]) + self.separator
        return WebSocketLink.frame_header(self, body) + body


class WampWebSocketListener(CheckedListener):
    """One WebSocket connection carrying one WAMP session (frame checks: :class:`CheckedListener`)."""

    def __init__(
        self, router: Router, framing: Framing, settings: WebSocketSettings, cookie: str | None = None
    ) -> None:
        super().__init__(settings.max_message_size)
        serializer = framing.serializer
        self._router = router
        self._serializer = serializer
        # wamp.2.json: text frames only; msgpack and cbor: binary only
        self.accept_text = not serializer.BINARY
        self.accept_binary = serializer.BINARY
        self._batched = framing.batched
        self._settings = settings
        self._cookie = cookie
        self._link: WebSocketLink | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        raw = transport.underlying_transport
        tls = raw.get_extra_info("ssl_object") is not None
        link_class = BatchedWebSocketLink if self._batched else WebSocketLink
        link = link_class(transport, self._serializer, describe_peer(raw, "tls" if tls else "tcp"))
        if tls:
            link.peer_certificate, link.peer_certificate_der = peer_certificate(raw)
            link.channel_binding = channel_binding(raw)
        if self._cookie is not None and self._settings.cookies is not None:
            link.cookie = self._cookie
            link.cookie_store = self._settings.cookies.store
        link.session = self._router.open_session(link, self._settings.session)
        self._link = link

    def deliver(self, transport: WSTransport, payload: bytes, text: bool) -> None:
        link = self._link
        if link is None or link.closed:
            return
        session = link.session
        if session is None:
            return
        if self._batched:
            self._receive_batch(link, payload)
        else:
            session.receive(payload)

    def describe(self, transport: WSTransport) -> str:
        return self._link.peer if self._link is not None else super().describe(transport)

    def fail(self, transport: WSTransport, code: WSCloseCode, reason: str) -> None:
        link = self._link
        if code is WSCloseCode.INVALID_TEXT and link is not None and link.session is not None and not link.closed:
            # Text that is not UTF-8 is a WAMP protocol violation too: the session gets its
            # ABORT, and the WebSocket the close code RFC 6455 asks for.
            link.close_code = WSCloseCode.INVALID_TEXT
            link.session.abort(errors.PROTOCOL_VIOLATION, reason)
            if link.closed:
                return
        super().fail(transport, code, reason)

    def stop(self, transport: WSTransport) -> None:
        link = self._link
        if link is not None:
            link.stop()

    def _receive_batch(self, link: WebSocketLink, batch: bytes) -> None:
        """Hand each message of a batch to the session, in order; a malformed (or empty) batch
        fails the session with ``wamp.error.protocol_violation``, as the spec requires."""
        try:
            payloads = split_batch(self._serializer, batch)
        except BatchError as exc:
            if link.session is not None:
                link.session.abort(errors.PROTOCOL_VIOLATION, f"malformed batch: {exc}")
            return
        if not self._serializer.BINARY and isinstance(link, BatchedWebSocketLink):
            link.separator = json_separator(batch)  # answer in the peer's own dialect
        for payload in payloads:
            session = link.session
            if session is None or link.closed:
                return  # an earlier message of the batch ended the session
            session.receive(payload)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        link = self._link
        if link is None:
            return
        if self.ping_timed_out(transport):
            # picows' auto-ping got no PONG in time: it sent 1001 and dropped the connection
            log.info(
                "%s: ping timeout (no PONG within %g s), connection dropped", link.peer, self._settings.ping_timeout
            )
            link.abort_reason = "ping timeout"
        link.connection_lost()


def negotiate(
    request: WSUpgradeRequest, router: Router, settings: WebSocketSettings
) -> WSUpgradeResponseWithListener | None:
    """Pick path, Origin and subprotocol for an upgrade request; answer with a listener or an error."""
    path = request.path.decode("latin-1").split("?", 1)[0]
    if path != settings.path and settings.path != "*":  # "*": any path, as Crossbar's websocket transport
        return None  # 404
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(origin, settings.allowed_origins):
        limited_log.info("origin refused", "refused WebSocket upgrade from Origin %r", origin)
        return WSUpgradeResponseWithListener(
            WSUpgradeResponse.create_error_response(403, b"origin not allowed\n"), None
        )
    offered = [
        item.strip() for value in request.headers.getall("Sec-WebSocket-Protocol", []) for item in value.split(",")
    ]
    framings = framings_for(settings.serializers)
    chosen = choose_framing(offered, framings)
    if chosen is None:
        supported = ", ".join(framing.name for framing in framings)
        return WSUpgradeResponseWithListener(
            WSUpgradeResponse.create_error_response(
                400, f"no supported WAMP subprotocol offered (supported: {supported})\n".encode()
            ),
            None,
        )
    headers = {"Sec-WebSocket-Protocol": chosen.name}
    cookie = None
    if settings.cookies is not None:
        # A cookie for another site is kept and sent by browsers only as SameSite=None, which needs
        # Secure, which needs TLS: so over TLS, an upgrade from a page of another origin gets that.
        host = request.headers.get("Host")
        cross_site = settings.tls and is_cross_origin(origin, host, tls=True)
        cookie, set_cookie = settings.cookies.for_request(request.headers.getall("Cookie", []), cross_site)
        if set_cookie is not None:
            headers["Set-Cookie"] = set_cookie
    return WSUpgradeResponseWithListener(
        WSUpgradeResponse.create_101_response(headers),
        WampWebSocketListener(router, chosen, settings, cookie),
    )


async def serve_websocket(
    router: Router, settings: WebSocketSettings, host: str, port: int, ssl_context: ssl.SSLContext | None = None,
    sock: socket.socket | None = None,
) -> asyncio.Server:
    """Listen on ``host:port`` (or ``sock``, already listening); with ``ssl_context``, for TLS
    connections only (wss://)."""
    return await serve(lambda request: negotiate(request, router, settings), settings, host, port, ssl_context, sock)
