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
    unpacked: list[bytes] = []
    for body in bodies:
        message = wire.decode(body)
        unpacked += message.messages if isinstance(message, wire.Batch) else [body]
    assert unpacked == payloads
