"""Client transports: WebSocket (ws://, wss://) on picows, RawSocket (rs://, rss://, unix://) on asyncio.

Each moves whole WAMP payloads and nothing else: ``send(payload)`` out, ``on_message(payload)`` in,
``on_lost(exc)`` once when the connection ends.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, cast
from urllib.parse import urlsplit

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from ..wamp.errors import ProtocolError
from ..wamp.rawsocket import RawSocketClient, frame
from ..wamp.serializers import Serializer

MessageHandler = Callable[[bytes], None]
LostHandler = Callable[[BaseException | None], None]


class ClientLink(Protocol):
    """One open connection to a router."""

    serializer: Serializer

    def send(self, payload: bytes) -> None: ...

    def close(self) -> None: ...

    @property
    def closed(self) -> bool: ...


#: Opens a connection without a URL: ``await opener(serializer, on_message, on_lost)`` returns an open
#: :class:`ClientLink` (or raises ``ConnectionError``). It must call ``on_message(payload)`` for each
#: payload from the router, in order, from the event loop (never inside ``send``), and
#: ``on_lost(exc)`` once when the connection ends, also after the client's own ``close()``. The
#: node's embedded components connect this way, in memory.
LinkOpener = Callable[[Serializer, MessageHandler, LostHandler], Awaitable[ClientLink]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to connect, parsed from a URL."""

    scheme: str  # "ws", "wss", "rs", "rss" or "unix"
    host: str
    port: int
    path: str  # WebSocket path, or the Unix socket path

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "unix":
            path = (parts.netloc + parts.path) if parts.netloc else parts.path
            if not path:
                raise ValueError(f"no socket path in {url!r}")
            return cls("unix", "", 0, path)
        if scheme not in ("ws", "wss", "rs", "rss", "tcp"):
            raise ValueError(f"unsupported URL scheme {parts.scheme!r} (use ws, wss, rs, rss or unix)")
        if scheme == "tcp":
            scheme = "rs"
        default_port = {"ws": 80, "wss": 443, "rs": 8081, "rss": 8081}[scheme]
        if not parts.hostname:
            raise ValueError(f"no host in {url!r}")
        return cls(scheme, parts.hostname, parts.port or default_port, parts.path or "/")

    @property
    def is_websocket(self) -> bool:
        return self.scheme in ("ws", "wss")

    @property
    def is_tls(self) -> bool:
        return self.scheme in ("wss", "rss")


class _QuietLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """picows' log for the client: its "connection established" line on every connect, and its
    other INFO chatter, goes to DEBUG; warnings and errors stay what they are."""

    def info(self, msg: object, *args: object, **kwargs: object) -> None:
        self.debug(msg, *args, **kwargs)  # type: ignore[arg-type]


_PICOWS_LOG = _QuietLog(logging.getLogger("cloverleaf.client.picows"))


class _WebSocketLink(WSListener):
    def __init__(self, serializer: Serializer, on_message: MessageHandler, on_lost: LostHandler) -> None:
        self.serializer = serializer
        self._on_message = on_message
        self._on_lost = on_lost
        self._msg_type = WSMsgType.BINARY if serializer.BINARY else WSMsgType.TEXT
        self._ws: WSTransport | None = None
        self._fragments: list[bytes] | None = None
        self._closed = False

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._ws = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type is WSMsgType.TEXT or msg_type is WSMsgType.BINARY:
            if frame.fin:
                self._on_message(frame.get_payload_as_bytes())
            else:
                self._fragments = [frame.get_payload_as_bytes()]
        elif msg_type is WSMsgType.CONTINUATION and self._fragments is not None:
            self._fragments.append(frame.get_payload_as_bytes())
            if frame.fin:
                payload = b"".join(self._fragments)
                self._fragments = None
                self._on_message(payload)
        elif msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._closed = True
        self._on_lost(None)

    def send(self, payload: bytes) -> None:
        if self._ws is not None and not self._closed:
            self._ws.send(self._msg_type, payload)

    def close(self) -> None:
        if self._ws is not None and not self._closed:
            self._closed = True
            self._ws.send_close(WSCloseCode.OK)
            self._ws.disconnect()

    @property
    def closed(self) -> bool:
        return self._closed


