"""RawSocket framing (spec: basic/transports, "RawSocket Transport"), sans-I/O.

A connection starts with a 4-byte handshake in each direction: ``0x7F``, a byte whose high nibble
is the length exponent (maximum message length ``2 ** (9 + L)``) and whose low nibble is the
serializer ID, then two reserved zero bytes. After it, every frame has a 4-byte header: one byte
whose low 3 bits are the frame type (0 WAMP message, 1 PING, 2 PONG) and a 24-bit big-endian length.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import IntEnum

from .errors import ProtocolError

MAGIC = 0x7F
MAX_LENGTH_EXPONENT = 15  # 2 ** (9 + 15) = 16 MiB, the most a 24-bit length can carry


class FrameType(IntEnum):
    MESSAGE = 0
    PING = 1
    PONG = 2


class HandshakeError(IntEnum):
    """Error codes a server sends in place of an accepting handshake reply."""

    SERIALIZER_UNSUPPORTED = 1
    MAX_LENGTH_UNACCEPTABLE = 2
    RESERVED_BITS_USED = 3
    MAX_CONNECTIONS_REACHED = 4


class RawSocketError(ProtocolError):
    """The RawSocket peer broke the framing rules; the connection must be closed."""


def length_exponent_for(max_message_size: int) -> int:
    """The largest exponent L with ``2 ** (9 + L) <= max_message_size`` (at least 0, at most 15)."""
    exponent = 0
    while exponent < MAX_LENGTH_EXPONENT and 2 ** (9 + exponent + 1) <= max_message_size:
        exponent += 1
    return exponent


def handshake(serializer_id: int, length_exponent: int) -> bytes:
    """The 4 handshake bytes announcing a serializer and our maximum receivable message length."""
    return bytes((MAGIC, (length_exponent << 4) | serializer_id, 0, 0))


def handshake_error(code: HandshakeError) -> bytes:
    """The 4 bytes a server sends to refuse a handshake."""
    return bytes((MAGIC, int(code) << 4, 0, 0))


def frame_header(length: int, frame_type: FrameType = FrameType.MESSAGE) -> bytes:
    """The 4-byte header preceding a payload of ``length`` bytes."""
    if length == 1 << 24:  # the X bit is the 25th length bit, used only for exactly 2^24
        return bytes((frame_type | 0x08, 0, 0, 0))
    if not 0 <= length < 1 << 24:
        raise ValueError(f"a RawSocket frame cannot carry {length} bytes")
    return bytes((frame_type, (length >> 16) & 0xFF, (length >> 8) & 0xFF, length & 0xFF))


def _parse_header(first: int, length: int) -> tuple[int, int]:
    """Frame type and payload length from the first header byte and the 24-bit length field."""
    if first & 0xF0 or first & 0x07 > 2 or (first & 0x08 and length):
        raise RawSocketError(f"RawSocket frame header uses reserved bits or a reserved type (0x{first:02x})")
    return first & 0x07, (1 << 24 if first & 0x08 else length)


def frame(payload: bytes, frame_type: FrameType = FrameType.MESSAGE) -> bytes:
    """A whole frame: header and payload."""
    return frame_header(len(payload), frame_type) + payload


class RawSocketServer:
    """The server side of one RawSocket connection: handshake, then frames in, payloads out.

    ``receive`` returns the WAMP message payloads completed by the data; PINGs are answered by
    queuing a PONG, and everything to be written (handshake reply, PONGs) is collected by
    ``data_to_send``. A breach of the framing rules raises :class:`RawSocketError`, after which the
    connection is unusable and the caller should write ``data_to_send()`` and close.
    """

    __slots__ = (
        "_buffer",
        "_length_exponent",
        "_max_receive",
        "_outgoing",
        "_serializer_ids",
        "peer_max_length",
        "serializer_id",
    )

    def __init__(self, serializer_ids: Collection[int], max_message_size: int) -> None:
        self._serializer_ids = frozenset(serializer_ids)
        self._length_exponent = length_exponent_for(max_message_size)
        self._max_receive = min(max_message_size, 2 ** (9 + self._length_exponent))
        self._buffer = bytearray()
        self._outgoing = bytearray()
        #: serializer chosen by the client, once the handshake completed
        self.serializer_id: int | None = None
        #: the longest message the client accepts
        self.peer_max_length = 0

    @property
    def is_open(self) -> bool:
        return self.serializer_id is not None

    def data_to_send(self) -> bytes:
        """Bytes queued for the peer (handshake reply, PONGs); empties the queue."""
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    def receive(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Feed received bytes; return the complete WAMP payloads they finished, in order."""
        buffer = self._buffer
        buffer += data
        if self.serializer_id is None:
            if len(buffer) < 4:
                return []
            self._accept_handshake(bytes(buffer[:4]))
            del buffer[:4]
        payloads: list[bytes] = []
        offset = 0
        available = len(buffer)
        while available - offset >= 4:
            kind, length = _parse_header(
                buffer[offset], (buffer[offset + 1] << 16) | (buffer[offset + 2] << 8) | buffer[offset + 3]
            )
            if length > self._max_receive:
                raise RawSocketError(f"RawSocket message of {length} bytes exceeds the limit of {self._max_receive}")
            end = offset + 4 + length
            if end > available:
                break
            payload = bytes(buffer[offset + 4 : end])
            offset = end
            if kind == FrameType.MESSAGE:
                payloads.append(payload)
            elif kind == FrameType.PING:
                self._outgoing += frame(payload, FrameType.PONG)
            # PONG frames need no action: receiving anything proves the peer is alive.
        if offset:
            del buffer[:offset]
        return payloads

    def _accept_handshake(self, request: bytes) -> None:
        if request[0] != MAGIC:
            raise RawSocketError("not a RawSocket handshake (first byte is not 0x7F)")
        if request[2] or request[3]:
            self._outgoing += handshake_error(HandshakeError.RESERVED_BITS_USED)
            raise RawSocketError("RawSocket handshake uses reserved bytes")
        serializer_id = request[1] & 0x0F
        if serializer_id not in self._serializer_ids:
            self._outgoing += handshake_error(HandshakeError.SERIALIZER_UNSUPPORTED)
            raise RawSocketError(f"RawSocket serializer {serializer_id} is not supported")
        self.peer_max_length = 2 ** (9 + (request[1] >> 4))
        self.serializer_id = serializer_id
        self._outgoing += handshake(serializer_id, self._length_exponent)


