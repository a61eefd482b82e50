"""WAMP serializers (spec: basic/serializations): JSON, MessagePack and CBOR.

Each serializer turns a marshalled message (a list) into bytes and back. Decoding never raises
anything but :class:`SerializationError`, and its cost is linear in the payload's size: nothing a
peer sends is interpreted beyond the WAMP data model (:mod:`cloverleaf.wamp.datamodel`). A
MessagePack extension type or a CBOR tag is not decoded (no timestamps, regular expressions, MIME
messages, big numbers or shared references) but stands as an :class:`Unportable` marker, and
:meth:`Serializer.decode_routable` names what the router must refuse. Map keys other than strings
(and byte strings, refused later) are a decoding error in the binary serializers: Python hashes
of tuples and numbers can be made to collide, and a map of colliding keys costs quadratic time to
build (measured: 300 KB of MessagePack stalled the process for 3.5 s with msgspec's decoder).

The JSON serializer implements the spec's convention for binary values: a string whose first
character is NUL carries base64 of the bytes that follow.
"""

from __future__ import annotations

import base64
import io
import re
from typing import Any, ClassVar, Final

import cbor2
import msgpack
import msgspec
import orjson

from .datamodel import MAX_DEPTH, Unportable, find_unportable
from .errors import SerializationError, UnencodableError


class Serializer:
    """A WAMP serializer: ``encode`` a message list to bytes, ``decode`` bytes to a message list."""

    __slots__ = ()
    #: short name used in config and in the WebSocket subprotocol ``wamp.2.<name>``
    NAME: ClassVar[str]
    #: RawSocket serializer ID (spec: basic/transports/rawsocket)
    RAWSOCKET_ID: ClassVar[int]
    #: whether WebSocket frames carrying this serializer are binary (else text)
    BINARY: ClassVar[bool]

    @property
    def subprotocol(self) -> str:
        return f"wamp.2.{self.NAME}"

    def encode(self, wmsg: list[Any]) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError

    def decode(self, payload: bytes | bytearray | memoryview) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def decode_routable(self, payload: bytes | bytearray | memoryview) -> tuple[Any, str | None]:
        """Decode a payload the router is to route: the value, and why it falls outside the data
        model (see :mod:`cloverleaf.wamp.datamodel`), or None when every serializer can carry it.

        Each serializer first screens the payload's bytes (C-speed searches) for anything that
        could decode to a value outside the model, and walks the decoded value only when one is
        found: most messages are never walked.
        """
        value = self.decode(payload)
        return value, find_unportable(value)


_NUL_ESCAPED: Final = b"\\u0000"


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\x00" + base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"cannot serialize {type(value).__name__} to JSON")


def _unescape_binary(value: Any) -> Any:
    """Walk a decoded JSON value and turn NUL-prefixed base64 strings into bytes."""
    kind = type(value)
    if kind is str:
        if value and value[0] == "\x00":
            try:
                return base64.b64decode(value[1:], validate=True)
            except ValueError as exc:
                raise SerializationError("invalid base64 in a NUL-prefixed JSON string") from exc
        return value
    if kind is list:
        return [_unescape_binary(item) for item in value]
    if kind is dict:
        return {key: _unescape_binary(item) for key, item in value.items()}
    return value


class JsonSerializer(Serializer):
    """JSON via orjson, with the spec's binary convention both ways."""

    __slots__ = ()
    NAME = "json"
    RAWSOCKET_ID = 1
    BINARY = False

    def encode(self, wmsg: list[Any]) -> bytes:
        try:
            return orjson.dumps(wmsg, default=_json_default)
        except TypeError as exc:
            raise UnencodableError(f"cannot encode message as JSON: {exc}") from exc

    def decode(self, payload: bytes | bytearray | memoryview) -> Any:
        if type(payload) is memoryview:
            payload = payload.tobytes()  # "in" on a memoryview compares items, not substrings
        return self._decode(payload, self._has_escaped_nul(payload))

    def decode_routable(self, payload: bytes | bytearray | memoryview) -> tuple[Any, str | None]:
        # What orjson decodes is in the data model but for the depth and map keys starting with
        # NUL (keys are strings, numbers finite and within 64 bits, NUL-prefixed string values
        # already binary): a payload with few brackets cannot nest deeply (nor a short one: a
        # level takes a byte), and one without an escaped NUL has no such key.
        if type(payload) is memoryview:
            payload = payload.tobytes()
        escaped_nul = self._has_escaped_nul(payload)
        value = self._decode(payload, escaped_nul)
        if not escaped_nul and (
            len(payload) <= MAX_DEPTH or payload.count(b"[") + payload.count(b"{") <= MAX_DEPTH
        ):
            return value, None
        return value, find_unportable(value, check_nul_strings=escaped_nul)

    @staticmethod
    def _has_escaped_nul(payload: bytes | bytearray) -> bool:
        # A NUL can only appear escaped in valid JSON. A one-byte search (memchr; an int operand,
        # which skips the buffer protocol) first: most payloads hold no backslash, and the
        # six-byte search costs several times more.
        return 0x5C in payload and _NUL_ESCAPED in payload

    @staticmethod
    def _decode(payload: bytes | bytearray, escaped_nul: bool) -> Any:
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise SerializationError(f"invalid JSON: {exc}") from exc
        if escaped_nul:  # the (comparatively slow) walk for binary values
            try:
                value = _unescape_binary(value)
            except RecursionError as exc:
                raise SerializationError("JSON nested too deeply") from exc
        return value