class _RawSocketLink(asyncio.Protocol):
    def __init__(self, serializer: Serializer, on_message: MessageHandler, on_lost: LostHandler) -> None:
        self.serializer = serializer
        self._on_message = on_message
        self._on_lost = on_lost
        self._framing = RawSocketClient(serializer.RAWSOCKET_ID)
        self._raw: asyncio.Transport | None = None
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._raw = cast(asyncio.Transport, transport)
        self._raw.write(self._framing.data_to_send())

    def data_received(self, data: bytes) -> None:
        try:
            payloads = self._framing.receive(data)
        except ProtocolError as exc:
            if not self.handshake.done():
                self.handshake.set_exception(ConnectionError(exc.message))
            self.close()
            return
        control = self._framing.data_to_send()
        if control and self._raw is not None:
            self._raw.write(control)
        if self._framing.is_open and not self.handshake.done():
            self.handshake.set_result(None)
        for payload in payloads:
            if self._closed:
                break
            self._on_message(payload)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError("the router closed the connection during the handshake"))
        self._on_lost(exc)

    def send(self, payload: bytes) -> None:
        if self._raw is not None and not self._closed:
            if self._framing.peer_max_length and len(payload) > self._framing.peer_max_length:
                raise ValueError(
                    f"message of {len(payload)} bytes exceeds the router's limit of {self._framing.peer_max_length}"
                )
            self._raw.write(frame(payload))

    def close(self) -> None:
        if self._raw is not None and not self._closed:
            self._closed = True
            self._raw.close()

    @property
    def closed(self) -> bool:
        return self._closed


async def open_link(
    url: str,
    serializer: Serializer,
    on_message: MessageHandler,
    on_lost: LostHandler,
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> ClientLink:
    """Connect to ``url`` and complete the transport handshake; raise ``ConnectionError`` if refused."""
    endpoint = Endpoint.parse(url)
    if endpoint.is_tls and ssl_context is None:
        ssl_context = ssl.create_default_context()
    loop = asyncio.get_running_loop()
    try:
        if endpoint.is_websocket:
            chosen: list[str] = []

            def factory(request: object, response: object) -> _WebSocketLink:
                chosen.append(getattr(response, "headers", {}).get("Sec-WebSocket-Protocol", ""))
                return _WebSocketLink(serializer, on_message, on_lost)

            _transport, listener = await asyncio.wait_for(
                ws_connect(
                    factory, url, ssl_context=ssl_context if endpoint.is_tls else None,
                    extra_headers={"Sec-WebSocket-Protocol": serializer.subprotocol},
                    websocket_handshake_timeout=timeout, read_buffer_init_size=4096,
                    use_aiofastnet=False, logger_name=_PICOWS_LOG,
                ),
                timeout,
            )  # fmt: skip
            if listener is None:  # picows: the server dropped the connection before answering the upgrade
                raise ConnectionError(f"cannot connect to {url}: the server closed the connection")
            link = cast(_WebSocketLink, listener)
            if chosen and chosen[0] != serializer.subprotocol:
                link.close()
                raise ConnectionError(f"the router chose subprotocol {chosen[0]!r}, not {serializer.subprotocol!r}")
            return link
        if endpoint.scheme == "unix":
            _raw, protocol = await asyncio.wait_for(
                loop.create_unix_connection(lambda: _RawSocketLink(serializer, on_message, on_lost), endpoint.path),
                timeout,
            )
        else:
            _raw, protocol = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _RawSocketLink(serializer, on_message, on_lost), endpoint.host, endpoint.port,
                    ssl=ssl_context if endpoint.is_tls else None,
                ),
                timeout,
            )  # fmt: skip
        await asyncio.wait_for(protocol.handshake, timeout)
        return protocol
    except (TimeoutError, OSError) as exc:
        raise ConnectionError(f"cannot connect to {url}: {exc or type(exc).__name__}") from exc
    except Exception as exc:  # picows raises its own handshake errors
        if isinstance(exc, ConnectionError):
            raise
        raise ConnectionError(f"cannot connect to {url}: {exc}") from exc