class RawSocketClient:
    """The client side of one RawSocket connection (used by the Cloverleaf client)."""

    __slots__ = ("_buffer", "_max_receive", "_outgoing", "_serializer_id", "is_open", "peer_max_length")

    def __init__(self, serializer_id: int, max_message_size: int = 2**24) -> None:
        exponent = length_exponent_for(max_message_size)
        self._serializer_id = serializer_id
        self._max_receive = 2 ** (9 + exponent)
        self._buffer = bytearray()
        self._outgoing = bytearray(handshake(serializer_id, exponent))
        self.is_open = False
        self.peer_max_length = 0

    def data_to_send(self) -> bytes:
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    def receive(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        if not self.is_open:
            if len(buffer) < 4:
                return []
            reply = bytes(buffer[:4])
            del buffer[:4]
            if reply[0] != MAGIC:
                raise RawSocketError("the server's RawSocket handshake reply is invalid")
            if reply[1] & 0x0F == 0:
                code = reply[1] >> 4
                try:
                    name = HandshakeError(code).name.lower()
                except ValueError:
                    name = f"code {code}"
                raise RawSocketError(f"the server refused the RawSocket handshake: {name}")
            if reply[1] & 0x0F != self._serializer_id:
                raise RawSocketError("the server answered with another serializer")
            self.peer_max_length = 2 ** (9 + (reply[1] >> 4))
            self.is_open = True
        payloads: list[bytes] = []
        while len(buffer) >= 4:
            kind, length = _parse_header(buffer[0], (buffer[1] << 16) | (buffer[2] << 8) | buffer[3])
            if length > self._max_receive:
                raise RawSocketError("RawSocket message exceeds our announced limit")
            if len(buffer) < 4 + length:
                break
            payload = bytes(buffer[4 : 4 + length])
            del buffer[: 4 + length]
            if kind == FrameType.MESSAGE:
                payloads.append(payload)
            elif kind == FrameType.PING:
                self._outgoing += frame(payload, FrameType.PONG)
        return payloads
