"""The vendored wamp-proto test-suite single-message vectors, checked against our core.

See ``tests/data/wamp-proto-testsuite/FORMAT.md`` for the file layout. For every *serialization
sample* (a sample with ``"serializers"``) and each serializer Cloverleaf ships (json, msgpack, cbor):

* every wire variant decodes with our serializer to the same message as an independent reference
  decoder (stdlib ``json`` + the NUL/base64 binary convention, ``cbor2``, and the ``msgpack`` package
  when installed -- it comes with Autobahn), and all serializers agree on one message;
* ``parse_message`` accepts it and yields the right class with the attributes in
  ``expected_attributes`` (whose autobahn-style names are mapped to ours);
* ``marshal()`` + our ``encode`` reproduces one of the variants byte for byte (FORMAT.md says the
  compact JSON variant equals ``orjson.dumps``, msgpack uses the smallest int widths as msgspec does,
  and CBOR equals ``cbor2.dumps``; so no fallback to structural comparison is needed, and none is
  used), and the bytes decode back to an equal message.

Two kinds of samples are outside what the Basic-Profile parser accepts and are checked separately:
the "transparent payload" samples (Advanced payload passthru: raw bytes in place of ``Arguments``;
Cloverleaf does not announce ``payload_passthru_mode``, so the spec makes them a protocol violation)
and ``EVENT_RECEIVED`` (337, provisional, not in the spec text). For them decoding and re-encoding
must still be exact, and ``parse_message`` must raise ``ProtocolError``.

*Validation samples* (``"wmsg"``) that are valid must parse. The invalid ones test option *values*
(``{"acknowledge": 1}``), which the sans-I/O parser deliberately leaves to the broker/dealer, so they
are not loaded here.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import cbor2
import msgpack
import pytest

from cloverleaf.wamp.errors import ProtocolError
from cloverleaf.wamp.messages import MESSAGE_CLASSES, Hello, Message, Welcome, parse_message
from cloverleaf.wamp.serializers import SERIALIZERS

ROOT = Path(__file__).resolve().parents[1] / "data" / "wamp-proto-testsuite"
OUR_SERIALIZERS = ("json", "msgpack", "cbor")


def _vector_files() -> list[Path]:
    return sorted(ROOT.glob("singlemessage/*/*.json"))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text("utf-8"))  # type: ignore[no-any-return]


def _vector_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def _unbin(value: Any) -> Any:
    """The spec's JSON binary convention, independently of our serializer: "\\0" + base64 -> bytes."""
    if isinstance(value, str) and value.startswith("\x00"):
        return base64.b64decode(value[1:], validate=True)
    if isinstance(value, list):
        return [_unbin(item) for item in value]
    if isinstance(value, dict):
        return {key: _unbin(item) for key, item in value.items()}
    return value


REFERENCE_DECODE: dict[str, Any] = {
    "json": lambda data: _unbin(json.loads(data)),
    "cbor": cbor2.loads,
}
REFERENCE_DECODE["msgpack"] = lambda data: msgpack.unpackb(data, raw=False)  # the reference package, test-only


def _is_unsupported(vector: dict[str, Any], sample: dict[str, Any]) -> bool:
    """Transparent-payload samples and message types Cloverleaf does not implement (EVENT_RECEIVED)."""
    payload = sample["expected_attributes"].get("payload")
    return vector["wamp_message_code"] not in MESSAGE_CLASSES or payload is not None


def _samples(*, supported: bool) -> list[Any]:
    params = []
    for path in _vector_files():
        vector = _load(path)
        for index, sample in enumerate(vector["samples"]):
            if "serializers" not in sample or _is_unsupported(vector, sample) == supported:
                continue
            for name in OUR_SERIALIZERS:
                params.append(pytest.param(vector, sample, name, id=f"{_vector_id(path)}[{index}]-{name}"))
    return params


SUPPORTED = _samples(supported=True)
UNSUPPORTED = _samples(supported=False)


def _variants(sample: dict[str, Any], name: str) -> list[bytes]:
    return [bytes.fromhex(variant["bytes_hex"]) for variant in sample["serializers"][name]]


def _canonical_wire(sample: dict[str, Any]) -> list[Any]:
    """The message as a Python list, from the compact JSON variant via the reference decoder."""
    wires = [REFERENCE_DECODE["json"](data) for data in _variants(sample, "json")]
    assert all(wire == wires[0] for wire in wires), "JSON variants of one sample disagree"
    return wires[0]  # type: ignore[no-any-return]


# expected_attributes uses autobahn-python's attribute names; these are ours.
_ATTRIBUTE_NAMES = {
    "request_id": "request",
    "session_id": "session",
    "publication_id": "publication",
    "subscription_id": "subscription",
    "registration_id": "registration",
}


