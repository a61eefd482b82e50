"""An option whose value is "undefined" (CBOR simple value 23, msgpackr's extension for it) is an
option left out: wampy.js 8 sends ``match`` and ``get_retained`` that way in every plain SUBSCRIBE
over CBOR and MessagePack. Anywhere else "undefined" is still outside the data model."""

from __future__ import annotations

from typing import Any

import cbor2
import msgpack
import pytest

from cloverleaf.wamp.errors import ProtocolError, UnroutableValueError
from cloverleaf.wamp.messages import Call, Error, Publish, Subscribe
from cloverleaf.wamp.serializers import CBOR, MSGPACK, Serializer
from cloverleaf.wamp.session import Phase, ServerSessionCore

MSGPACKR_UNDEFINED = msgpack.ExtType(0, b"\x00")  # what msgpackr's pack(undefined) writes: d4 00 00


def _encode(serializer: Serializer, wmsg: list[Any]) -> bytes:
    if serializer is CBOR:
        return bytes(cbor2.dumps(_replace(wmsg, cbor2.undefined)))
    return bytes(msgpack.packb(_replace(wmsg, MSGPACKR_UNDEFINED)))


class _Undefined:
    pass


_U = _Undefined()


def _replace(value: Any, undefined: Any) -> Any:
    if value is _U:
        return undefined
    if isinstance(value, list):
        return [_replace(v, undefined) for v in value]
    if isinstance(value, dict):
        return {k: _replace(v, undefined) for k, v in value.items()}
    return value


def _established(serializer: Serializer) -> ServerSessionCore:
    core = ServerSessionCore(serializer, sequential_requests=False)
    core.sent_welcome()
    return core


@pytest.mark.parametrize("serializer", [CBOR, MSGPACK], ids=lambda s: s.NAME)
def test_undefined_options_are_left_out(serializer: Serializer) -> None:
    core = _established(serializer)
    # wampy.js: [SUBSCRIBE, id, {match: undefined, get_retained: undefined}, topic]
    subscribe = core.receive(_encode(serializer, [32, 1, {"match": _U, "get_retained": _U}, "com.example.t"]))
    assert isinstance(subscribe, Subscribe)
    assert subscribe.options == {}
    assert subscribe.topic == "com.example.t"
    call = core.receive(_encode(serializer, [48, 2, {"timeout": _U, "disclose_me": True}, "com.example.p", [1]]))
    assert isinstance(call, Call)
    assert call.options == {"disclose_me": True}
    assert call.args == [1]
    error = core.receive(_encode(serializer, [8, 68, 3, {"x": _U}, "com.example.error"]))
    assert isinstance(error, Error)
    assert error.details == {}
    assert core.phase is Phase.ESTABLISHED


@pytest.mark.parametrize("serializer", [CBOR, MSGPACK], ids=lambda s: s.NAME)
def test_undefined_elsewhere_is_still_refused(serializer: Serializer) -> None:
    core = _established(serializer)
    # in a payload: the PUBLISH is refused, the session goes on
    with pytest.raises(UnroutableValueError) as refused:
        core.receive(_encode(serializer, [16, 1, {"acknowledge": True}, "com.example.t", [_U]]))
    assert isinstance(refused.value.refused, Publish)
    # nested inside an option's value: refused too (only an option's own value means "left out")
    with pytest.raises(UnroutableValueError):
        core.receive(_encode(serializer, [16, 2, {"acknowledge": True, "_custom": [_U]}, "com.example.t"]))
    # an undefined option next to another unportable value: the other one still counts
    with pytest.raises(UnroutableValueError):
        other = msgpack.ExtType(5, b"") if serializer is MSGPACK else cbor2.CBORTag(35, "a+")
        core.receive(_encode(serializer, [48, 3, {"m": _U}, "com.example.p", [other]]))
    assert core.phase is Phase.ESTABLISHED


@pytest.mark.parametrize("serializer", [CBOR, MSGPACK], ids=lambda s: s.NAME)
def test_undefined_outside_options_of_an_unrefusable_message_aborts(serializer: Serializer) -> None:
    core = _established(serializer)
    with pytest.raises(ProtocolError):
        core.receive(_encode(serializer, [34, 4, _U]))  # UNSUBSCRIBE of subscription "undefined"
    assert core.phase is Phase.CLOSED


def test_other_msgpack_extensions_are_not_undefined() -> None:
    core = _established(MSGPACK)
    with pytest.raises(ProtocolError, match="extension type 0"):
        core.receive(msgpack.packb([32, 1, {"match": msgpack.ExtType(0, b"\x01")}, "com.example.t"]))
