"""The core NATS protocol parser and commands of the cluster's data plane (cloverleaf.cluster.natsproto)."""

from __future__ import annotations

import base64

import nkeys
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloverleaf.cluster import natsproto
from cloverleaf.cluster.natsproto import Err, Info, Msg, NatsParser, NatsProtocolError, Ok, Ping, Pong

STREAM = (
    b'INFO {"server_id":"X","max_payload":1048576,"nonce":"abc","connect_urls":["127.0.0.1:4223"]}\r\n'
    b"MSG cloverleaf.c.inbox 1 5\r\nhello\r\n"
    b"PING\r\n"
    b"MSG a.b 2 reply.to 3\r\n\r\n\x00\r\n"  # a payload holding CRLF and a zero byte
    b"msg lower.case 1 0\r\n\r\n"  # operation names are case-insensitive
    b"HMSG h.s 3 22 27\r\nNATS/1.0\r\nX-Key: v\r\n\r\nbody!\r\n"
    b"PONG\r\n+OK\r\n-ERR 'Authorization Violation'\r\n"
)
EXPECTED = [
    Info({"server_id": "X", "max_payload": 1048576, "nonce": "abc", "connect_urls": ["127.0.0.1:4223"]}),
    Msg("cloverleaf.c.inbox", 1, "", b"hello"),
    Ping(),
    Msg("a.b", 2, "reply.to", b"\r\n\x00"),
    Msg("lower.case", 1, "", b""),
    Msg("h.s", 3, "", b"body!", b"NATS/1.0\r\nX-Key: v\r\n\r\n"),
    Pong(),
    Ok(),
    Err("Authorization Violation"),
]


def test_a_stream_read_at_once() -> None:
    assert NatsParser().feed(STREAM) == EXPECTED


def test_a_stream_read_byte_by_byte() -> None:
    parser = NatsParser()
    events = []
    for index in range(len(STREAM)):
        events.extend(parser.feed(STREAM[index : index + 1]))
    assert events == EXPECTED


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split_of_the_stream_gives_the_same_events(cuts: list[int]) -> None:
    parser = NatsParser()
    events = []
    previous = 0
    for cut in [*sorted(cuts), len(STREAM)]:
        events.extend(parser.feed(STREAM[previous:cut]))
        previous = cut
    assert events == EXPECTED


@pytest.mark.parametrize(
    "bad",
    [
        b"MSG only.subject\r\n",
        b"MSG s 1 2 3 4 5\r\n",
        b"MSG s one 3\r\nabc\r\n",
        b"MSG s 1 -3\r\n",
        b"HMSG s 1 9 3\r\n",  # headers longer than the whole message
        b"MSG s 1 3\r\nabcXY",  # the payload is not followed by CRLF
        b"INFO not json\r\n",
        b"INFO [1, 2]\r\n",
        b"HELLO there\r\n",
    ],
)
def test_what_is_not_the_protocol_is_refused(bad: bytes) -> None:
    with pytest.raises(NatsProtocolError):
        NatsParser().feed(bad)


def test_sizes_are_bounded_before_anything_is_buffered() -> None:
    parser = NatsParser(max_payload=1000)
    with pytest.raises(NatsProtocolError):
        parser.feed(b"MSG s 1 1001\r\n")
    with pytest.raises(NatsProtocolError):  # a control line without end
        NatsParser().feed(b"INFO " + b"x" * (natsproto.MAX_CONTROL_LINE + 10))


def test_commands() -> None:
    assert natsproto.subscribe("cloverleaf.c.abc", 7) == b"SUB cloverleaf.c.abc 7\r\n"
    assert natsproto.publish_header("x.y", 12) == b"PUB x.y 12\r\n"
    assert natsproto.connect({"verbose": False, "user": "u"}) == b'CONNECT {"verbose":false,"user":"u"}\r\n'
    for bad in ("", "with space", "tab\tsubject"):
        with pytest.raises(ValueError):
            natsproto.subscribe(bad, 1)


def test_credentials_file_and_nonce_signature() -> None:
    seed = nkeys.encode_seed(bytes(range(32)), nkeys.PREFIX_BYTE_USER)
    creds = (
        "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5In0.e30.c2ln\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\nNKEY Seed printed below ...\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{seed.decode()}\n------END USER NKEY SEED------\n\n"
        "*************************************************************\n"
    )
    jwt, read_seed = natsproto.read_credentials(creds)
    assert jwt == "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5In0.e30.c2ln"
    assert read_seed == seed
    signature = natsproto.sign_nonce(read_seed, "nonce-from-info")
    public = nkeys.from_seed(bytearray(seed))
    assert public.verify(b"nonce-from-info", base64.b64decode(signature))
    with pytest.raises(ValueError):
        natsproto.read_credentials("-----BEGIN NATS USER JWT-----\nonly.a.jwt\n------END NATS USER JWT------\n")