def _msgpack_extension(code: int, data: bytes) -> Unportable:
    if code == 0 and data == b"\x00":
        return MSGPACKR_UNDEFINED
    return Unportable(f"a MessagePack extension type {code}")


#: how msgpackr (the MessagePack library of wampy.js and others) encodes JavaScript's ``undefined``:
#: a fixext 1 of type 0 holding 0x00. Unportable like any extension, except as an option's value,
#: where the router reads it as the option left out (:data:`UNDEFINED_OPTION_VALUES`)
MSGPACKR_UNDEFINED: Final = Unportable("a MessagePack extension type 0 (msgpackr's undefined)")

#: the decoded forms of "undefined" (CBOR's simple value 23, msgpackr's extension): in the Options
#: or Details of a client's message they stand for the key being absent (docs/spec-notes.md)
UNDEFINED_OPTION_VALUES: Final = (cbor2.undefined, MSGPACKR_UNDEFINED)


class _Extension(Exception):
    pass


def _refuse_extension(code: int, data: bytes) -> Unportable:
    raise _Extension


# The screen: a MessagePack value outside the data model needs one of these in its encoding.
# Extension types make the first decode fail (their hook raises) and are then decoded as markers;
# the timestamp extension (type -1, 0xFF after a fixext 4/8 or an ext 8 header of length 12) does
# not reach the hook. Byte strings (possible map keys) have their own headers; a non-finite
# float32 or float64 has all exponent bits set, so the byte after its header is 0x7F or 0xFF; a
# string starting with NUL is a string header followed by 0x00 (at the offset its length field
# puts it: the regular expression looks for the NUL first, which Python's engine does at memchr
# speed); and every level of nesting takes one container header.
_MSGPACK_BIN: Final = bytes(range(0xC4, 0xC7))
_MSGPACK_CONTAINERS: Final = bytes([*range(0x80, 0xA0), *range(0xDC, 0xE0)])
_MSGPACK_NUL_STRING: Final = re.compile(
    rb"\x00(?:(?<=[\xa1-\xbf]\x00)|(?<=\xd9[\x01-\xff]\x00)|(?<=\xda[\s\S]{2}\x00)|(?<=\xdb[\s\S]{4}\x00))"
)


