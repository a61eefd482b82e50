"""RawSocket framing, sans-I/O (spec: advanced/transport_rawsocket.md; ``docs/spec-notes.md`` (f)).

Handshake: ``0x7F, LLLL SSSS, 0x00, 0x00``; max length ``2 ** (9 + L)``; error reply
``0x7F, EEEE 0000, 0, 0``. Frames: ``RRRR XTTT`` + 24-bit big-endian length, TTT 0 message,
1 PING, 2 PONG, 3-7 reserved; X is a 25th length bit, set only for a length of exactly 2^24.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloverleaf.wamp.errors import ProtocolError
from cloverleaf.wamp.rawsocket import (
    MAGIC,
    MAX_LENGTH_EXPONENT,
    FrameType,
    HandshakeError,
    RawSocketClient,
    RawSocketError,
    RawSocketServer,
    frame,
    frame_header,
    handshake,
    handshake_error,
    length_exponent_for,
)

SERIALIZER_IDS = (1, 2, 3)


def _server(max_message_size: int = 65536) -> RawSocketServer:
    return RawSocketServer(SERIALIZER_IDS, max_message_size)


def _open_server(max_message_size: int = 65536, client_exponent: int = 15, serializer_id: int = 1) -> RawSocketServer:
    server = _server(max_message_size)
    assert server.receive(bytes((0x7F, client_exponent << 4 | serializer_id, 0, 0))) == []
    server.data_to_send()
    return server


def _feed_in_chunks(peer: RawSocketServer | RawSocketClient, data: bytes, cuts: list[int]) -> list[bytes]:
    out: list[bytes] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        out += peer.receive(data[start:cut])
        start = cut
    return out


# -- building blocks -----------------------------------------------------------------------------


def test_constants() -> None:
    assert MAGIC == 0x7F
    assert MAX_LENGTH_EXPONENT == 15
    assert (FrameType.MESSAGE, FrameType.PING, FrameType.PONG) == (0, 1, 2)
    assert [int(code) for code in HandshakeError] == [1, 2, 3, 4]
    assert issubclass(RawSocketError, ProtocolError)


@pytest.mark.parametrize(
    ("size", "exponent"),
    [(1, 0), (511, 0), (512, 0), (1023, 0), (1024, 1), (65535, 6), (65536, 7), (2**20, 11), (2**24 - 1, 14),
     (2**24, 15), (2**30, 15)],
)
def test_length_exponent_for(size: int, exponent: int) -> None:
    assert length_exponent_for(size) == exponent


def test_handshake_bytes() -> None:
    assert handshake(1, 15) == bytes.fromhex("7ff10000")  # the spec's example: JSON, 16 MiB
    assert handshake(2, 0) == bytes.fromhex("7f020000")
    assert handshake(3, 7) == bytes.fromhex("7f730000")


def test_handshake_error_bytes() -> None:
    assert handshake_error(HandshakeError.SERIALIZER_UNSUPPORTED) == bytes.fromhex("7f100000")
    assert handshake_error(HandshakeError.MAX_LENGTH_UNACCEPTABLE) == bytes.fromhex("7f200000")
    assert handshake_error(HandshakeError.RESERVED_BITS_USED) == bytes.fromhex("7f300000")
    assert handshake_error(HandshakeError.MAX_CONNECTIONS_REACHED) == bytes.fromhex("7f400000")


@pytest.mark.parametrize(
    ("length", "kind", "header"),
    [
        (0, FrameType.MESSAGE, "00000000"),
        (1, FrameType.PING, "01000001"),
        (0x123456, FrameType.PONG, "02123456"),
        (2**24 - 1, FrameType.MESSAGE, "00ffffff"),
        (2**24, FrameType.MESSAGE, "08000000"),  # X bit: the 25th length bit, only for exactly 2^24
    ],
)
def test_frame_header(length: int, kind: FrameType, header: str) -> None:
    assert frame_header(length, kind).hex() == header


def test_frame_header_refuses_lengths_it_cannot_express() -> None:
    # Above 2^24 the header would silently carry a wrong length.
    with pytest.raises((ValueError, OverflowError)):
        frame_header(2**24 + 1)


def test_frame() -> None:
    assert frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert frame(b"", FrameType.PING) == b"\x01\x00\x00\x00"


# -- server handshake ----------------------------------------------------------------------------


@pytest.mark.parametrize("serializer_id", SERIALIZER_IDS)
@pytest.mark.parametrize("client_exponent", [0, 7, 15])
def test_server_accepts_handshake(serializer_id: int, client_exponent: int) -> None:
    server = _server(65536)
    assert not server.is_open
    assert server.receive(bytes((0x7F, client_exponent << 4 | serializer_id, 0, 0))) == []
    assert server.is_open
    assert server.serializer_id == serializer_id
    assert server.peer_max_length == 2 ** (9 + client_exponent)
    # Echo the serializer, announce our own limit: 65536 = 2 ** (9 + 7).
    assert server.data_to_send() == bytes((0x7F, 0x70 | serializer_id, 0, 0))
    assert server.data_to_send() == b""


@pytest.mark.parametrize(
    ("max_message_size", "reply"),
    [(512, 0x01), (1000, 0x01), (1024, 0x11), (2**20, 0xB1), (2**24, 0xF1)],
)
def test_server_announces_its_length_exponent(max_message_size: int, reply: int) -> None:
    server = _server(max_message_size)
    server.receive(bytes.fromhex("7ff10000"))
    assert server.data_to_send() == bytes((0x7F, reply, 0, 0))


def test_server_handshake_byte_by_byte() -> None:
    server = _server()
    for byte in bytes.fromhex("7f2100"):
        assert server.receive(bytes((byte,))) == []
        assert not server.is_open
        assert server.data_to_send() == b""
    assert server.receive(b"\x00") == []
    assert server.is_open
    assert server.data_to_send() == bytes.fromhex("7f710000")


def test_server_handshake_and_frames_in_one_chunk() -> None:
    server = _server()
    data = bytes.fromhex("7ff10000") + frame(b"[1]") + frame(b"ping", FrameType.PING) + frame(b"[2]")
    assert server.receive(data) == [b"[1]", b"[2]"]
    assert server.data_to_send() == bytes.fromhex("7f710000") + frame(b"ping", FrameType.PONG)


@pytest.mark.parametrize("first", [0x00, 0x7E, 0xFF, ord("G")], ids=hex)
def test_server_rejects_bad_magic(first: int) -> None:
    server = _server()
    with pytest.raises(RawSocketError):
        server.receive(bytes((first, 0xF1, 0, 0)))
    assert not server.is_open
    assert server.data_to_send() == b""  # no reply: fail the connection


def test_server_rejects_http_request() -> None:
    server = _server()
    with pytest.raises(RawSocketError):
        server.receive(b"GET /ws HTTP/1.1\r\n")


@pytest.mark.parametrize("serializer_id", [0, 4, 5, 6, 15])
def test_server_rejects_unsupported_serializer(serializer_id: int) -> None:
    server = _server()
    with pytest.raises(RawSocketError):
        server.receive(bytes((0x7F, 0xF0 | serializer_id, 0, 0)))
    assert server.data_to_send() == bytes.fromhex("7f100000")
    assert not server.is_open


def test_server_supports_only_configured_serializers() -> None:
    server = RawSocketServer([2], 65536)
    with pytest.raises(RawSocketError):
        server.receive(bytes.fromhex("7ff10000"))
    assert server.data_to_send() == bytes.fromhex("7f100000")
    server = RawSocketServer([2], 65536)
    server.receive(bytes.fromhex("7ff20000"))
    assert server.data_to_send() == bytes.fromhex("7f720000")


@pytest.mark.parametrize("reserved", ["0001", "0100", "ffff", "8000"])
def test_server_rejects_reserved_bytes(reserved: str) -> None:
    server = _server()
    with pytest.raises(RawSocketError):
        server.receive(bytes.fromhex("7ff1" + reserved))
    assert server.data_to_send() == bytes.fromhex("7f300000")
    assert not server.is_open


# -- server frames -------------------------------------------------------------------------------


def test_server_frames() -> None:
    server = _open_server()
    assert server.receive(frame(b"[1,2]")) == [b"[1,2]"]
    assert server.receive(frame(b"") + frame(b"x")) == [b"", b"x"]
    assert server.data_to_send() == b""


@pytest.mark.parametrize("payload", [b"", b"x", b"\x00\xff" * 100, bytes(range(256))], ids=len)
def test_ping_answered_with_pong_carrying_the_same_payload(payload: bytes) -> None:
    server = _open_server()
    assert server.receive(frame(payload, FrameType.PING)) == []
    assert server.data_to_send() == frame(payload, FrameType.PONG)


def test_one_pong_per_ping_in_order() -> None:
    server = _open_server()
    data = frame(b"1", FrameType.PING) + frame(b"[]") + frame(b"2", FrameType.PING)
    assert server.receive(data) == [b"[]"]
    assert server.data_to_send() == frame(b"1", FrameType.PONG) + frame(b"2", FrameType.PONG)


def test_pong_is_consumed_silently() -> None:
    server = _open_server()
    assert server.receive(frame(b"zz", FrameType.PONG) + frame(b"[]")) == [b"[]"]
    assert server.data_to_send() == b""


def test_partial_ping_is_not_answered_yet() -> None:
    server = _open_server()
    data = frame(b"abcd", FrameType.PING)
    assert server.receive(data[:6]) == []
    assert server.data_to_send() == b""
    assert server.receive(data[6:]) == []
    assert server.data_to_send() == frame(b"abcd", FrameType.PONG)


def test_frame_at_the_limit_accepted() -> None:
    server = _open_server(max_message_size=1024)
    payload = b"x" * 1024
    assert server.receive(frame(payload)) == [payload]


@pytest.mark.parametrize("kind", [FrameType.MESSAGE, FrameType.PING, FrameType.PONG])
def test_oversize_frame_rejected_from_its_header(kind: FrameType) -> None:
    server = _open_server(max_message_size=1024)
    with pytest.raises(RawSocketError):
        server.receive(frame_header(1025, kind))  # no need to wait for the payload


def test_limit_is_the_announced_power_of_two() -> None:
    # max_message_size 1000 announces L=0 (512 bytes); anything above 1000 must be refused.
    server = _open_server(max_message_size=1000)
    assert server.receive(frame(b"y" * 512)) == [b"y" * 512]
    with pytest.raises(RawSocketError):
        server.receive(frame_header(1001))


@pytest.mark.parametrize("first", [3, 4, 5, 6, 7, 0x10, 0x80, 0xF0, 0x11, 0xFF], ids=hex)
def test_reserved_frame_type_or_bits_rejected(first: int) -> None:
    server = _open_server()
    with pytest.raises(RawSocketError):
        server.receive(bytes((first, 0, 0, 1)) + b"x")


def test_frame_of_exactly_16_mib_with_x_bit() -> None:
    # advanced/transport_rawsocket.md: X is set only for a length of exactly 2^24, which L=15 allows.
    server = _open_server(max_message_size=2**24)
    payload = bytes(2**24)
    assert server.receive(bytes((0x08, 0, 0, 0))) == []
    assert server.receive(payload) == [payload]


@settings(max_examples=100, deadline=None)
@given(
    messages=st.lists(st.tuples(st.sampled_from([FrameType.MESSAGE, FrameType.PING, FrameType.PONG]),
                                st.binary(max_size=40)), max_size=8),
    data=st.data(),
)
def test_frames_split_at_arbitrary_chunk_boundaries(
    messages: list[tuple[FrameType, bytes]], data: st.DataObject
) -> None:
    wire = bytes.fromhex("7f320000") + b"".join(frame(payload, kind) for kind, payload in messages)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=12))
    server = _server()
    received = _feed_in_chunks(server, wire, cuts)
    assert received == [payload for kind, payload in messages if kind is FrameType.MESSAGE]
    pongs = b"".join(frame(payload, FrameType.PONG) for kind, payload in messages if kind is FrameType.PING)
    assert server.data_to_send() == bytes.fromhex("7f720000") + pongs
    assert server.serializer_id == 2


# -- client side ---------------------------------------------------------------------------------


def test_client_sends_handshake() -> None:
    assert RawSocketClient(1).data_to_send() == bytes.fromhex("7ff10000")
    assert RawSocketClient(2, 65536).data_to_send() == bytes.fromhex("7f720000")
    assert RawSocketClient(3, 1000).data_to_send() == bytes.fromhex("7f030000")
    client = RawSocketClient(1)
    client.data_to_send()
    assert client.data_to_send() == b""


def test_client_accepts_reply() -> None:
    client = RawSocketClient(2)
    assert not client.is_open
    assert client.receive(bytes.fromhex("7f720000")) == []
    assert client.is_open
    assert client.peer_max_length == 65536


def test_client_reply_split_and_followed_by_frames() -> None:
    client = RawSocketClient(1)
    data = bytes.fromhex("7fb10000") + frame(b"[2,1,{}]") + frame(b"p", FrameType.PING)
    assert _feed_in_chunks(client, data, [1, 2, 3, 5, 9]) == [b"[2,1,{}]"]
    assert client.peer_max_length == 2**20
    # the handshake request (queued at construction), then the PONG
    assert client.data_to_send() == bytes.fromhex("7ff10000") + frame(b"p", FrameType.PONG)


def test_client_answers_ping() -> None:
    client = RawSocketClient(1)
    client.data_to_send()
    client.receive(bytes.fromhex("7ff10000") + frame(b"hello", FrameType.PING))
    assert client.data_to_send() == frame(b"hello", FrameType.PONG)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("7f100000", "serializer_unsupported"),
        ("7f200000", "max_length_unacceptable"),
        ("7f300000", "reserved_bits_used"),
        ("7f400000", "max_connections_reached"),
        ("7f900000", "code 9"),
    ],
)
def test_client_handshake_refused(reply: str, reason: str) -> None:
    client = RawSocketClient(1)
    with pytest.raises(RawSocketError, match=reason):
        client.receive(bytes.fromhex(reply))
    assert not client.is_open


def test_client_rejects_other_serializer() -> None:
    client = RawSocketClient(1)
    with pytest.raises(RawSocketError):
        client.receive(bytes.fromhex("7ff20000"))


def test_client_rejects_bad_magic() -> None:
    client = RawSocketClient(1)
    with pytest.raises(RawSocketError):
        client.receive(bytes.fromhex("48545450"))  # "HTTP"


def test_client_rejects_oversize_and_reserved_frames() -> None:
    client = RawSocketClient(1, 1024)
    client.receive(bytes.fromhex("7ff10000"))
    with pytest.raises(RawSocketError):
        client.receive(frame_header(1025))
    client = RawSocketClient(1, 1024)
    client.receive(bytes.fromhex("7ff10000"))
    with pytest.raises(RawSocketError):
        client.receive(b"\x03\x00\x00\x00")


@settings(max_examples=60, deadline=None)
@given(payloads=st.lists(st.binary(max_size=30), max_size=6), data=st.data())
def test_client_frames_split_at_arbitrary_chunk_boundaries(payloads: list[bytes], data: st.DataObject) -> None:
    wire = bytes.fromhex("7ff30000") + b"".join(frame(p) for p in payloads)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=10))
    client = RawSocketClient(3)
    assert _feed_in_chunks(client, wire, cuts) == payloads
    assert client.is_open


def test_client_and_server_talk() -> None:
    client = RawSocketClient(2, 4096)
    server = _server(65536)
    assert server.receive(client.data_to_send()) == []
    assert client.receive(server.data_to_send()) == []
    assert (server.peer_max_length, client.peer_max_length) == (4096, 65536)
    assert server.receive(frame(b"hello") + frame(b"?", FrameType.PING)) == [b"hello"]
    assert client.receive(server.data_to_send()) == []  # the PONG
