"""The node-to-node messages of a cluster: round trips, batches, and what a node refuses to read."""

from __future__ import annotations

import msgpack
import pytest

from cloverleaf.cluster import wire
from cloverleaf.cluster.backend import _batches


def test_publication_round_trip_keeps_bytes_and_lists() -> None:
    message = wire.Publication("realm1", "com.x.t", 42, {"publisher": 7}, [b"\x00\xff", 1.5, None], {"k": [b""]},
                               7, False, [[1, 2], None, ["alice"], None, None, ["admin"]])  # fmt: skip
    assert wire.decode(wire.encode(message)) == message


def test_unknown_kind_is_none_and_garbage_is_refused() -> None:
    assert wire.decode(msgpack.packb([999, "anything"])) is None
    for bad in (b"\xc1", msgpack.packb({"a": 1}), msgpack.packb([]), msgpack.packb(["1", 2])):
        with pytest.raises(wire.WireError):
            wire.decode(bad)
    with pytest.raises(wire.WireError):  # a heartbeat whose sequence is not an integer
        wire.decode(msgpack.packb([wire.Heartbeat.KIND, "inc", "node", "7"]))


def test_batches_keep_order_and_size() -> None:
    payloads = [wire.encode(wire.Heartbeat("i", "n", n)) for n in range(100)]
    assert _batches(payloads[:1], 1000) == payloads[:1]  # one message goes as it is
    bodies = _batches(payloads, 200)
    assert len(bodies) > 1 and all(len(body) < 400 for body in bodies)
    unpacked: list[object] = []
    for body in bodies:
        message = wire.decode(body)
        if isinstance(message, wire.Batch):  # each element decoded already, in order
            unpacked += [wire.from_value(value) for value in message.messages]
        else:
            unpacked.append(message)
    assert unpacked == [wire.Heartbeat("i", "n", n) for n in range(100)]
    many = wire.decode(wire.encode_batch(payloads * 200)).messages  # 20,000: a 32-bit array header
    assert len(many) == 20_000 and wire.from_value(many[-1]) == wire.Heartbeat("i", "n", 99)


def test_a_message_with_an_encoded_tail_reads_as_one() -> None:
    wamp = [68, 12, 34, {}, [b"\x00", 1]]
    data = wire.encode_with_tail(10, ("realm1", "incarnation", 77), msgpack.packb(wamp))
    assert msgpack.unpackb(data) == [10, "realm1", "incarnation", 77, wamp]
    for length in (0, 15, 16, 65535, 65536):
        header = wire.array_header(length)
        assert msgpack.unpackb(header + msgpack.packb(None) * length) == [None] * length
