"""Router-side session phases (spec: basic/sessions.md, basic/building_blocks.md "Protocol Errors").

``ServerSessionCore`` decodes and validates one payload at a time and raises ``ProtocolError`` for
anything out of order, after which the session is CLOSED and ignores everything.
"""

from __future__ import annotations

from typing import Any

import pytest

from cloverleaf.wamp.errors import ProtocolError
from cloverleaf.wamp.ids import MAX_ID
from cloverleaf.wamp.messages import Abort, Authenticate, Error, Goodbye, Hello, Publish, Yield
from cloverleaf.wamp.serializers import CBOR, JSON, MSGPACK, Serializer
from cloverleaf.wamp.session import Phase, ServerSessionCore

HELLO = [1, "realm1", {"roles": {"caller": {}, "callee": {}, "publisher": {}, "subscriber": {}}}]
ABORT = [3, {}, "wamp.error.no_such_realm"]
GOODBYE = [6, {}, "wamp.close.close_realm"]
AUTHENTICATE = [5, "secret", {}]

# Client->router messages of an established session; request IDs of new requests are filled in.
CLIENT_REQUESTS: dict[str, list[Any]] = {
    "PUBLISH": [16, None, {}, "com.topic", [1]],
    "SUBSCRIBE": [32, None, {}, "com.topic"],
    "UNSUBSCRIBE": [34, None, 77],
    "CALL": [48, None, {}, "com.proc", [], {"a": 1}],
    "REGISTER": [64, None, {}, "com.proc"],
    "UNREGISTER": [66, None, 88],
}
CLIENT_REPLIES: dict[str, list[Any]] = {
    "ERROR(INVOCATION)": [8, 68, 5, {}, "com.error"],
    "YIELD": [70, 5, {}, ["result"]],
    "CANCEL": [49, 3, {"mode": "kill"}],
}
# Valid messages a client must never send to a router in an established session.
NOT_FROM_CLIENT: dict[str, list[Any]] = {
    "HELLO": HELLO,
    "WELCOME": [2, 1, {"roles": {"broker": {}}}],
    "CHALLENGE": [4, "ticket", {}],
    "AUTHENTICATE": AUTHENTICATE,
    "PUBLISHED": [17, 1, 2],
    "SUBSCRIBED": [33, 1, 2],
    "UNSUBSCRIBED": [35, 1],
    "EVENT": [36, 1, 2, {}],
    "RESULT": [50, 1, {}],
    "REGISTERED": [65, 1, 2],
    "UNREGISTERED": [67, 1],
    "INVOCATION": [68, 1, 2, {}],
    "INTERRUPT": [69, 1, {}],
}


def _request(name: str, request_id: int = 1) -> list[Any]:
    wmsg = list(CLIENT_REQUESTS[name])
    wmsg[1] = request_id
    return wmsg


def _send(core: ServerSessionCore, wmsg: Any, serializer: Serializer = JSON) -> Any:
    return core.receive(serializer.encode(wmsg))


def _established(**kwargs: Any) -> ServerSessionCore:
    core = ServerSessionCore(JSON, **kwargs)
    assert isinstance(_send(core, HELLO), Hello)
    core.sent_welcome()
    assert core.phase is Phase.ESTABLISHED
    return core


def _violates(core: ServerSessionCore, wmsg: Any) -> None:
    with pytest.raises(ProtocolError):
        _send(core, wmsg)
    assert core.phase is Phase.CLOSED


# -- before the session is established ---------------------------------------------------------


@pytest.mark.parametrize("serializer", [JSON, MSGPACK, CBOR], ids=lambda s: s.NAME)
def test_hello_first(serializer: Serializer) -> None:
    core = ServerSessionCore(serializer)
    assert core.phase is Phase.WAITING_HELLO
    message = core.receive(serializer.encode(HELLO))
    assert isinstance(message, Hello)
    assert message.realm == "realm1"
    assert core.phase is Phase.WAITING_HELLO  # until the router sends WELCOME or CHALLENGE
    core.sent_welcome()
    assert core.phase is Phase.ESTABLISHED


BEFORE_HELLO = {
    **{name: _request(name) for name in CLIENT_REQUESTS},
    **CLIENT_REPLIES,
    **{name: wmsg for name, wmsg in NOT_FROM_CLIENT.items() if name != "HELLO"},
    "GOODBYE": GOODBYE,
    "ERROR(CALL)": [8, 48, 1, {}, "com.error"],
}


@pytest.mark.parametrize("wmsg", list(BEFORE_HELLO.values()), ids=list(BEFORE_HELLO))
def test_anything_but_hello_first_is_a_violation(wmsg: list[Any]) -> None:
    _violates(ServerSessionCore(JSON), wmsg)


