"""WAMP serializers (spec: basic/serializations): JSON, MessagePack and CBOR.

Each serializer turns a marshalled message (a list) into bytes and back. Decoding never raises
anything but :class:`SerializationError`. The JSON serializer implements the spec's convention for
binary values: a string whose first character is NUL carries base64 of the bytes that follow.
"""

from __future__ import annotations

import base64
import io
from typing import Any, ClassVar, Final

import cbor2
import msgspec
import orjson

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
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise SerializationError(f"invalid JSON: {exc}") from exc
        # A NUL can only appear escaped in valid JSON, so a scan decides whether the (comparatively
        # slow) walk for binary values is needed at all; a one-byte search (memchr) first, because
        # most payloads hold no backslash and the six-byte search costs several times more.
        if b"\\" in payload and _NUL_ESCAPED in payload:
            try:
                value = _unescape_binary(value)
            except RecursionError as exc:
                raise SerializationError("JSON nested too deeply") from exc
        return value


class MsgpackSerializer(Serializer):
    """MessagePack via msgspec (measured 2x faster than the msgpack package here)."""

    __slots__ = ()
    NAME = "msgpack"
    RAWSOCKET_ID = 2
    BINARY = True
    _encoder: ClassVar[msgspec.msgpack.Encoder] = msgspec.msgpack.Encoder()
    _decoder: ClassVar[msgspec.msgpack.Decoder[Any]] = msgspec.msgpack.Decoder()

    def encode(self, wmsg: list[Any]) -> bytes:
        try:
            return self._encoder.encode(wmsg)
        except (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError) as exc:
            raise UnencodableError(f"cannot encode message as MessagePack: {exc}") from exc

    def decode(self, payload: bytes | bytearray | memoryview) -> Any:
        try:
            return self._decoder.decode(payload)
        except (msgspec.DecodeError, ValueError, TypeError, RecursionError) as exc:
            raise SerializationError(f"invalid MessagePack: {exc}") from exc


class CborSerializer(Serializer):
    """CBOR via cbor2's C extension."""

    __slots__ = ()
    NAME = "cbor"
    RAWSOCKET_ID = 3
    BINARY = True

    def encode(self, wmsg: list[Any]) -> bytes:
        try:
            return cbor2.dumps(wmsg)
        except (cbor2.CBOREncodeError, TypeError, ValueError, RecursionError) as exc:
            raise UnencodableError(f"cannot encode message as CBOR: {exc}") from exc

    def decode(self, payload: bytes | bytearray | memoryview) -> Any:
        # A decoder on a stream (not cbor2.loads) so that bytes after the first item, which
        # cbor2.loads silently ignores, are caught: the JSON and MessagePack decoders reject them too.
        stream = io.BytesIO(payload)
        try:
            value = cbor2.CBORDecoder(stream).decode()
        except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
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
