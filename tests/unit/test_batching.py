"""Batch framing: the spec's JSON separator 0x1e, Autobahn's 0x18, length prefixes."""

from __future__ import annotations

import pytest

from cloverleaf.wamp.batching import (
    AUTOBAHN_SEPARATOR,
    RECORD_SEPARATOR,
    BatchError,
    choose_framing,
    frame_batch,
    framings_for,
    json_separator,
    split_batch,
)
from cloverleaf.wamp.serializers import JSON, MSGPACK


@pytest.mark.parametrize("separator", [RECORD_SEPARATOR, AUTOBAHN_SEPARATOR])
def test_json_batches_in_either_dialect_round_trip(separator: bytes) -> None:
    payloads = [b'[1,"realm1",{}]', b'[6,{},"wamp.close.normal"]']
    batch = frame_batch(JSON, payloads, separator)
    assert batch == payloads[0] + separator + payloads[1] + separator
    assert json_separator(batch) == separator
    assert split_batch(JSON, batch) == payloads


def test_json_batch_defaults_to_the_spec_separator() -> None:
    assert frame_batch(JSON, [b"[1]"]) == b"[1]\x1e"
    assert json_separator(b"[1]") == RECORD_SEPARATOR  # not a batch: the spec's


@pytest.mark.parametrize("bad", [b"", b"[1]", b"[1]\x1f"])
def test_malformed_json_batches_are_refused(bad: bytes) -> None:
    with pytest.raises(BatchError):
        split_batch(JSON, bad)


def test_binary_batches_carry_big_endian_lengths() -> None:
    batch = frame_batch(MSGPACK, [b"ab", b"", b"cde"])
    assert batch == b"\0\0\0\x02ab\0\0\0\0\0\0\0\x03cde"
    assert split_batch(MSGPACK, batch) == [b"ab", b"", b"cde"]
    for bad in (b"", b"\0\0\0", b"\0\0\0\x05ab"):
        with pytest.raises(BatchError):
            split_batch(MSGPACK, bad)


def test_framings_follow_the_clients_preference() -> None:
    framings = framings_for([JSON, MSGPACK])
    assert [f.name for f in framings] == ["wamp.2.json", "wamp.2.json.batched", "wamp.2.msgpack",
                                          "wamp.2.msgpack.batched"]  # fmt: skip
    chosen = choose_framing(["wamp.2.cbor", "wamp.2.msgpack.batched", "wamp.2.json"], framings)
    assert chosen is not None and chosen.name == "wamp.2.msgpack.batched" and chosen.batched