def test_abort_before_hello_closes() -> None:
    core = ServerSessionCore(JSON)
    assert isinstance(_send(core, ABORT), Abort)
    assert core.phase is Phase.CLOSED


@pytest.mark.parametrize(
    "payload",
    [b"", b"not json", b"[]", b"{}", b'"HELLO"', b"[1]", b'[1,"realm1",{}]', b"[999,1]",
     b'[1,"realm1",{"roles":{"x":{}}}]'],
)
def test_malformed_first_message_is_a_violation(payload: bytes) -> None:
    core = ServerSessionCore(JSON)
    with pytest.raises(ProtocolError):
        core.receive(payload)
    assert core.phase is Phase.CLOSED


def test_authenticate_only_after_challenge() -> None:
    core = ServerSessionCore(JSON)
    _send(core, HELLO)
    _violates(core, AUTHENTICATE)  # no CHALLENGE was sent


def test_authentication_flow() -> None:
    core = ServerSessionCore(JSON)
    _send(core, HELLO)
    core.sent_challenge()
    assert core.phase is Phase.AUTHENTICATING
    message = _send(core, AUTHENTICATE)
    assert isinstance(message, Authenticate)
    assert message.signature == "secret"
    # More rounds are possible (advanced/authentication.md): CHALLENGE again, AUTHENTICATE again.
    core.sent_challenge()
    assert isinstance(_send(core, AUTHENTICATE), Authenticate)
    core.sent_welcome()
    assert core.phase is Phase.ESTABLISHED
    _violates(core, AUTHENTICATE)  # not after the session is established


CHALLENGING_VIOLATIONS = {
    "HELLO": HELLO,
    "GOODBYE": GOODBYE,
    "PUBLISH": _request("PUBLISH"),
    "ERROR(INVOCATION)": CLIENT_REPLIES["ERROR(INVOCATION)"],
    "YIELD": CLIENT_REPLIES["YIELD"],
    "WELCOME": NOT_FROM_CLIENT["WELCOME"],
}


@pytest.mark.parametrize("wmsg", list(CHALLENGING_VIOLATIONS.values()), ids=list(CHALLENGING_VIOLATIONS))
def test_only_authenticate_or_abort_while_authenticating(wmsg: list[Any]) -> None:
    core = ServerSessionCore(JSON)
    _send(core, HELLO)
    core.sent_challenge()
    _violates(core, wmsg)


def test_abort_while_authenticating_closes() -> None:
    core = ServerSessionCore(JSON)
    _send(core, HELLO)
    core.sent_challenge()
    assert isinstance(_send(core, ABORT), Abort)
    assert core.phase is Phase.CLOSED


def test_router_abort_closes() -> None:
    core = ServerSessionCore(JSON)
    _send(core, HELLO)
    core.sent_abort()
    assert core.phase is Phase.CLOSED
    assert _send(core, HELLO) is None


# -- established ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CLIENT_REQUESTS))
def test_established_accepts_client_requests(name: str) -> None:
    core = _established()
    message = _send(core, _request(name, 1))
    assert message is not None
    assert message.marshal() == _request(name, 1)
    assert core.phase is Phase.ESTABLISHED


@pytest.mark.parametrize("wmsg", list(CLIENT_REPLIES.values()), ids=list(CLIENT_REPLIES))
def test_established_accepts_client_replies(wmsg: list[Any]) -> None:
    core = _established()
    message = _send(core, wmsg)
    assert message is not None
    assert message.marshal() == wmsg
    assert core.phase is Phase.ESTABLISHED


@pytest.mark.parametrize("wmsg", list(NOT_FROM_CLIENT.values()), ids=list(NOT_FROM_CLIENT))
def test_established_rejects_router_messages(wmsg: list[Any]) -> None:
    # Includes a second HELLO (basic/sessions.md) and AUTHENTICATE after establishment.
    _violates(_established(), wmsg)


@pytest.mark.parametrize("request_type", [16, 32, 34, 48, 64, 66])
def test_client_error_only_for_invocation(request_type: int) -> None:
    _violates(_established(), [8, request_type, 1, {}, "com.error"])


def test_client_error_for_invocation() -> None:
    message = _send(_established(), [8, 68, 1, {"_trace": 1}, "com.error", ["why"]])
    assert isinstance(message, Error)
    assert (message.request_type, message.request, message.args) == (68, 1, ["why"])


def test_malformed_message_when_established_is_a_violation() -> None:
    _violates(_established(), [16, 0, {}, "com.topic"])


# -- sequential request IDs (basic/building_blocks.md "IDs", "Protocol Errors") ------------------


