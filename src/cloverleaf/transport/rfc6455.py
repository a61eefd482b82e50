"""RFC 6455 checks and the closing of WebSocket connections, around picows.

picows (2.3) parses frames fast but leaves several of the RFC's MUSTs to its user, and closes
connections in a way that can lose what was sent last. Everything the router needs on top of it
is here, shared by the WAMP WebSocket transport and the ``websocket-testee`` echo endpoint, so the
two run exactly the same frame handling:

- :class:`CheckedListener` fails the connection on reserved bits (1002), on text that is not
  UTF-8 (1007, checked per fragment), on a close frame with a code an endpoint may not send
  (1002), on fragments out of order (1002), on a message over ``max_message_size`` (1009) or in
  more than :func:`max_fragments` frames (1008). A client's close is answered with its own code
  (1000 for an empty close). After a CLOSE has gone out, no frame is processed any more.
- :class:`GuardedProtocol` (picows' protocol) never resets a connection with data queued: when it
  closes, it sends FIN after the queued bytes (the close frame last), then reads and discards
  until the client closes too, or for :data:`~cloverleaf.transport.link.LINGER_SECONDS` at most.
  A close frame sent by picows itself (a parser error) stops the parsing at once.
- :class:`PicowsLog` puts picows' log lines where they belong: a client's bad bytes at INFO, the
  per-connection chatter at DEBUG, failures of the router's own code at ERROR.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any, Protocol, cast

from picows import WSAutoPingStrategy, WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport
from picows.picows import WSProtocol  # type: ignore[attr-defined]  # not in picows' stubs

from .link import linger_close

log = logging.getLogger("cloverleaf.transport.websocket")

#: close codes a peer may send (RFC 6455 7.4.1 and 7.4.2): the others (0-999, 1004-1006, 1012-2999,
#: 5000 and up) are refused with 1002, as is a close payload of one byte
VALID_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, *range(1007, 1012), *range(3000, 5000)))

#: fragments of one message are bounded by a message size: at least this many are always allowed
MIN_FRAGMENTS = 1024
#: ... and beyond that, one fragment per this many bytes of max_message_size
BYTES_PER_FRAGMENT = 64


def close_answer(code: int) -> int:
    """The code answering a client's close: its own if valid, 1000 for none (0), else 1002."""
    if code == 0:
        return 1000
    return code if code in VALID_CLOSE_CODES else 1002