def _assert_attributes(message: Message, expected: dict[str, Any]) -> None:
    for key, value in expected.items():
        if key == "message_type":
            assert value == message.MESSAGE_TYPE
        elif key == "roles":
            assert isinstance(message, (Hello, Welcome))
            assert message.details["roles"] == value
        elif key == "payload":
            assert value is None  # transparent payloads are in UNSUPPORTED
        else:
            attribute = _ATTRIBUTE_NAMES.get(key, key)
            assert getattr(message, attribute) == value, f"{attribute}: {getattr(message, attribute)!r} != {value!r}"


# -- sanity: the loader sees what FORMAT.md promises ---------------------------------------------


def test_loader_finds_all_vector_files() -> None:
    files = _vector_files()
    assert len([f for f in files if f.parent.name == "basic"]) == 22
    assert len([f for f in files if f.parent.name == "advanced"]) == 4
    serialization = [s for f in files for s in _load(f)["samples"] if "serializers" in s]
    assert len(serialization) == 35
    assert len(SUPPORTED) + len(UNSUPPORTED) == 35 * len(OUR_SERIALIZERS)
    assert len(UNSUPPORTED) == 5 * len(OUR_SERIALIZERS)  # 4 transparent payloads + EVENT_RECEIVED


# -- supported samples ---------------------------------------------------------------------------


@pytest.mark.parametrize(("vector", "sample", "name"), SUPPORTED)
def test_decode_matches_reference(vector: dict[str, Any], sample: dict[str, Any], name: str) -> None:
    wire = _canonical_wire(sample)
    assert wire[0] == vector["wamp_message_code"]
    for data in _variants(sample, name):
        decoded = SERIALIZERS[name].decode(data)
        assert decoded == wire
        if name in REFERENCE_DECODE:
            assert decoded == REFERENCE_DECODE[name](data)


@pytest.mark.parametrize(("vector", "sample", "name"), SUPPORTED)
def test_parse_yields_class_and_attributes(vector: dict[str, Any], sample: dict[str, Any], name: str) -> None:
    for data in _variants(sample, name):
        message = parse_message(SERIALIZERS[name].decode(data))
        assert type(message) is MESSAGE_CLASSES[vector["wamp_message_code"]]
        assert vector["wamp_message_type"] == message.NAME
        _assert_attributes(message, sample["expected_attributes"])


@pytest.mark.parametrize(("vector", "sample", "name"), SUPPORTED)
def test_marshal_encode_is_byte_exact(vector: dict[str, Any], sample: dict[str, Any], name: str) -> None:
    serializer = SERIALIZERS[name]
    variants = _variants(sample, name)
    message = parse_message(serializer.decode(variants[0]))
    assert message.marshal() == _canonical_wire(sample)
    encoded = serializer.encode(message.marshal())
    # "At least one" rule of the upstream README: our output must equal one of the variants.
    assert encoded in variants, f"{encoded.hex()} not in {[v.hex() for v in variants]}"
    assert parse_message(serializer.decode(encoded)) == message


# -- samples outside the Basic-Profile parser -----------------------------------------------------


@pytest.mark.parametrize(("vector", "sample", "name"), UNSUPPORTED)
def test_unsupported_samples_decode_exactly_but_do_not_parse(
    vector: dict[str, Any], sample: dict[str, Any], name: str
) -> None:
    serializer = SERIALIZERS[name]
    wire = _canonical_wire(sample)
    variants = _variants(sample, name)
    for data in variants:
        decoded = serializer.decode(data)
        assert decoded == wire
        # The serializer round trip alone is byte-exact (binary values included).
        assert serializer.encode(decoded) in variants
        with pytest.raises(ProtocolError):
            parse_message(decoded)
    payload = sample["expected_attributes"].get("payload")
    if payload is not None:
        assert bytes.fromhex(payload) in wire  # the transparent payload sits where Arguments would


# -- validation samples --------------------------------------------------------------------------


def _valid_validation_samples() -> list[Any]:
    params = []
    for path in _vector_files():
        for index, sample in enumerate(_load(path)["samples"]):
            if "wmsg" in sample and "expected_error" not in sample:
                params.append(pytest.param(sample, id=f"{_vector_id(path)}[{index}]"))
    return params


@pytest.mark.parametrize("sample", _valid_validation_samples())
def test_valid_validation_samples_parse(sample: dict[str, Any]) -> None:
    wmsg = sample["wmsg"]
    options_index = 3 if wmsg[0] == 36 else 2
    if "enc_algo" in wmsg[options_index]:
        # Transparent payload given as a hex string (FORMAT.md, "Quirk"); not a Basic-Profile message.
        wmsg = [*wmsg[:-1], bytes.fromhex(wmsg[-1])]
        with pytest.raises(ProtocolError):
            parse_message(wmsg)
        return
    message = parse_message(wmsg)
    assert message.marshal() == wmsg
    for name in OUR_SERIALIZERS:
        serializer = SERIALIZERS[name]
        assert parse_message(serializer.decode(serializer.encode(wmsg))) == message