def test_request_ids_run_one_two_three_across_types() -> None:
    core = _established()
    for request_id, name in enumerate(CLIENT_REQUESTS, start=1):
        assert _send(core, _request(name, request_id)) is not None
    # Replies (YIELD, ERROR, CANCEL) mirror other IDs and do not advance the sequence.
    for wmsg in CLIENT_REPLIES.values():
        _send(core, wmsg)
    assert _send(core, _request("PUBLISH", len(CLIENT_REQUESTS) + 1)) is not None
    assert core.phase is Phase.ESTABLISHED


@pytest.mark.parametrize("request_id", [2, 3, 713845233, MAX_ID])
def test_first_request_id_must_be_one(request_id: int) -> None:
    _violates(_established(), _request("SUBSCRIBE", request_id))


def test_request_id_gap_or_repeat_is_a_violation() -> None:
    core = _established()
    _send(core, _request("CALL", 1))
    _send(core, _request("CALL", 2))
    _violates(core, _request("SUBSCRIBE", 2))
    core = _established()
    _send(core, _request("CALL", 1))
    _violates(core, _request("CALL", 3))
    core = _established()
    _send(core, _request("CALL", 1))
    _violates(core, _request("REGISTER", 3))


def test_request_ids_wrap_to_one_after_2_pow_53() -> None:
    core = _established()
    core.last_request = MAX_ID - 1
    assert _send(core, _request("PUBLISH", MAX_ID)) is not None
    assert _send(core, _request("PUBLISH", 1)) is not None
    assert _send(core, _request("PUBLISH", 2)) is not None


def test_sequential_request_ids_can_be_switched_off() -> None:
    core = _established(sequential_requests=False)
    for request_id in (713845233, 5, 5, MAX_ID, 1):
        assert _send(core, _request("PUBLISH", request_id)) is not None
    assert core.phase is Phase.ESTABLISHED


# -- closing -------------------------------------------------------------------------------------


def test_client_goodbye() -> None:
    core = _established()
    message = _send(core, GOODBYE)
    assert isinstance(message, Goodbye)
    assert message.reason == "wamp.close.close_realm"
    assert core.phase is Phase.CLOSED  # the router echoes GOODBYE and is done
    core.replied_goodbye()
    assert core.phase is Phase.CLOSED
    assert _send(core, _request("PUBLISH", 1)) is None


def test_client_abort_when_established() -> None:
    core = _established()
    assert isinstance(_send(core, ABORT), Abort)
    assert core.phase is Phase.CLOSED


CLOSING_IGNORED = {
    **{name: _request(name, 1) for name in CLIENT_REQUESTS},
    **CLIENT_REPLIES,
    **NOT_FROM_CLIENT,
}


@pytest.mark.parametrize("wmsg", list(CLOSING_IGNORED.values()), ids=list(CLOSING_IGNORED))
def test_closing_ignores_everything_but_goodbye(wmsg: list[Any]) -> None:
    core = _established()
    core.sent_goodbye()
    assert core.phase is Phase.CLOSING
    assert _send(core, wmsg) is None
    assert core.phase is Phase.CLOSING
    reply = _send(core, [6, {}, "wamp.close.goodbye_and_out"])
    assert isinstance(reply, Goodbye)
    assert core.phase is Phase.CLOSED


def test_closing_ends_on_abort() -> None:
    core = _established()
    core.sent_goodbye()
    assert isinstance(_send(core, ABORT), Abort)
    assert core.phase is Phase.CLOSED


def test_sent_goodbye_outside_established_does_not_open_closing() -> None:
    core = ServerSessionCore(JSON)
    core.sent_goodbye()
    assert core.phase is Phase.WAITING_HELLO


# -- after a violation ---------------------------------------------------------------------------


def test_violation_closes_and_later_messages_are_ignored() -> None:
    core = _established()
    _violates(core, HELLO)
    for wmsg in (_request("PUBLISH", 1), GOODBYE, ABORT, HELLO, [70, 1, {}]):
        assert _send(core, wmsg) is None
    assert core.phase is Phase.CLOSED


def test_closed_session_returns_none_for_valid_messages() -> None:
    core = ServerSessionCore(JSON)
    _send(core, ABORT)
    assert _send(core, HELLO) is None
    assert _send(core, _request("PUBLISH", 1)) is None


def test_messages_are_typed() -> None:
    core = _established()
    assert isinstance(_send(core, _request("PUBLISH", 1)), Publish)
    assert isinstance(_send(core, [70, 9, {}]), Yield)


def test_a_repeated_call_id_is_left_to_the_dealer() -> None:
    # Progressive call invocations reuse the CALL's ID; whether that call is still in progress
    # is the dealer's knowledge, so the core only flags the reuse.
    core = _established()
    _send(core, _request("CALL", 1))
    assert core.reused_request is False
    assert _send(core, _request("CALL", 1)) is not None
    assert core.reused_request is True
    assert _send(core, _request("CALL", 2)) is not None
    assert core.reused_request is False