class MsgpackSerializer(Serializer):
    """MessagePack: encoded by msgspec, decoded by the msgpack package.

    msgspec encodes fastest, but its decoder builds maps with keys of any hashable type, tuples
    among them, which makes hash flooding possible; the msgpack package (within 10% of its speed
    since 1.1, measured) refuses keys other than strings and byte strings as it decodes.
    """

    __slots__ = ()
    NAME = "msgpack"
    RAWSOCKET_ID = 2
    BINARY = True
    _encoder: ClassVar[msgspec.msgpack.Encoder] = msgspec.msgpack.Encoder()

    def encode(self, wmsg: list[Any]) -> bytes:
        try:
            return self._encoder.encode(wmsg)
        except (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError) as exc:
            raise UnencodableError(f"cannot encode message as MessagePack: {exc}") from exc

    def decode(self, payload: bytes | bytearray | memoryview) -> Any:
        # the timestamp extension (-1) comes back as a msgpack.Timestamp, refused as unportable
        return self._unpack(payload, _msgpack_extension)

    @staticmethod
    def _unpack(payload: bytes | bytearray | memoryview, ext_hook: Any) -> Any:
        try:
            return msgpack.unpackb(payload, strict_map_key=True, ext_hook=ext_hook)
        except _Extension:
            raise
        except msgpack.StackError as exc:
            raise SerializationError("invalid MessagePack: nested too deeply") from exc
        except (ValueError, TypeError, RecursionError, msgpack.UnpackException) as exc:
            raise SerializationError(f"invalid MessagePack: {exc}") from exc

    def decode_routable(self, payload: bytes | bytearray | memoryview) -> tuple[Any, str | None]:
        if type(payload) is memoryview:
            payload = payload.tobytes()
        try:
            value = self._unpack(payload, _refuse_extension)
        except _Extension:
            value = self._unpack(payload, _msgpack_extension)
            return value, find_unportable(value)
        size = len(payload)
        # One-byte searches first (int operands: memchr, without the buffer protocol): most
        # payloads have no 0x00, 0xCA or 0xCB at all. A payload no longer than MAX_DEPTH bytes
        # cannot nest deeper.
        nul_string = 0 in payload and _MSGPACK_NUL_STRING.search(payload) is not None
        if (
            not nul_string
            and len(payload.translate(None, _MSGPACK_BIN)) == size
            and (0xFF not in payload or (b"\xd6\xff" not in payload and b"\xd7\xff" not in payload
                                         and b"\xc7\x0c\xff" not in payload))
            and (0xCB not in payload or (b"\xcb\x7f" not in payload and b"\xcb\xff" not in payload))
            and (0xCA not in payload or (b"\xca\x7f" not in payload and b"\xca\xff" not in payload))
            and (size <= MAX_DEPTH or size - len(payload.translate(None, _MSGPACK_CONTAINERS)) <= MAX_DEPTH)
        ):
            return value, None
        return value, find_unportable(value, check_nul_strings=nul_string)


def _cbor_tag_marker(tag: int) -> Any:
    return lambda value, immutable: Unportable(f"a CBOR tag {tag}")


def _cbor_unknown_tag(tag: cbor2.CBORTag, immutable: bool) -> Unportable:
    return Unportable(f"a CBOR tag {tag.tag}")


class _NonTextKey(Exception):
    pass


def _refuse_non_text_keys(value: dict[Any, Any], immutable: bool) -> dict[Any, Any]:
    for key in value:
        if type(key) is not str:
            raise _NonTextKey
    return value


def _cbor_self_described(value: Any, immutable: bool) -> Any:
    return value  # tag 55799 only says "this is CBOR" (RFC 8949, 3.4.6)


def _cbor_uint8_array(value: Any, immutable: bool) -> Any:
    # tag 64 (RFC 8746: a typed array of uint8) on a byte string is a byte string: the npm `cbor`
    # library of AutobahnJS encodes every Uint8Array that way (a Buffer as a plain byte string)
    return value if type(value) is bytes else Unportable("a CBOR tag 64")


#: every tag cbor2 6.3 would interpret itself (dates, big numbers, decimals, shared and string
#: references, rationals, regular expressions, MIME, UUIDs, IP addresses, sets, ...); the unit
#: tests check that no tag in [0, 70000) escapes this and the tag hook
_CBOR_BUILTIN_TAGS: Final = (0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004, 43000)
_CBOR_NO_TAGS: Final = {tag: _cbor_tag_marker(tag) for tag in _CBOR_BUILTIN_TAGS} | {
    55799: _cbor_self_described,
    64: _cbor_uint8_array,
}

# The screen, as for MessagePack: tags (0xC0-0xDB), simple values and undefined (0xE0-0xF3,
# 0xF7, 0xF8), half and single floats (0xF9, 0xFA; a non-finite double has 0x7F or 0xFF after its
# header), negative integers of 8 bytes (0x3B: below -2^63 when the top bit is set), text strings
# of indefinite length (0x7F), a text string header followed by 0x00, and more container headers
# (0x80-0xBF) than MAX_DEPTH. Byte-string map keys are caught by an object hook instead (their
# headers, 0x40-0x5F, are ASCII letters).
_CBOR_SCREENED: Final = bytes([*range(0xC0, 0xDC), *range(0xE0, 0xF4), *range(0xF7, 0xFB), 0x3B, 0x7F])
_CBOR_CONTAINERS: Final = bytes(range(0x80, 0xC0))
#: deepest nesting the CBOR decoder reads (cbor2's default): beyond the data model's MAX_DEPTH, so
#: that a client reads what other routers send, and the router's own answers that wrap a value
#: (event history) stay readable
_CBOR_MAX_DEPTH: Final = 400
_CBOR_NUL_STRING: Final = re.compile(
    rb"\x00(?:(?<=[\x61-\x77]\x00)|(?<=\x78[\x01-\xff]\x00)|(?<=\x79[\s\S]{2}\x00)"
    rb"|(?<=\x7a[\s\S]{4}\x00)|(?<=\x7b[\s\S]{8}\x00))"
)


