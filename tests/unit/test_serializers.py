"""Serializers: the JSON binary convention, and "decode raises SerializationError or succeeds".

Spec: basic/building_blocks "Serializers" and advanced/serialization_binary_json.md (summarised in
``docs/spec-notes.md`` section (g)): bytes travel in JSON as a string of one NUL character followed
by the standard, padded base64 of the bytes.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloverleaf.wamp import errors
from cloverleaf.wamp.errors import ProtocolError, SerializationError
from cloverleaf.wamp.serializers import (
    BY_RAWSOCKET_ID,
    BY_SUBPROTOCOL,
    CBOR,
    JSON,
    MSGPACK,
    SERIALIZERS,
    Serializer,
)

ALL = [JSON, MSGPACK, CBOR]

# The exception types ``encode`` may raise: SerializationError, or the dedicated UnencodableError
# where the core has it (an unencodable value is the recipient's problem, not a protocol violation
# of the sender). Anything else (RecursionError, UnicodeEncodeError, ...) escapes the router's
# error handling.
ENCODE_ERRORS: tuple[type[Exception], ...] = (SerializationError, *(
    [errors.UnencodableError] if hasattr(errors, "UnencodableError") else []
))


def _name(serializer: Serializer) -> str:
    return serializer.NAME


# -- registry ------------------------------------------------------------------------------------


def test_registry() -> None:
    assert SERIALIZERS == {"json": JSON, "msgpack": MSGPACK, "cbor": CBOR}
    assert BY_SUBPROTOCOL == {"wamp.2.json": JSON, "wamp.2.msgpack": MSGPACK, "wamp.2.cbor": CBOR}
    assert BY_RAWSOCKET_ID == {1: JSON, 2: MSGPACK, 3: CBOR}  # advanced/transport_rawsocket.md
    assert (JSON.BINARY, MSGPACK.BINARY, CBOR.BINARY) == (False, True, True)  # text frames only for JSON


def test_serialization_error_is_a_protocol_error() -> None:
    assert issubclass(SerializationError, ProtocolError)


# -- JSON binary convention ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (b"\x00\x01", "\x00AAE="),
        (b"", "\x00"),
        (b"\xff", "\x00/w=="),
        (b"abc", "\x00YWJj"),
        # The spec's own example (advanced/serialization_binary_json.md).
        (bytes.fromhex("10e3ff9053075c526f5fc06d4fe37cdb"), "\x00EOP/kFMHXFJvX8BtT+N82w=="),
    ],
    ids=repr,
)
def test_json_binary_convention_both_ways(value: bytes, text: str) -> None:
    encoded = JSON.encode([value])
    assert json.loads(encoded) == [text]
    assert encoded == json.dumps([text], separators=(",", ":")).encode()  # i.e. "\u0000..." on the wire
    assert JSON.decode(encoded) == [value]
    assert type(JSON.decode(encoded)[0]) is bytes


def test_json_binary_wire_form() -> None:
    assert JSON.encode([b"\x00\x01"]) == b'["\\u0000AAE="]'
    assert JSON.decode(b'["\\u0000AAE="]') == [b"\x00\x01"]


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview], ids=lambda k: k.__name__)
def test_json_encodes_every_bytes_like(kind: Any) -> None:
    assert JSON.encode([kind(b"\x00\x01")]) == b'["\\u0000AAE="]'


def test_json_binary_nested_in_lists_and_dicts() -> None:
    message = [
        16, 1, {}, "com.myapp.topic",
        [b"\x01", [b"\x02", [b"\x03", "plain"]], {"k": b"\x04"}],
        {"a": b"\x05", "b": {"c": [b"\x06", {"d": b""}]}, "s": "text"},
    ]
    encoded = JSON.encode(message)
    assert b'"\\u0000AQ=="' in encoded
    assert JSON.decode(encoded) == message


def test_json_dict_keys_stay_strings() -> None:
    # Dict keys must be strings (messages.md): a NUL-prefixed key is not turned into bytes.
    assert JSON.decode(b'[{"\\u0000AAE=": "\\u0000AAE="}]') == [{"\x00AAE=": b"\x00\x01"}]


def test_json_strings_without_nul_are_untouched() -> None:
    for text in ["AAE=", " \\u0000", "a\x00b", "x\x00AAE="]:
        assert JSON.decode(JSON.encode([text])) == [text]


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview], ids=lambda k: k.__name__)
def test_json_decode_accepts_every_bytes_like(kind: Any) -> None:
    # The signature admits bytes, bytearray and memoryview; all must apply the binary convention.
    payload = b'[36,1,2,{},["\\u0000AAE=",{"k":"\\u0000/w=="}]]'
    assert JSON.decode(kind(payload)) == [36, 1, 2, {}, [b"\x00\x01", {"k": b"\xff"}]]


@pytest.mark.parametrize(
    "text",
    [
        "\\u0000!!!!",  # not in the alphabet
        "\\u0000AAE",  # missing padding
        "\\u0000A",  # impossible length
        "\\u0000AAE=AAE=",  # data after padding
        "\\u0000AA E=",  # whitespace
        "\\u0000AA\\nE=",  # newline
        "\\u0000-_8=",  # URL-safe alphabet, not the standard one (RFC 4648 section 4)
        "\\u0000\u00e4\u00e4\u00e4\u00e4",  # non-ASCII
        "\\u0000\\u0000",  # a second NUL
    ],
)
@pytest.mark.parametrize("where", ["top", "list", "dict"])
def test_json_invalid_base64_after_nul(text: str, where: str) -> None:
    string = f'"{text}"'
    document = {"top": f"[{string}]", "list": f"[1,[[{string}]]]", "dict": f'[1,{{"a":{{"b":{string}}}}}]'}[where]
    with pytest.raises(SerializationError):
        JSON.decode(document.encode())


# -- invalid input -------------------------------------------------------------------------------

INVALID: dict[str, list[bytes]] = {
    "json": [
        b"", b" ", b"[", b"]", b"[1,]", b"[1 2]", b"{", b"nul", b"[NaN]", b"[1]x", b"\xff", b"[\"\xff\"]",
        b'["\\ud800"]', b'["\\x"]', b"[\"a\nb\"]", b"\x00", b"[01]", b"\xef\xbb\xbf[]",
    ],
    "msgpack": [
        b"", b"\xc1", b"\x91", b"\x92\x01", b"\xa3ab", b"\xc4\x05abc", b"\x90\x90", b"\xdd\xff\xff\xff\xff",
        b"\xa2\xff\xfe", b"\xd9\x05ab",  # invalid UTF-8 str; truncated str8
    ],
    "cbor": [
        b"", b"\xff", b"\x81", b"\x1c", b"\x62\xff\xfe", b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff", b"\x5f\x01\xff",
        b"\x81" * 1000 + b"\xf6",  # nesting beyond the decoder's limit
    ],
}


@pytest.mark.parametrize(
    ("serializer", "payload"),
    [pytest.param(SERIALIZERS[name], payload, id=f"{name}-{payload[:12]!r}") for name, cases in INVALID.items()
     for payload in cases],
)
def test_invalid_input_raises_serialization_error(serializer: Serializer, payload: bytes) -> None:
    with pytest.raises(SerializationError):
        serializer.decode(payload)


@pytest.mark.parametrize("depth", [100, 600, 1023, 5000])
@pytest.mark.parametrize("serializer", ALL, ids=_name)
def test_deep_nesting_never_escapes_as_another_exception(serializer: Serializer, depth: int) -> None:
    # A tiny hostile payload: a deeply nested list holding a binary value. Decoding may succeed or
    # raise SerializationError, but never RecursionError (which would escape the session's error
    # handling, since it is no ProtocolError).
    binary: Any = b"\x01"
    value: Any = [binary]
    for _ in range(8):
        value = [value]
    leaf = serializer.encode(value)
    head = {"json": b"[", "msgpack": b"\x91", "cbor": b"\x81"}[serializer.NAME]
    tail = b"]" if serializer is JSON else b""
    payload = head * depth + leaf + tail * depth
    with contextlib.suppress(SerializationError):
        serializer.decode(payload)


@pytest.mark.parametrize("trailer", [b"\x00", b"\x80", b"\xff", b"[]", b"\x91\x01"], ids=repr)
@pytest.mark.parametrize("serializer", ALL, ids=_name)
def test_trailing_data_rejected(serializer: Serializer, trailer: bytes) -> None:
    # One payload is one message: bytes after the first complete item are malformed input (JSON
    # and msgpack refuse them; a lenient decoder would silently drop a second message).
    with pytest.raises(SerializationError):
        serializer.decode(serializer.encode([1, "realm1", {}]) + trailer)


# -- fuzzing: only SerializationError or success ---------------------------------------------------


def _decode_or_serialization_error(serializer: Serializer, payload: bytes) -> None:
    with contextlib.suppress(SerializationError):
        serializer.decode(payload)


@pytest.mark.parametrize("serializer", ALL, ids=_name)
@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=64))
def test_fuzz_random_bytes(serializer: Serializer, payload: bytes) -> None:
    _decode_or_serialization_error(serializer, payload)


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@pytest.mark.parametrize("serializer", ALL, ids=_name)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_JSONISH, data=st.data())
def test_fuzz_mutated_valid_payloads(serializer: Serializer, value: Any, data: st.DataObject) -> None:
    # Random bytes rarely get past the first byte; mutating a valid encoding reaches deeper paths.
    try:
        payload = bytearray(serializer.encode([value]))
    except SerializationError:
        return  # e.g. JSON cannot carry a text string with a lone surrogate
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        position = data.draw(st.integers(0, max(len(payload) - 1, 0)))
        if op == "flip" and payload:
            payload[position] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del payload[position:]
        elif op == "insert":
            payload[position:position] = data.draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and payload:
            del payload[position]
    _decode_or_serialization_error(serializer, bytes(payload))


# -- encoding ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [object(), {1, 2}, 1j, "\ud800", {1: "non-string key"}, 2**64, -(2**63) - 1],
    ids=["object", "set", "complex", "lone-surrogate", "int-key", "2**64", "-2**63-1"],
)
@pytest.mark.parametrize("serializer", ALL, ids=_name)
def test_encode_error_is_a_declared_error(serializer: Serializer, value: Any) -> None:
    # Encoding may succeed where the format allows (CBOR has bignums and non-string keys), but a
    # failure must always be one of the serializer's declared errors.
    with contextlib.suppress(*ENCODE_ERRORS):
        serializer.encode([50, 1, {}, [value]])


@pytest.mark.parametrize("serializer", ALL, ids=_name)
def test_encode_cyclic_structure_fails_cleanly(serializer: Serializer) -> None:
    # No peer can send one any more (CBOR's shared references, tags 28/29, are not interpreted:
    # test_datamodel.py), but an application component could hand the router one.
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(ENCODE_ERRORS):
        serializer.encode([36, 1, 2, {}, cyclic])


@pytest.mark.parametrize("serializer", ALL, ids=_name)
def test_roundtrip_of_wamp_types(serializer: Serializer) -> None:
    message = [48, 2**53, {"timeout": 0, "_x_y": [True, False, None]}, "com.myapp.\u00e4\U0001f600",
               [0, -1, 1.5, 2**63, -(2**63), 2**64 - 1, "", b"", b"\x00" * 3], {"k": {"n": [[]]}}]
    assert serializer.decode(serializer.encode(message)) == message


@pytest.mark.parametrize("serializer", ALL, ids=_name)
def test_encode_is_bytes(serializer: Serializer) -> None:
    assert type(serializer.encode([1, "realm1", {}])) is bytes