def max_fragments(max_message_size: int) -> int:
    """Frames one message may span: max(1024, max_message_size / 64), 16,384 for 1 MiB.

    Payload bytes alone do not bound a message: empty continuation frames cost memory and CPU
    while adding nothing to its size.
    """
    return max(MIN_FRAGMENTS, max_message_size // BYTES_PER_FRAGMENT)


class PicowsLog:
    """The logger handed to picows, one per connection (so its lines name the peer).

    picows logs every client framing error at ERROR and every connection at INFO; for a router a
    client's bad bytes are the client's problem (INFO, one line), the rest is DEBUG. Exceptions
    (with a traceback: a failure in the router's listener or in picows) stay at ERROR.
    """

    #: picows' messages for what a client did wrong
    _CLIENT_ERRORS = ("WS parser error", "on_ws_frame raised WSProtocolError")
    #: picows' INFO lines worth keeping at INFO
    _EVENTS = ("Handshake timeout", "Disconnect because HTTP request")

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("cloverleaf.transport.picows")
        self.peer = "-"

    def isEnabledFor(self, level: int) -> bool:  # logging's name: picows asks it about its level 9
        return self.logger.isEnabledFor(level)

    def log(self, level: int, msg: str, *args: Any, exc_info: Any = None, **kwargs: Any) -> None:
        if exc_info:
            level = logging.ERROR
        elif level >= logging.ERROR and msg.startswith(self._CLIENT_ERRORS):
            level = logging.INFO
            if len(args) == 1 and isinstance(args[0], tuple) and len(args[0]) == 2:
                code, text = args[0]  # picows passes the exception's (close code, message)
                msg, args = "%s; closing with %d", (text, int(code))
        elif level >= logging.INFO and not (level == logging.INFO and msg.startswith(self._EVENTS)):
            level = logging.DEBUG if level < logging.ERROR else level
        if self.logger.isEnabledFor(level):
            self.logger.log(level, "%s: " + msg, self.peer, *args, exc_info=exc_info, **kwargs)

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(logging.DEBUG, msg, *args, **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(logging.INFO, msg, *args, **kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(logging.WARNING, msg, *args, **kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(logging.ERROR, msg, *args, **kwargs)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(logging.ERROR, msg, *args, exc_info=True, **kwargs)


_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY

#: where input read after a close goes (never looked at; one buffer for all connections)
_SCRATCH = memoryview(bytearray(65536))


class _Discard(asyncio.BufferedProtocol):
    """Reads and drops what a closed connection still receives, until the peer closes too."""

    def __init__(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_buffer(self, sizehint: int) -> memoryview:
        return _SCRATCH

    def buffer_updated(self, nbytes: int) -> None:
        pass

    def eof_received(self) -> bool:
        return False  # the transport closes: both sides are done

    def connection_lost(self, exc: Exception | None) -> None:
        self._protocol.connection_lost(exc)


class _LingeringTransport:
    """The transport picows is given: the real one, except that ``close()`` lingers.

    picows closes with ``transport.close()``, and a socket closed with unread input makes the
    kernel send a TCP reset, which may destroy the close frame (and an ABORT before it) on its way.
    Here close() half-closes instead (see :func:`linger_close`), and what arrives afterwards is
    discarded without being parsed.
    """

    def __init__(
        self, raw: asyncio.Transport, on_close: Callable[[], None], close_frame: Callable[[bytes], bytes]
    ) -> None:
        self.raw = raw
        self._on_close = on_close
        self._close_frame = close_frame
        self._closing = False
        self.writelines = raw.writelines
        self.get_extra_info = raw.get_extra_info
        self.abort = raw.abort

    def get_write_buffer_size(self) -> int:
        # Only picows asks (the router's links write to the real transport): never 0, so that it
        # hands every frame it sends to write() below instead of send()ing it on the socket itself.
        return 1

    def write(self, data: bytes) -> None:
        if data[:1] == b"\x88":  # a close frame (picows writes no other data starting so)
            data = self._close_frame(data)
        self.raw.write(data)

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._on_close()
        linger_close(self.raw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class GuardedProtocol(WSProtocol):  # type: ignore[misc]  # picows' WSProtocol is untyped
    """picows' server protocol, closing without resets and parsing nothing after a CLOSE went out."""

    def __init__(
        self,
        listener_factory: Callable[[Any], Any],
        handshake_timeout: float,
        ping_interval: float,
        ping_timeout: float,
        max_message_size: int,
    ) -> None:
        self._log = PicowsLog()
        self._raw: asyncio.Transport | None = None
        super().__init__(
            None, None, False, listener_factory, self._log, True, handshake_timeout,
            ping_interval > 0, ping_interval or 20, ping_timeout,
            WSAutoPingStrategy.PING_WHEN_IDLE, True, max_message_size, None, 1024,
        )  # fmt: skip

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        raw = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio.Transport instances
        self._raw = raw
        peer = raw.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._log.peer = f"{peer[0]}:{peer[1]}"
        super().connection_made(_LingeringTransport(raw, self._closing, self._close_frame))

    def buffer_updated(self, nbytes: int) -> None:
        super().buffer_updated(nbytes)
        if self.transport.is_close_frame_sent:
            # A CLOSE went out (ours or picows' on a parser error): the frame parser may be
            # mid-frame (a frame over the size limit is refused on its header), so nothing more
            # is parsed; the connection lingers until the client closes.
            self.transport.underlying_transport.close()

    def _close_frame(self, data: bytes) -> bytes:
        """The close frame picows is sending, or the answer to the client's close instead.

        picows parses the next frame before it delivers one: a CLOSE followed by more (a second
        CLOSE, say) makes it fail the connection on what follows before the listener has seen the
        CLOSE. What a peer sends after its close is to be ignored, so the close is answered.
        """
        handshake = self.transport.close_handshake
        listener = self.listener
        if handshake is None or handshake.recv is None or handshake.sent is not None:
            return data
        if isinstance(listener, CheckedListener) and listener.closing:
            return data  # the listener's own answer
        return bytes((0x88, 2)) + close_answer(int(handshake.recv.code.value)).to_bytes(2, "big")

    def _closing(self) -> None:
        raw = self._raw
        if raw is not None and not raw.is_closing():
            raw.set_protocol(_Discard(self))
        listener = self.listener
        if isinstance(listener, CheckedListener):
            listener.transport_closing(self.transport)


class WebSocketLimits(Protocol):
    """The settings every WebSocket endpoint of the router has (WAMP, web paths, the testee)."""

    @property
    def handshake_timeout(self) -> float: ...
    @property
    def ping_interval(self) -> float: ...
    @property
    def ping_timeout(self) -> float: ...
    @property
    def max_message_size(self) -> int: ...


def create_protocol(listener_factory: Callable[[Any], Any], limits: WebSocketLimits) -> GuardedProtocol:
    return GuardedProtocol(
        listener_factory, limits.handshake_timeout, limits.ping_interval, limits.ping_timeout, limits.max_message_size
    )


async def serve(
    accept: Callable[[Any], Any],
    limits: WebSocketLimits,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
    sock: socket.socket | None = None,
) -> asyncio.Server:
    """Listen on ``host:port`` or on ``sock`` (already listening), TLS only with ``ssl_context``,
    with the router's WebSocket stack: ``accept`` answers each upgrade request (a response with a
    listener, or None for 404)."""
    tls_options: dict[str, Any] = {"sock": sock} if sock is not None else {"host": host, "port": port}
    if ssl_context is not None:
        tls_options.update(ssl=ssl_context, ssl_handshake_timeout=limits.handshake_timeout)
    # The loop's own transport (uvloop's), not aiofastnet's: faster per read and smaller per
    # connection (measured: docs/benchmarks.md); picows' protocol as GuardedProtocol.
    loop = asyncio.get_running_loop()
    server: asyncio.Server = await loop.create_server(lambda: create_protocol(accept, limits), **tls_options)
    return server


def _utf8_decoder() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")("strict")


class CheckedListener(WSListener):
    """The frame handling of every server-side WebSocket connection: RFC 6455's checks, fragments
    joined (bounded in bytes and in frames), the closing handshake. Subclasses get whole messages
    in :meth:`deliver` and may refuse a message type (``accept_text``, ``accept_binary``)."""

    def __init__(self, max_message_size: int) -> None:
        self._max_message_size = max_message_size
        self._max_fragments = max_fragments(max_message_size)
        self._fragments: bytearray | None = None
        self._fragment_count = 0
        self._fragment_text = False
        self._utf8: codecs.IncrementalDecoder | None = None
        self._closing = False
        self._ping_unanswered = False

    # -- what subclasses implement ---------------------------------------------------------------

    def deliver(self, transport: WSTransport, payload: bytes, text: bool) -> None:  # pragma: no cover
        raise NotImplementedError

    #: whether text (binary) messages are acceptable; if not, they fail the connection with 1003
    accept_text = True
    accept_binary = True

    def stop(self, transport: WSTransport) -> None:
        """The connection is closing: nothing may be sent any more except the close frame."""

    def describe(self, transport: WSTransport) -> str:
        peer = transport.underlying_transport.get_extra_info("peername")
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "-"

    # -- picows' callbacks -----------------------------------------------------------------------

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self._closing or transport.is_close_frame_sent:
            return  # after our CLOSE (or picows'), nothing is processed: the peer's close is awaited
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            self.fail(transport, WSCloseCode.PROTOCOL_ERROR, "reserved bits set (no extension negotiated)")
            return
        msg_type = frame.msg_type
        if msg_type is _TEXT:
            text = True
        elif msg_type is _BINARY:
            text = False
        else:
            self._other_frame(transport, frame, msg_type)
            return
        if self._fragments is not None:
            self.fail(transport, WSCloseCode.PROTOCOL_ERROR, "a new message inside a fragmented one")
        elif not (self.accept_text if text else self.accept_binary):
            self.fail(transport, WSCloseCode.UNSUPPORTED_DATA, "wrong frame type for the negotiated subprotocol")
        elif frame.fin:
            payload = frame.get_payload_as_bytes()
            if text and not payload.isascii() and not _is_utf8(payload):
                self.fail(transport, WSCloseCode.INVALID_TEXT, "text message is not valid UTF-8")
            else:
                self.deliver(transport, payload, text)
        else:
            self._fragments = bytearray()
            self._fragment_count = 0
            self._fragment_text = text
            self._utf8 = _utf8_decoder() if text else None
            self._add_fragment(transport, frame)

    def _other_frame(self, transport: WSTransport, frame: WSFrame, msg_type: WSMsgType) -> None:
        if msg_type is WSMsgType.CONTINUATION:
            if self._fragments is None:
                self.fail(transport, WSCloseCode.PROTOCOL_ERROR, "continuation frame without a message to continue")
            else:
                self._add_fragment(transport, frame)
            return
        if msg_type is WSMsgType.CLOSE:
            self._answer_close(transport, frame)
        # PING is answered by picows, PONG needs nothing

    def _add_fragment(self, transport: WSTransport, frame: WSFrame) -> None:
        fragments = self._fragments
        assert fragments is not None
        self._fragment_count += 1
        if len(fragments) + frame.payload_size > self._max_message_size:
            self.fail(transport, WSCloseCode.MESSAGE_TOO_BIG, f"message over {self._max_message_size} bytes")
            return
        if self._fragment_count > self._max_fragments:
            self.fail(transport, WSCloseCode.POLICY_VIOLATION, f"message in more than {self._max_fragments} frames")
            return
        chunk = frame.get_payload_as_memoryview()
        if self._utf8 is not None:
            try:
                self._utf8.decode(chunk, frame.fin)  # fails as soon as a fragment cannot be UTF-8
            except UnicodeDecodeError:
                self.fail(transport, WSCloseCode.INVALID_TEXT, "text message is not valid UTF-8")
                return
        fragments += chunk
        if frame.fin:
            self._fragments = None
            self._utf8 = None
            self.deliver(transport, bytes(fragments), self._fragment_text)

    def _answer_close(self, transport: WSTransport, frame: WSFrame) -> None:
        # picows has refused a one-byte payload, a reason that is not UTF-8 and codes under 3000
        # it does not know; 0, 1005, 1006, 1012-1014 and 5000 and up are left to here.
        if frame.payload_size == 0:
            code = WSCloseCode.OK.value  # an empty close is answered with 1000, never with "no code"
        else:
            code = frame.get_close_code().value
            if code not in VALID_CLOSE_CODES:
                self.fail(transport, WSCloseCode.PROTOCOL_ERROR, f"close code {code} may not be sent")
                return
        self._closing = True
        self.stop(transport)
        transport.send_close(WSCloseCode(code))
        transport.disconnect()

    def fail(self, transport: WSTransport, code: WSCloseCode, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): a close frame with ``code``, then the close."""
        if self._closing:
            return
        self._closing = True
        log.info("%s: %s; closing with %d", self.describe(transport), reason, code.value)
        self.stop(transport)
        transport.send_close(code, reason.encode()[:123])
        transport.disconnect()

    @property
    def closing(self) -> bool:
        """Whether this listener has failed the connection or answered the client's close."""
        return self._closing

    def transport_closing(self, transport: WSTransport) -> None:
        """Called by :class:`GuardedProtocol` once the connection closes, whoever closed it."""
        if not self._closing:
            self._closing = True
            self.stop(transport)

    def send_user_specific_ping(self, transport: WSTransport) -> None:
        self._ping_unanswered = True  # picows' auto-ping (after ping_interval of silence)
        transport.send_ping()

    def is_user_specific_pong(self, frame: WSFrame) -> bool:
        if frame.msg_type is WSMsgType.PONG:
            self._ping_unanswered = False
            return True
        return False

    def ping_timed_out(self, transport: WSTransport) -> bool:
        """Whether picows' auto-ping closed the connection: no PONG came within ping_timeout, and
        it sent 1001 (in on_ws_disconnected)."""
        handshake = transport.close_handshake
        return (
            self._ping_unanswered
            and handshake is not None
            and handshake.sent is not None
            and handshake.sent.code == WSCloseCode.GOING_AWAY
        )

    def pause_writing(self) -> None:
        pass  # the router measures each link's backlog itself (and picows would log a warning)

    def resume_writing(self) -> None:
        pass


def _is_utf8(payload: bytes) -> bool:
    try:
        payload.decode()
    except UnicodeDecodeError:
        return False
    return True
