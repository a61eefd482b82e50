"""Batched WAMP framing (spec: advanced/transport_batched_websocket), as batched WebSocket and
long-poll use it: several serialized messages in one transport message.

JSON messages are each followed by the ASCII record separator 0x1e; MessagePack and CBOR messages
are each preceded by their length as a 32-bit big-endian integer. Pure functions: bytes in, bytes
out.

Autobahn (Python, and so Crossbar) writes the JSON separator as the Python literal ``"\\30"``,
which is octal: it sends 0x18 (CAN), not the spec's 0x1e, and splits what it receives on 0x18
only. Both are accepted here (neither can occur raw inside JSON text), and a peer is answered
with the separator it used itself (:func:`json_separator`), so Autobahn peers interoperate and
spec-exact peers get the spec.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from .serializers import Serializer

#: JSON batches end every message with the ASCII record separator (the spec)
RECORD_SEPARATOR: Final = b"\x1e"
#: what Autobahn and Crossbar put after every JSON message of a batch instead (see above)
AUTOBAHN_SEPARATOR: Final = b"\x18"
_JSON_SEPARATORS: Final = (RECORD_SEPARATOR, AUTOBAHN_SEPARATOR)
_LENGTH = struct.Struct("!I")


@dataclass(frozen=True, slots=True)
class Framing:
    """A serializer, batched or not: what a WebSocket subprotocol or a long-poll protocol names
    (``wamp.2.json``, ``wamp.2.json.batched``, ...)."""

    serializer: Serializer
    batched: bool

    @property
    def name(self) -> str:
        return self.serializer.subprotocol + (".batched" if self.batched else "")


def framings_for(serializers: Sequence[Serializer]) -> list[Framing]:
    """Every framing the serializers allow, in their order: ``wamp.2.<name>``, then ``wamp.2.<name>.batched``."""
    return [Framing(s, batched) for s in serializers for batched in (False, True)]


def choose_framing(offered: Any, supported: Sequence[Framing]) -> Framing | None:
    """The first of the client's offered names that is supported (the client's order of preference)."""
    if not isinstance(offered, list):
        return None
    by_name = {p.name: p for p in supported}
    return next((by_name[name] for name in offered if isinstance(name, str) and name in by_name), None)


class BatchError(ValueError):
    """A request body that is not a well-formed batch."""


def frame_batch(serializer: Serializer, payloads: Sequence[bytes], separator: bytes = RECORD_SEPARATOR) -> bytes:
    """Join payloads into one batch: JSON messages each followed by ``separator`` (0x1e, or the
    peer's own, see :func:`json_separator`), binary ones each after their length as a 32-bit
    big-endian integer."""
    if serializer.BINARY:
        return b"".join(_LENGTH.pack(len(p)) + p for p in payloads)
    return separator.join(payloads) + separator


def json_separator(batch: bytes) -> bytes:
    """The separator a peer's JSON batch uses (0x1e or Autobahn's 0x18); 0x1e when it is neither."""
    last = batch[-1:]
    return last if last in _JSON_SEPARATORS else RECORD_SEPARATOR


def split_batch(serializer: Serializer, body: bytes) -> list[bytes]:
    """The payloads of a batch; :class:`BatchError` for an empty or malformed one.

    A raw 0x1e or 0x18 byte cannot occur inside a JSON text (control characters in strings must
    be escaped), so splitting on the batch's separator is exact.
    """
    if not body:
        raise BatchError("empty batch")
    if not serializer.BINARY:
        separator = body[-1:]
        if separator not in _JSON_SEPARATORS:
            raise BatchError("a JSON batch must end with a record separator (0x1e; Autobahn's 0x18 is accepted too)")
        return body[:-1].split(separator)
    payloads: list[bytes] = []
    offset, size = 0, len(body)
    while offset < size:
        if size - offset < _LENGTH.size:
            raise BatchError("truncated length prefix in a binary batch")
        (length,) = _LENGTH.unpack_from(body, offset)
        offset += _LENGTH.size
        if length > size - offset:
            raise BatchError("a message in the batch is longer than the batch")
        payloads.append(body[offset : offset + length])
        offset += length
    return payloads