#: encodes anything (values it does not know become nil) only to find out how deep a value nests
_DEPTH_PROBE: Final = msgspec.msgpack.Encoder(enc_hook=lambda value: None)


class CborSerializer(Serializer):
    """CBOR via cbor2's C extension, with every tag left uninterpreted."""

    __slots__ = ()
    NAME = "cbor"
    RAWSOCKET_ID = 3
    BINARY = True

    def encode(self, wmsg: list[Any]) -> bytes:
        # cbor2's C encoder has no depth guard: ~8,000 nested lists overflow the C stack and kill
        # the process. msgspec's encoder stops at Python's recursion limit (about 1,000 levels)
        # with RecursionError, at a tenth of cbor2's cost, so it probes the depth first.
        # What the router routes is far shallower (the data model); an application's value
        # handed to the client library need not be.
        try:
            _DEPTH_PROBE.encode(wmsg)
        except RecursionError as exc:
            raise UnencodableError("cannot encode message as CBOR: nested too deeply") from exc
        except Exception:
            pass  # only the depth is probed: cbor2 judges everything else
        try:
            return cbor2.dumps(wmsg)
        except (cbor2.CBOREncodeError, TypeError, ValueError, RecursionError) as exc:
            raise UnencodableError(f"cannot encode message as CBOR: {exc}") from exc

    def decode(self, payload: bytes | bytearray | memoryview) -> Any:
        return self._decode(payload, None)

    def decode_routable(self, payload: bytes | bytearray | memoryview) -> tuple[Any, str | None]:
        if type(payload) is memoryview:
            payload = payload.tobytes()
        try:
            value = self._decode(payload, _refuse_non_text_keys)
        except _NonTextKey:
            value = self._decode(payload, None)
            return value, find_unportable(value)
        size = len(payload)
        nul_string = 0 in payload and _CBOR_NUL_STRING.search(payload) is not None
        if (
            not nul_string
            and len(payload.translate(None, _CBOR_SCREENED)) == size
            and (0xFB not in payload or (b"\xfb\x7f" not in payload and b"\xfb\xff" not in payload))
            and (size <= MAX_DEPTH or size - len(payload.translate(None, _CBOR_CONTAINERS)) <= MAX_DEPTH)
        ):
            return value, None
        return value, find_unportable(value, check_nul_strings=nul_string)

    @staticmethod
    def _decode(payload: bytes | bytearray | memoryview, object_hook: Any) -> Any:
        # A decoder on a stream (not cbor2.loads) so that bytes after the first item, which
        # cbor2.loads silently ignores, are caught: the JSON and MessagePack decoders reject them too.
        stream = io.BytesIO(payload)
        try:
            value = cbor2.CBORDecoder(
                stream,
                semantic_decoders=_CBOR_NO_TAGS,
                tag_hook=_cbor_unknown_tag,
                object_hook=object_hook,
                strict_hashable_types=True,
                max_depth=_CBOR_MAX_DEPTH - 1,  # cbor2 admits one level more than max_depth
            ).decode()
        except cbor2.CBORDecodeError as exc:
            if isinstance(exc.__cause__, _NonTextKey):
                raise _NonTextKey from None
            raise SerializationError(f"invalid CBOR: {exc}") from exc
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise SerializationError(f"invalid CBOR: {exc}") from exc
        if stream.tell() != len(payload):
            raise SerializationError("invalid CBOR: bytes after the message")
        return value


JSON: Final = JsonSerializer()
MSGPACK: Final = MsgpackSerializer()
CBOR: Final = CborSerializer()

SERIALIZERS: Final[dict[str, Serializer]] = {s.NAME: s for s in (JSON, MSGPACK, CBOR)}
BY_SUBPROTOCOL: Final[dict[str, Serializer]] = {s.subprotocol: s for s in SERIALIZERS.values()}
BY_RAWSOCKET_ID: Final[dict[int, Serializer]] = {s.RAWSOCKET_ID: s for s in SERIALIZERS.values()}
