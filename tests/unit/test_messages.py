"""Validation rules of the typed WAMP messages (spec: basic/messages, basic/building_blocks "IDs").

Wire formats and arity bounds follow ``rfc/text/basic/messages.md`` (summarised in
``docs/spec-notes.md`` section (c)); the Advanced-Profile forms are CHALLENGE, AUTHENTICATE,
CANCEL, INTERRUPT and the revocation form ``[UNSUBSCRIBED|UNREGISTERED, 0, Details]``.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloverleaf.wamp.errors import ProtocolError
from cloverleaf.wamp.ids import MAX_ID
from cloverleaf.wamp.messages import (
    MESSAGE_CLASSES,
    Abort,
    Authenticate,
    Call,
    Cancel,
    Challenge,
    Error,
    Event,
    Goodbye,
    Hello,
    Interrupt,
    Invocation,
    Message,
    Publish,
    Published,
    Register,
    Registered,
    Result,
    Subscribe,
    Subscribed,
    Unregister,
    Unregistered,
    Unsubscribe,
    Unsubscribed,
    Welcome,
    Yield,
    parse_message,
)
from cloverleaf.wamp.serializers import SERIALIZERS

ARGS = [1, "two", {"three": 3}]
KWARGS = {"key": "value", "n": 2}

# Each message type in a valid form with every optional element present (the shortest valid form
# is a prefix of it). ABORT's optional payload is kept out of this table and tested on its own, so
# that one arity finding does not fail every other ABORT test.
FULL: dict[type[Message], list[Any]] = {
    Hello: [1, "realm1", {"roles": {"caller": {}}}],
    Welcome: [2, 9129137332, {"roles": {"broker": {}}}],
    Abort: [3, {"message": "no"}, "wamp.error.no_such_realm"],
    Challenge: [4, "wampcra", {"challenge": "x"}],
    Authenticate: [5, "signature", {}],
    Goodbye: [6, {}, "wamp.close.close_realm"],
    Error: [8, 48, 7, {}, "com.myapp.error", ARGS, KWARGS],
    Publish: [16, 7, {"acknowledge": True}, "com.myapp.topic", ARGS, KWARGS],
    Published: [17, 7, 4429313566],
    Subscribe: [32, 7, {}, "com.myapp.topic"],
    Subscribed: [33, 7, 5512315355],
    Unsubscribe: [34, 7, 5512315355],
    Unsubscribed: [35, 7, {"subscription": 5512315355, "reason": "wamp.error.revoked"}],
    Event: [36, 5512315355, 4429313566, {}, ARGS, KWARGS],
    Call: [48, 7, {}, "com.myapp.proc", ARGS, KWARGS],
    Cancel: [49, 7, {"mode": "kill"}],
    Result: [50, 7, {}, ARGS, KWARGS],
    Register: [64, 7, {}, "com.myapp.proc"],
    Registered: [65, 7, 2103333224],
    Unregister: [66, 7, 2103333224],
    Unregistered: [67, 7, {"registration": 2103333224, "reason": "wamp.error.revoked"}],
    Invocation: [68, 7, 2103333224, {}, ARGS, KWARGS],
    Interrupt: [69, 7, {"mode": "killnowait"}],
    Yield: [70, 7, {}, ARGS, KWARGS],
}

# (min, max) number of elements, message type included.
ARITY: dict[type[Message], tuple[int, int]] = {
    Hello: (3, 3),
    Welcome: (3, 3),
    Abort: (3, 5),  # messages.md: [ABORT, Details, Reason] / + Arguments / + Arguments, ArgumentsKw
    Challenge: (3, 3),
    Authenticate: (3, 3),
    Goodbye: (3, 3),
    Error: (5, 7),
    Publish: (4, 6),
    Published: (3, 3),
    Subscribe: (4, 4),
    Subscribed: (3, 3),
    Unsubscribe: (3, 3),
    Unsubscribed: (2, 3),
    Event: (4, 6),
    Call: (4, 6),
    Cancel: (3, 3),
    Result: (3, 5),
    Register: (4, 4),
    Registered: (3, 3),
    Unregister: (3, 3),
    Unregistered: (2, 3),
    Invocation: (4, 6),
    Interrupt: (3, 3),
    Yield: (3, 5),
}

# Lengths the spec does not define but a receiver may tolerate: messages.md and sessions.md define
# GOODBYE as [GOODBYE, Details, Reason] only, yet call ABORT and GOODBYE "structurally identical",
# so accepting ABORT's optional Arguments/ArgumentsKw on GOODBYE is a defensible leniency.
TOLERATED_LENGTHS: dict[type[Message], tuple[int, ...]] = {Goodbye: (4, 5)}

# Positions of ID elements.
ID_POSITIONS: dict[type[Message], tuple[int, ...]] = {
    Welcome: (1,),
    Error: (2,),
    Publish: (1,),
    Published: (1, 2),
    Subscribe: (1,),
    Subscribed: (1, 2),
    Unsubscribe: (1, 2),
    Unsubscribed: (1,),
    Event: (1, 2),
    Call: (1,),
    Cancel: (1,),
    Result: (1,),
    Register: (1,),
    Registered: (1, 2),
    Unregister: (1, 2),
    Unregistered: (1,),
    Invocation: (1, 2),
    Interrupt: (1,),
    Yield: (1,),
}

# Positions of Options/Details/Extra dictionaries (whose keys follow the option-key syntax).
DICT_POSITIONS: dict[type[Message], int] = {
    Hello: 2,
    Welcome: 2,
    Abort: 1,
    Challenge: 2,
    Authenticate: 2,
    Goodbye: 1,
    Error: 3,
    Publish: 2,
    Subscribe: 2,
    Unsubscribed: 2,
    Event: 3,
    Call: 2,
    Cancel: 2,
    Result: 2,
    Register: 2,
    Unregistered: 2,
    Invocation: 3,
    Interrupt: 2,
    Yield: 2,
}

# Positions of string elements (URIs are only type-checked by the parser).
STR_POSITIONS: dict[type[Message], int] = {
    Hello: 1,
    Abort: 2,
    Challenge: 1,
    Authenticate: 1,
    Goodbye: 2,
    Error: 4,
    Publish: 3,
    Subscribe: 3,
    Call: 3,
    Register: 3,
}

# Index of Arguments for messages with a payload.
PAYLOAD_START: dict[type[Message], int] = {
    Error: 5,
    Publish: 4,
    Event: 4,
    Call: 4,
    Result: 3,
    Invocation: 4,
    Yield: 3,
}

ABORT_WITH_PAYLOAD = [*FULL[Abort], ARGS, KWARGS]
# FULL, with the longest spec form of every message.
LONGEST: dict[type[Message], list[Any]] = {**FULL, Abort: ABORT_WITH_PAYLOAD}
# FULL, without the revocation Details of UNSUBSCRIBED/UNREGISTERED (their request may be 0 then).
BASE: dict[type[Message], list[Any]] = {**FULL, Unsubscribed: [35, 7], Unregistered: [67, 7]}


def _name(cls: type[Message]) -> str:
    return cls.NAME


def _rejects(wmsg: Any) -> None:
    with pytest.raises(ProtocolError):
        parse_message(wmsg)


def _accepted(wmsgs: list[list[Any]]) -> list[list[Any]]:
    """Those of ``wmsgs`` the parser accepts (so a failing assertion lists every culprit)."""
    accepted = []
    for wmsg in wmsgs:
        try:
            parse_message(wmsg)
        except ProtocolError:
            continue
        accepted.append(wmsg)
    return accepted


def _replaced(wmsg: list[Any], position: int, value: Any) -> list[Any]:
    out = copy.deepcopy(wmsg)
    out[position] = value
    return out


def test_tables_cover_every_message_class() -> None:
    assert set(FULL) == set(MESSAGE_CLASSES.values()) == set(ARITY)
    for cls, wmsg in LONGEST.items():
        assert wmsg[0] == cls.MESSAGE_TYPE
        assert len(wmsg) == ARITY[cls][1]


# -- message type --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wmsg",
    [[], None, {}, "x", (1, "realm1", {}), [0], [7], [255], [256, 1], [1023], ["1", "realm1", {}], [True, "r", {}],
     [1.0, "realm1", {"roles": {"caller": {}}}], [None]],
    ids=repr,
)
def test_not_a_message(wmsg: Any) -> None:
    _rejects(wmsg)


# -- arity ---------------------------------------------------------------------------------------


def _arity_cases() -> list[Any]:
    cases = []
    for cls, (low, high) in ARITY.items():
        full = LONGEST[cls]
        for n in range(low, high + 1):
            cases.append(pytest.param(full[:n], True, id=f"{cls.NAME}-{n}-ok"))
        for n in range(1, low):
            cases.append(pytest.param(full[:n], False, id=f"{cls.NAME}-{n}-short"))
        for extra in (1, 2, 3):
            if high + extra not in TOLERATED_LENGTHS.get(cls, ()):
                cases.append(pytest.param([*full, *[[]] * extra], False, id=f"{cls.NAME}-{high + extra}-long"))
    return cases


@pytest.mark.parametrize(("wmsg", "valid"), _arity_cases())
def test_arity_bounds(wmsg: list[Any], valid: bool) -> None:
    if valid:
        message = parse_message(wmsg)
        assert type(message) is MESSAGE_CLASSES[wmsg[0]]
    else:
        _rejects(wmsg)


# -- IDs -----------------------------------------------------------------------------------------

VALID_IDS = [1, 2, 2**31, 2**32, MAX_ID - 1, MAX_ID]
INVALID_IDS = [0, MAX_ID + 1, 2**63, 2**64, -1, -MAX_ID, True, False, 0.0, 2.5, float(MAX_ID + 2), "1", None, [1],
               {"id": 1}, b"\x01"]


ID_SLOTS = [(cls, position) for cls, positions in ID_POSITIONS.items() for position in positions]


def test_max_id_is_two_to_the_53() -> None:
    assert MAX_ID == 2**53 == 9007199254740992


@pytest.mark.parametrize("value", VALID_IDS)
def test_id_range_accepts(value: int) -> None:
    for cls, position in ID_SLOTS:
        assert parse_message(_replaced(BASE[cls], position, value)).marshal()[position] == value


@pytest.mark.parametrize("value", [1.0, float(2**40), float(MAX_ID)], ids=repr)
def test_integral_float_ids_are_read_as_integers(value: float) -> None:
    # cbor-x and msgpackr (wampy.js) send a JS Number of 2^32 or more as a float64 (docs/spec-notes.md)
    for cls, position in ID_SLOTS:
        marshalled = parse_message(_replaced(BASE[cls], position, value)).marshal()[position]
        assert marshalled == int(value) and type(marshalled) is int


@pytest.mark.parametrize("value", INVALID_IDS, ids=repr)
def test_id_range_rejects(value: Any) -> None:
    assert _accepted([_replaced(BASE[cls], position, value) for cls, position in ID_SLOTS]) == []


@pytest.mark.parametrize("cls", [Unsubscribed, Unregistered], ids=_name)
def test_revocation_form_allows_request_zero_only_with_details(cls: type[Message]) -> None:
    code = cls.MESSAGE_TYPE
    message = parse_message([code, 0, {"reason": "wamp.error.revoked"}])
    assert message.request == 0  # type: ignore[attr-defined]
    _rejects([code, 0])
    _rejects([code, 0, {}])


@pytest.mark.parametrize("cls", [Unsubscribed, Unregistered], ids=_name)
@pytest.mark.parametrize("request_id", [False, 0.0, -0.0], ids=repr)
def test_revocation_request_zero_must_be_an_int(cls: type[Message], request_id: Any) -> None:
    # bool and float compare equal to 0 in Python; the spec's "id" type is an integer, and bools
    # must never stand in for integers.
    _rejects([cls.MESSAGE_TYPE, request_id, {"reason": "wamp.error.revoked"}])


# -- element types -------------------------------------------------------------------------------

NOT_DICTS = [[], "x", None, 1, True, b"{}", [("a", 1)]]
NOT_STRS = [1, None, True, b"com.myapp", ["com.myapp"], {"uri": "x"}]
NOT_LISTS = [{}, "x", None, 1, True, b"[]", (1, 2)]


@pytest.mark.parametrize("cls", list(DICT_POSITIONS), ids=_name)
def test_dict_elements_must_be_dicts(cls: type[Message]) -> None:
    assert _accepted([_replaced(FULL[cls], DICT_POSITIONS[cls], value) for value in NOT_DICTS]) == []


@pytest.mark.parametrize("cls", list(STR_POSITIONS), ids=_name)
def test_str_elements_must_be_strings(cls: type[Message]) -> None:
    assert _accepted([_replaced(FULL[cls], STR_POSITIONS[cls], value) for value in NOT_STRS]) == []


@pytest.mark.parametrize("cls", list(STR_POSITIONS), ids=_name)
def test_empty_string_is_type_valid(cls: type[Message]) -> None:
    # "string" includes the empty string; URI syntax is the router's business (invalid_uri ERROR).
    wmsg = copy.deepcopy(FULL[cls])
    wmsg[STR_POSITIONS[cls]] = ""
    parse_message(wmsg)


# -- option / detail keys ------------------------------------------------------------------------

VALID_KEYS = ["acknowledge", "_custom_key", "abc", "a1_", "exclude_me", "_abc", "x_acknowledged_delivery", "a__"]
INVALID_KEYS = ["Ab", "ab", "1abc", "x-y", "", "a", "_ab", "_", "ABC", "Acknowledge", "abc ", " abc", "abc\n", "ab.c",
                "äbc", "abc\x00", 1, None, True, (1, 2)]


def _with_key(cls: type[Message], key: Any) -> list[Any]:
    wmsg = copy.deepcopy(FULL[cls])
    wmsg[DICT_POSITIONS[cls]][key] = "value"
    return wmsg


@pytest.mark.parametrize("key", VALID_KEYS, ids=repr)
def test_option_key_syntax_valid(key: str) -> None:
    for cls in DICT_POSITIONS:
        wmsg = _with_key(cls, key)
        assert parse_message(wmsg).marshal() == wmsg


@pytest.mark.parametrize("key", INVALID_KEYS, ids=repr)
def test_option_key_syntax_invalid(key: Any) -> None:
    assert _accepted([_with_key(cls, key) for cls in DICT_POSITIONS]) == []


def test_option_key_memo_does_not_change_the_verdict() -> None:
    # The parser memoises key verdicts; the second look-up must agree with the first.
    for _ in range(2):
        parse_message([16, 1, {"acknowledge": True}, "t"])
        _rejects([16, 1, {"Acknowledge": True}, "t"])


def test_option_values_are_not_interpreted_by_the_parser() -> None:
    # Unknown keys are ignored and values are not type-checked here (that is broker/dealer work).
    message = parse_message([16, 1, {"acknowledge": 1, "_vendor_thing": [1, {"x": None}]}, "t"])
    assert message.options == {"acknowledge": 1, "_vendor_thing": [1, {"x": None}]}  # type: ignore[attr-defined]


# -- payload -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", list(PAYLOAD_START), ids=_name)
def test_payload_parsed_into_args_and_kwargs(cls: type[Message]) -> None:
    start = PAYLOAD_START[cls]
    full = FULL[cls]
    message: Any = parse_message(full)
    assert (message.args, message.kwargs) == (ARGS, KWARGS)
    message = parse_message(full[: start + 1])
    assert (message.args, message.kwargs) == (ARGS, None)
    message = parse_message(full[:start])
    assert (message.args, message.kwargs) == (None, None)
    # Empty payload elements must be accepted (the spec's own examples send them).
    message = parse_message([*full[:start], [], {}])
    assert (message.args, message.kwargs) == ([], {})


@pytest.mark.parametrize("cls", list(PAYLOAD_START), ids=_name)
def test_args_must_be_a_list(cls: type[Message]) -> None:
    head = FULL[cls][: PAYLOAD_START[cls]]
    assert _accepted([[*head, value] for value in NOT_LISTS]) == []
    assert _accepted([[*head, value, KWARGS] for value in NOT_LISTS]) == []


@pytest.mark.parametrize("cls", list(PAYLOAD_START), ids=_name)
def test_kwargs_without_args_is_rejected(cls: type[Message]) -> None:
    # ArgumentsKw requires Arguments before it: a dict in the Arguments position is malformed.
    start = PAYLOAD_START[cls]
    _rejects([*FULL[cls][:start], KWARGS])


@pytest.mark.parametrize("cls", list(PAYLOAD_START), ids=_name)
def test_kwargs_must_be_a_dict_with_string_keys(cls: type[Message]) -> None:
    head = FULL[cls][: PAYLOAD_START[cls]]
    not_kwargs = [[], "x", None, 1, [("a", 1)], {1: "a"}, {("a",): 1}, {b"k": 1}, {None: 1}]
    assert _accepted([[*head, ARGS, value] for value in not_kwargs]) == []


def test_kwargs_keys_are_not_option_keys() -> None:
    # Application keyword arguments may be any string, unlike Options/Details keys.
    message: Any = parse_message([48, 1, {}, "p", [], {"A-Key": 1, "": 2, "x": 3}])
    assert message.kwargs == {"A-Key": 1, "": 2, "x": 3}


@pytest.mark.parametrize(
    ("args", "kwargs", "tail"),
    [
        (None, None, []),
        ([], None, []),  # SHOULD omit empty Arguments
        (None, {}, []),
        ([], {}, []),
        ([1], None, [[1]]),
        ([1], {}, [[1]]),  # SHOULD omit empty ArgumentsKw
        (None, {"a": 1}, [[], {"a": 1}]),  # kwargs without args: an empty Arguments list is inserted
        ([], {"a": 1}, [[], {"a": 1}]),
        ([1], {"a": 1}, [[1], {"a": 1}]),
    ],
    ids=repr,
)
def test_marshal_payload(args: Any, kwargs: Any, tail: list[Any]) -> None:
    assert Publish(1, {}, "t", args, kwargs).marshal() == [16, 1, {}, "t", *tail]
    assert Call(1, {}, "p", args, kwargs).marshal() == [48, 1, {}, "p", *tail]
    assert Event(2, 3, {}, args, kwargs).marshal() == [36, 2, 3, {}, *tail]
    assert Result(1, {}, args, kwargs).marshal() == [50, 1, {}, *tail]
    assert Invocation(1, 2, {}, args, kwargs).marshal() == [68, 1, 2, {}, *tail]
    assert Yield(1, {}, args, kwargs).marshal() == [70, 1, {}, *tail]
    assert Error(48, 1, {}, "e", args, kwargs).marshal() == [8, 48, 1, {}, "e", *tail]


def test_payload_values_of_any_type() -> None:
    args = [None, True, 1.5, -3, 2**64 - 1, b"\x00\xff", "", [[]], {"": {}}]
    message: Any = parse_message([16, 1, {}, "t", args, {"b": b"x", "n": None}])
    assert message.args == args
    assert message.kwargs == {"b": b"x", "n": None}


@pytest.mark.parametrize("n", [4, 5])
def test_abort_may_carry_a_payload(n: int) -> None:
    # messages.md: [ABORT, Details, Reason] / + Arguments|list / + Arguments|list, ArgumentsKw|dict;
    # uri_reference.md suggests details of a protocol_violation go in Arguments or ArgumentsKw.
    wmsg = ABORT_WITH_PAYLOAD[:n]
    message = parse_message(wmsg)
    assert message.marshal() == wmsg


# -- HELLO / WELCOME details ---------------------------------------------------------------------

VALID_HELLO_DETAILS = [
    {"roles": {"publisher": {}}},
    {"roles": {"subscriber": {}}},
    {"roles": {"caller": {}}},
    {"roles": {"callee": {}}},
    {"roles": {"publisher": {}, "subscriber": {}, "caller": {}, "callee": {}}},
    {"roles": {"caller": {"features": {"call_canceling": True, "progressive_call_results": True}}}},
    {"roles": {"caller": {}}, "agent": "AutobahnPython-24.4.2"},
    {"roles": {"caller": {}}, "authmethods": ["anonymous", "ticket"], "authid": "joe", "authrole": "user",
     "authextra": {"pubkey": "abc"}},
    {"roles": {"caller": {}}, "authmethods": []},
    {"roles": {"caller": {}}, "authid": None, "authextra": None},
    {"roles": {"caller": {}}, "_vendor": 1},
]

INVALID_HELLO_DETAILS = [
    {},
    {"agent": "x"},
    {"roles": {}},
    {"roles": None},
    {"roles": []},
    {"roles": ["caller"]},
    {"roles": "caller"},
    {"roles": {"broker": {}}},
    {"roles": {"dealer": {}}},
    {"roles": {"caller": {}, "admin": {}}},
    {"roles": {"caller": None}},
    {"roles": {"caller": True}},
    {"roles": {"caller": []}},
    {"roles": {"caller": {}}, "authmethods": "ticket"},
    {"roles": {"caller": {}}, "authmethods": [1]},
    {"roles": {"caller": {}}, "authmethods": ["ticket", None]},
    {"roles": {"caller": {}}, "authid": 1},
    {"roles": {"caller": {}}, "authrole": ["user"]},
    {"roles": {"caller": {}}, "authextra": []},
    {"roles": {"caller": {}}, "authextra": "x"},
    {"roles": {"caller": {}}, "Agent": "x"},
]


@pytest.mark.parametrize("details", VALID_HELLO_DETAILS, ids=repr)
def test_hello_details_valid(details: dict[str, Any]) -> None:
    message = parse_message([1, "realm1", details])
    assert message == Hello("realm1", details)


@pytest.mark.parametrize("details", INVALID_HELLO_DETAILS, ids=repr)
def test_hello_details_invalid(details: dict[str, Any]) -> None:
    _rejects([1, "realm1", details])


@pytest.mark.parametrize("details", [{}, {"roles": None}, {"roles": []}, {"roles": "broker"}], ids=repr)
def test_welcome_requires_roles_dict(details: dict[str, Any]) -> None:
    _rejects([2, 1, details])


def test_welcome_roles() -> None:
    message = parse_message([2, 1, {"roles": {"broker": {}, "dealer": {"features": {}}}, "authid": "x"}])
    assert message == Welcome(1, {"roles": {"broker": {}, "dealer": {"features": {}}}, "authid": "x"})


# -- ERROR request types -------------------------------------------------------------------------


@pytest.mark.parametrize("request_type", [16, 32, 34, 48, 64, 66, 68])
def test_error_request_type_valid(request_type: int) -> None:
    message: Any = parse_message([8, request_type, 1, {}, "com.myapp.error"])
    assert message.request_type == request_type


@pytest.mark.parametrize(
    "request_type",
    [0, 1, 2, 3, 6, 8, 17, 33, 35, 36, 50, 65, 67, 69, 70, 256, -48, True, 48.0, "48", None, [48]],
    ids=repr,
)
def test_error_request_type_invalid(request_type: Any) -> None:
    _rejects([8, request_type, 1, {}, "com.myapp.error"])


# -- round trips ---------------------------------------------------------------------------------


def _roundtrip_cases() -> list[Any]:
    cases = []
    for cls, full in FULL.items():  # ABORT with a payload: test_abort_may_carry_a_payload
        low, high = ARITY[cls]
        high = min(high, len(full))
        for n in range(low, high + 1):
            cases.append(pytest.param(full[:n], id=f"{cls.NAME}-{n}"))
    return cases


@pytest.mark.parametrize("wmsg", _roundtrip_cases())
def test_parse_marshal_roundtrip(wmsg: list[Any]) -> None:
    message = parse_message(wmsg)
    assert message.marshal() == wmsg
    assert parse_message(message.marshal()) == message
    for serializer in SERIALIZERS.values():
        assert parse_message(serializer.decode(serializer.encode(message.marshal()))) == message


@pytest.mark.parametrize(
    "message",
    [
        Hello("realm1", {"roles": {"subscriber": {}}}),
        Welcome(MAX_ID, {"roles": {"broker": {}}}),
        Abort({}, "wamp.error.protocol_violation"),
        Challenge("ticket"),
        Authenticate("secret"),
        Goodbye({}, "wamp.close.goodbye_and_out"),
        Error(68, 1, {}, "com.err", ["a"], {"b": 1}),
        Publish(1, {}, "t"),
        Published(1, 2),
        Subscribe(1, {"match": "prefix"}, "com"),
        Subscribed(1, 2),
        Unsubscribe(1, 2),
        Unsubscribed(1),
        Unsubscribed(0, {"subscription": 2, "reason": "wamp.error.revoked"}),
        Event(1, 2, {"publisher": 3}, [b"\x00"]),
        Call(1, {"timeout": 1000}, "p", None, {"x": 1}),
        Cancel(1),
        Result(1, {"progress": True}, [1]),
        Register(1, {}, "p"),
        Registered(1, 2),
        Unregister(1, 2),
        Unregistered(1),
        Invocation(1, 2, {}, [], {"x": 1}),
        Interrupt(1),
        Yield(1, {}),
    ],
    ids=lambda m: type(m).NAME,
)
def test_marshal_parse_roundtrip_from_objects(message: Message) -> None:
    assert parse_message(message.marshal()) == _canonical(message)


def test_every_class_has_a_roundtrip_case() -> None:
    classes = {MESSAGE_CLASSES[param.values[0][0]] for param in _roundtrip_cases()}
    assert classes == set(MESSAGE_CLASSES.values())


# -- property: parse(decode(encode(marshal(m)))) == m ----------------------------------------------

_INT64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what all three serializers carry
# JSON cannot carry a text string starting with NUL (spec: binary convention), and no serializer
# carries lone surrogates; NaN is unequal to itself and orjson writes infinities as null.
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12).filter(lambda s: not s.startswith("\x00"))
_SCALARS = st.none() | st.booleans() | _INT64 | st.floats(allow_nan=False, allow_infinity=False) | _TEXT | st.binary(
    max_size=16
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)
_IDS = st.integers(min_value=1, max_value=MAX_ID)
_OPTION_KEYS = st.sampled_from(["acknowledge", "exclude_me", "match", "timeout", "x_y", "_vendor_key", "_a_b_c"])
_OPTIONS = st.dictionaries(_OPTION_KEYS, _VALUES, max_size=4)
_URIS = _TEXT
_ARGS = st.none() | st.lists(_VALUES, min_size=1, max_size=5)
_KWARGS = st.none() | st.dictionaries(_TEXT, _VALUES, min_size=1, max_size=5)
_CLIENT_ROLES = st.dictionaries(st.sampled_from(["publisher", "subscriber", "caller", "callee"]), _OPTIONS, min_size=1)
_ROUTER_ROLES = st.dictionaries(st.sampled_from(["broker", "dealer"]), _OPTIONS, min_size=1)


def _with_roles(roles: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.tuples(_OPTIONS, roles).map(lambda pair: {**pair[0], "roles": pair[1]})


def _canonical(message: Message) -> Message:
    """What a message looks like after marshal + parse: kwargs without args gets ``args=[]``, and
    empty payload elements are omitted (spec: "SHOULD avoid sending empty Arguments/ArgumentsKw")."""
    if not hasattr(message, "kwargs"):
        return message
    args, kwargs = message.args, message.kwargs  # type: ignore[attr-defined]
    if not kwargs:
        kwargs = None
        args = args or None
    elif args is None:
        args = []
    return dataclasses.replace(message, args=args, kwargs=kwargs)  # type: ignore[type-var]


MESSAGES: st.SearchStrategy[Message] = st.one_of(
    st.builds(Hello, _URIS, _with_roles(_CLIENT_ROLES)),
    st.builds(Welcome, _IDS, _with_roles(_ROUTER_ROLES)),
    st.builds(Abort, _OPTIONS, _URIS),
    st.builds(Challenge, _TEXT, _OPTIONS),
    st.builds(Authenticate, _TEXT, _OPTIONS),
    st.builds(Goodbye, _OPTIONS, _URIS),
    st.builds(Error, st.sampled_from(sorted(Error.REQUEST_TYPES)), _IDS, _OPTIONS, _URIS, _ARGS, _KWARGS),
    st.builds(Publish, _IDS, _OPTIONS, _URIS, _ARGS, _KWARGS),
    st.builds(Published, _IDS, _IDS),
    st.builds(Subscribe, _IDS, _OPTIONS, _URIS),
    st.builds(Subscribed, _IDS, _IDS),
    st.builds(Unsubscribe, _IDS, _IDS),
    st.builds(Unsubscribed, _IDS, st.none() | _OPTIONS.filter(bool)),
    st.builds(Event, _IDS, _IDS, _OPTIONS, _ARGS, _KWARGS),
    st.builds(Call, _IDS, _OPTIONS, _URIS, _ARGS, _KWARGS),
    st.builds(Cancel, _IDS, _OPTIONS),
    st.builds(Result, _IDS, _OPTIONS, _ARGS, _KWARGS),
    st.builds(Register, _IDS, _OPTIONS, _URIS),
    st.builds(Registered, _IDS, _IDS),
    st.builds(Unregister, _IDS, _IDS),
    st.builds(Unregistered, _IDS, st.none() | _OPTIONS.filter(bool)),
    st.builds(Invocation, _IDS, _IDS, _OPTIONS, _ARGS, _KWARGS),
    st.builds(Interrupt, _IDS, _OPTIONS),
    st.builds(Yield, _IDS, _OPTIONS, _ARGS, _KWARGS),
).map(_canonical)


def _strict_equal(a: Any, b: Any) -> bool:
    """Equality that also tells bool from int and int from float (``True == 1 == 1.0`` in Python)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_strict_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_strict_equal(a[k], b[k]) for k in a)
    return bool(a == b)


@pytest.mark.parametrize("name", list(SERIALIZERS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=MESSAGES)
def test_property_roundtrip_through_serializer(name: str, message: Message) -> None:
    serializer = SERIALIZERS[name]
    wmsg = message.marshal()
    decoded = serializer.decode(serializer.encode(wmsg))
    assert _strict_equal(decoded, wmsg)
    assert parse_message(decoded) == message
