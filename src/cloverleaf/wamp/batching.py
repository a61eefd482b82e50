"""Batched WAMP framing (spec: advanced/transport_batched_websocket), as the long-poll transport
uses it: several serialized messages in one transport message.

JSON messages are each followed by the ASCII record separator 0x1e; MessagePack and CBOR messages
are each preceded by their length as a 32-bit big-endian integer. Pure functions: bytes in, bytes
out.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

from .serializers import Serializer

#: JSON batches end every message with the ASCII record separator
RECORD_SEPARATOR: Final = b"\x1e"
_LENGTH = struct.Struct("!I")


class BatchError(ValueError):
    """A request body that is not a well-formed batch."""


def frame_batch(serializer: Serializer, payloads: Sequence[bytes]) -> bytes:
    """Join payloads into one batch: JSON messages each followed by 0x1e, binary ones each after
    their length as a 32-bit big-endian integer."""
    if serializer.BINARY:
        return b"".join(_LENGTH.pack(len(p)) + p for p in payloads)
    return b"".join(p + RECORD_SEPARATOR for p in payloads)


def split_batch(serializer: Serializer, body: bytes) -> list[bytes]:
    """The payloads of a batch; :class:`BatchError` for an empty or malformed one.

    A raw 0x1e byte cannot occur inside a JSON text (control characters in strings must be
    escaped), so splitting on it is exact.
    """
    if not body:
        raise BatchError("empty batch")
    if not serializer.BINARY:
        if not body.endswith(RECORD_SEPARATOR):
            raise BatchError("a JSON batch must end with a record separator (0x1e)")
        return body[:-1].split(RECORD_SEPARATOR)
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
