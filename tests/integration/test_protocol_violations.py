"""Protocol violations, built by hand: every case of docs/spec-notes.md (a) that a router can see.

Each test sends malformed or out-of-order input and checks two things:

1. the offending session gets exactly ``[3, {...}, "wamp.error.protocol_violation"]`` (where the
   spec calls for an ABORT) and the router then closes its connection, dropping its registrations;
2. the router and the *other* sessions carry on: a healthy witness (a callee on WebSocket and a
   caller on RawSocket, joined before the violation) can still call its procedure afterwards.

Transport-level breaches (RawSocket handshake and framing, WebSocket frame type and size, spec-notes
(f) and (h)) fail the connection; there the spec defines no ABORT, so none is required, but any WAMP
message the router sends before closing must still be a protocol_violation ABORT.

Sequential request IDs (spec-notes (d), row 15) are not tested here (test_wampy.py and
test_errors_raw.py do). A message meant to be valid apart from the one defect under test still
carries the correct next request ID, so that the sequence rule, when a transport enforces it
(`sequential_request_ids: true`), is never the reason a test's ABORT comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tests.conftest as conftest
import websockets
from tests.conftest import RouterProcess, start_router
from tests.rawclient import HELLO_ROLES, RawClient, ws_frame

from cloverleaf.wamp.serializers import SERIALIZERS, Serializer

PROTOCOL_VIOLATION = "wamp.error.protocol_violation"
NO_SUCH_PROCEDURE = "wamp.error.no_such_procedure"
MAX_ID = 2**53
MAX_MESSAGE = 65536  # conftest: max_message_size of the TCP WebSocket and RawSocket transports
TIMEOUT = 2.0  # the router answers in milliseconds; this only bounds a failing test

HELLO, WELCOME, ABORT, GOODBYE, ERROR = 1, 2, 3, 6, 8
PUBLISH, PUBLISHED, SUBSCRIBE, SUBSCRIBED, UNSUBSCRIBE, UNSUBSCRIBED = 16, 17, 32, 33, 34, 35
CALL, CANCEL, RESULT, REGISTER, REGISTERED, UNREGISTER = 48, 49, 50, 64, 65, 66
UNREGISTERED, INVOCATION, INTERRUPT, YIELD = 67, 68, 69, 70

P = "com.example.pv.nobody"  # a procedure nobody registers
T = "com.example.pv.topic"
E = "com.example.pv.error"


class _Req:
    """Placeholder for "the offender's next request ID" in a message template."""

    def __repr__(self) -> str:
        return "REQ"


REQ: Any = _Req()

_names = itertools.count(1)


def unique(prefix: str) -> str:
    return f"com.example.pv.{prefix}.{next(_names)}"


# -- clients ----------------------------------------------------------------------------------


async def connect(router: RouterProcess, kind: str, serializer: str) -> RawClient:
    if kind == "websocket":
        return await RawClient.websocket(router.ws_url, serializer)
    if kind == "unix":
        return await RawClient.rawsocket(unix_path=router.unix_path, serializer=serializer)
    return await RawClient.rawsocket(router.rs_port, serializer)


def fill(message: Any, request: int) -> Any:
    if type(message) is list:
        return [request if item is REQ else item for item in message]
    return message


async def send_raw(client: RawClient, payload: bytes) -> None:
    """Send one payload as is: on WebSocket in the negotiated frame type, even if not valid UTF-8."""
    if client._ws is not None:
        await client._ws.send(payload, text=not client.serializer.BINARY)
    else:
        await client.send_bytes(payload)


def write_unframed(client: RawClient, data: bytes) -> None:
    """Write bytes straight to the socket, bypassing the client library's framing."""
    if client._ws is not None:
        client._ws.transport.write(data)
    else:
        assert client._writer is not None
        client._writer.write(data)


async def recv_or_fail(client: RawClient, what: str) -> list[Any]:
    try:
        return await client.recv(TIMEOUT)
    except TimeoutError:
        pytest.fail(f"no {what} from the router within {TIMEOUT}s (the message was ignored)")
    except (websockets.ConnectionClosed, asyncio.IncompleteReadError, ConnectionError) as exc:
        pytest.fail(f"the router closed the connection without sending {what} ({exc!r})")


def is_protocol_violation_abort(message: Any) -> bool:
    return (
        type(message) is list
        and len(message) == 3
        and message[0] == ABORT
        and type(message[1]) is dict
        and message[2] == PROTOCOL_VIOLATION
    )


async def rest_of_stream(client: RawClient) -> tuple[list[Any], int | None]:
    """Everything the router still sends until it closes: (WAMP messages, WebSocket close code)."""
    messages: list[Any] = []
    if client._ws is not None:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                data = await asyncio.wait_for(client._ws.recv(), max(0.01, deadline - time.monotonic()))
            except websockets.ConnectionClosed:
                return messages, client._ws.close_code
            except TimeoutError:
                pytest.fail(f"the router did not close the WebSocket connection (after {messages!r:.200})")
            messages.append(client.serializer.decode(data.encode() if isinstance(data, str) else data))
    reader = client._reader
    assert reader is not None
    data = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), TIMEOUT):
            data += chunk
    except ConnectionError:
        pass
    except TimeoutError:
        pytest.fail(f"the router did not close the RawSocket connection (after {data[:200]!r})")
    while len(data) >= 4:
        length = int.from_bytes(data[1:4], "big")
        if data[0] & 0x07 == 0 and len(data) >= 4 + length:
            messages.append(client.serializer.decode(data[4 : 4 + length]))
        data = data[4 + length :]
    return messages, None


async def expect_abort(client: RawClient) -> None:
    """The spec'd reaction: ABORT protocol_violation, then the router closes the connection."""
    message = await recv_or_fail(client, "ABORT")
    assert is_protocol_violation_abort(message), f"expected [3, {{...}}, {PROTOCOL_VIOLATION!r}], got {message!r:.300}"
    extra, _code = await rest_of_stream(client)
    assert extra == [], f"the router sent more after its ABORT: {extra!r:.300}"


async def expect_connection_failed(client: RawClient) -> int | None:
    """Transport-level failure: closed; if any WAMP message comes first it is a protocol_violation ABORT."""
    messages, code = await rest_of_stream(client)
    assert all(is_protocol_violation_abort(m) for m in messages), f"unexpected before close: {messages!r:.300}"
    return code


@dataclass
class Witness:
    """Two healthy sessions, joined before the violation: a callee (WebSocket) and a caller (RawSocket)."""

    callee: RawClient
    caller: RawClient
    procedure: str
    registration: int
    calls: int = 0

    @classmethod
    async def open(cls, router: RouterProcess) -> Witness:
        callee = await connect(router, "websocket", "cbor")
        caller = await connect(router, "rawsocket", "json")
        await callee.join()
        await caller.join()
        procedure = unique("witness")
        request = callee.request_id()
        registered = await callee.request([REGISTER, request, {}, procedure])
        assert registered[:2] == [REGISTERED, request], registered
        return cls(callee, caller, procedure, registered[2])

    async def check(self, gone: Iterable[str | None] = ()) -> None:
        """The router still routes a call between the two; ``gone`` procedures are unregistered."""
        self.calls += 1
        token = f"ping-{self.calls}"
        request = self.caller.request_id()
        await self.caller.send([CALL, request, {}, self.procedure, [token]])
        invocation = await recv_or_fail(self.callee, "INVOCATION to the witness")
        assert invocation[0] == INVOCATION and invocation[2] == self.registration, invocation
        assert invocation[4] == [token], f"the witness got someone else's invocation: {invocation!r:.200}"
        await self.callee.send([YIELD, invocation[1], {}, [token.upper()]])
        result = await recv_or_fail(self.caller, "RESULT to the witness")
        assert result == [RESULT, request, {}, [token.upper()]], result
        for procedure in gone:
            if procedure is not None:
                await self._assert_unregistered(procedure)

    async def _assert_unregistered(self, procedure: str) -> None:
        # After an ABORT the registration is gone at once; after a transport-level close the
        # router learns of it when the socket is closed, so allow it a moment.
        deadline = time.monotonic() + 1.0
        while True:
            request = self.caller.request_id()
            answer = await recv_after(self.caller, [CALL, request, {}, procedure])
            assert answer[:3] == [ERROR, CALL, request], answer
            if answer[4] == NO_SUCH_PROCEDURE:
                return
            assert time.monotonic() < deadline, f"the offender's registration {procedure} survived: {answer!r:.200}"
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self.callee.close()
        await self.caller.close()


async def recv_after(client: RawClient, message: list[Any]) -> list[Any]:
    await client.send(message)
    return await recv_or_fail(client, f"an answer to {message!r:.80}")


@pytest.fixture
async def witness(router: RouterProcess) -> Any:
    healthy = await Witness.open(router)
    yield healthy
    await healthy.close()


async def open_offender(router: RouterProcess, kind: str, serializer: str, joined: bool = True
                        ) -> tuple[RawClient, str | None]:
    """A session that will misbehave; once joined it registers a procedure, to check it is dropped."""
    client = await connect(router, kind, serializer)
    if not joined:
        return client, None
    await client.join()
    procedure = unique("offender")
    request = client.request_id()
    registered = await client.request([REGISTER, request, {}, procedure])
    assert registered[:2] == [REGISTERED, request], registered
    return client, procedure


# -- parametrization --------------------------------------------------------------------------

SERIALIZER_NAMES = ["json", "msgpack", "cbor"]
ALL_CHANNELS = [("websocket", s) for s in SERIALIZER_NAMES] + [("rawsocket", s) for s in SERIALIZER_NAMES]


def cases(table: list[tuple[str, Any]]) -> list[Any]:
    """Each case over WebSocket and RawSocket; serializers rotate so every one meets every transport."""
    params = []
    for index, (name, message) in enumerate(table):
        for offset, kind in enumerate(("websocket", "rawsocket")):
            serializer = SERIALIZER_NAMES[(index + offset) % 3]
            params.append(pytest.param(kind, serializer, message, id=f"{name}-{kind[:2]}-{serializer}"))
    return params


def each_channel(values: list[tuple[str, Any]] | None = None) -> list[Any]:
    """Every transport x serializer (for the cheap single-message cases)."""
    values = values or [("", None)]
    return [
        pytest.param(kind, serializer, value, id="-".join(filter(None, (name, kind[:2], serializer))))
        for name, value in values
        for kind, serializer in ALL_CHANNELS
    ]


# Client requests and other messages that are well-formed but not allowed before HELLO.
BEFORE_HELLO: list[tuple[str, Any]] = [
    ("CALL", [CALL, 1, {}, P]),
    ("GOODBYE", [GOODBYE, {}, "wamp.close.close_realm"]),
    ("ERROR", [ERROR, INVOCATION, 1, {}, E]),
    ("PUBLISH", [PUBLISH, 1, {}, T, ["x"]]),
    ("SUBSCRIBE", [SUBSCRIBE, 1, {}, T]),
    ("UNSUBSCRIBE", [UNSUBSCRIBE, 1, 2]),
    ("REGISTER", [REGISTER, 1, {}, P]),
    ("UNREGISTER", [UNREGISTER, 1, 2]),
    ("YIELD", [YIELD, 1, {}]),
    ("CANCEL", [CANCEL, 1, {}]),
    ("AUTHENTICATE", [5, "secret", {}]),
    ("WELCOME", [WELCOME, 1, {"roles": {"broker": {}}}]),
    ("EVENT", [36, 1, 2, {}]),
    ("RESULT", [RESULT, 1, {}]),
    ("INVOCATION", [INVOCATION, 1, 2, {}]),
]

# Messages a client may never send into an established session (spec-notes (a), rows 1, 3, 16).
NEVER_FROM_CLIENT: list[tuple[str, Any]] = [
    ("WELCOME", [WELCOME, 1, {"roles": {"broker": {}}}]),
    ("CHALLENGE", [4, "ticket", {}]),
    ("AUTHENTICATE", [5, "secret", {}]),
    ("PUBLISHED", [PUBLISHED, 1, 2]),
    ("SUBSCRIBED", [SUBSCRIBED, 1, 2]),
    ("UNSUBSCRIBED", [UNSUBSCRIBED, 1]),
    ("EVENT", [36, 1, 2, {}]),
    ("EVENT-payload", [36, 1, 2, {}, ["x"], {"k": 1}]),
    ("RESULT", [RESULT, 1, {}]),
    ("REGISTERED", [REGISTERED, 1, 2]),
    ("UNREGISTERED", [UNREGISTERED, 1]),
    ("INVOCATION", [INVOCATION, 1, 2, {}]),
    ("INTERRUPT", [INTERRUPT, 1, {}]),
]

# Not a message at all: not a list, empty, or an unknown / mistyped message type code.
NOT_A_MESSAGE: list[tuple[str, Any]] = [
    ("empty-list", []),
    ("dict", {"type": CALL}),
    ("string", "HELLO"),
    ("integer", CALL),
    ("null", None),
    ("nested-list", [[CALL, 1, {}, P]]),
    ("code-0", [0]),
    ("code-7", [7, {}]),
    ("code-255", [255, 1, {}]),
    ("code-256-extension", [256, 1, {}]),
    ("code-1024", [1024]),
    ("code-negative", [-1, 1]),
    ("code-2^53", [MAX_ID, 1, {}]),
    ("code-float", [48.0, REQ, {}, P]),
    ("code-string", ["48", REQ, {}, P]),
    ("code-bool-as-HELLO", [True, "realm1", {"roles": HELLO_ROLES}]),
    ("code-null", [None, 1]),
]

WRONG_ARITY: list[tuple[str, Any]] = [
    ("type-only", [CALL]),
    ("CALL-3", [CALL, REQ, {}]),
    ("CALL-7", [CALL, REQ, {}, P, [], {}, "extra"]),
    ("PUBLISH-3", [PUBLISH, REQ, {}]),
    ("PUBLISH-7", [PUBLISH, REQ, {}, T, [], {}, []]),
    ("SUBSCRIBE-3", [SUBSCRIBE, REQ, {}]),
    ("SUBSCRIBE-5", [SUBSCRIBE, REQ, {}, T, []]),
    ("UNSUBSCRIBE-2", [UNSUBSCRIBE, REQ]),
    ("UNSUBSCRIBE-4", [UNSUBSCRIBE, REQ, 2, {}]),
    ("REGISTER-3", [REGISTER, REQ, {}]),
    ("REGISTER-5", [REGISTER, REQ, {}, P, []]),
    ("UNREGISTER-2", [UNREGISTER, REQ]),
    ("YIELD-2", [YIELD, 1]),
    ("YIELD-6", [YIELD, 1, {}, [], {}, 1]),
    ("ERROR-4", [ERROR, INVOCATION, 1, {}]),
    ("ERROR-8", [ERROR, INVOCATION, 1, {}, E, [], {}, 1]),
    ("CANCEL-2", [CANCEL, 1]),
    ("GOODBYE-2", [GOODBYE, {}]),
    ("GOODBYE-4", [GOODBYE, {}, "wamp.close.close_realm", {}]),
    ("HELLO-2", [HELLO, "realm1"]),
]

WRONG_TYPES: list[tuple[str, Any]] = [
    ("ID-string", [CALL, "1", {}, P]),
    ("ID-0", [CALL, 0, {}, P]),
    ("ID-2^53+1", [CALL, MAX_ID + 1, {}, P]),
    ("ID-2^63", [CALL, 2**63, {}, P]),
    ("ID-negative", [CALL, -1, {}, P]),
    ("ID-float", [CALL, 1.5, {}, P]),  # an integral float (1.0) is read as that ID: spec-notes, "IDs as floats"
    ("ID-bool", [CALL, True, {}, P]),
    ("ID-null", [CALL, None, {}, P]),
    ("PUBLISH-ID-0", [PUBLISH, 0, {"acknowledge": True}, T]),
    ("SUBSCRIBE-ID-bool", [SUBSCRIBE, True, {}, T]),
    ("subscription-ID-0", [UNSUBSCRIBE, REQ, 0]),
    ("subscription-ID-bool", [UNSUBSCRIBE, REQ, True]),
    ("registration-ID-string", [UNREGISTER, REQ, "7"]),
    ("registration-ID-2^53+1", [UNREGISTER, REQ, MAX_ID + 1]),
    ("YIELD-ID-0", [YIELD, 0, {}]),
    ("YIELD-ID-2^53+1", [YIELD, MAX_ID + 1, {}]),
    ("CANCEL-ID-string", [CANCEL, "1", {}]),
    ("ERROR-request-ID-0", [ERROR, INVOCATION, 0, {}, E]),
    ("ERROR-type-string", [ERROR, "68", 1, {}, E]),
    ("ERROR-type-bool", [ERROR, True, 1, {}, E]),
    ("CALL-options-list", [CALL, REQ, [], P]),
    ("SUBSCRIBE-options-null", [SUBSCRIBE, REQ, None, T]),
    ("REGISTER-options-string", [REGISTER, REQ, "{}", P]),
    ("PUBLISH-options-bool", [PUBLISH, REQ, True, T]),
    ("YIELD-options-bool", [YIELD, 1, True]),
    ("CANCEL-options-string", [CANCEL, 1, "killnowait"]),
    ("ERROR-details-list", [ERROR, INVOCATION, 1, [], E]),
    ("GOODBYE-details-string", [GOODBYE, "bye", "wamp.close.close_realm"]),
    ("CALL-procedure-int", [CALL, REQ, {}, 42]),
    ("PUBLISH-topic-null", [PUBLISH, REQ, {}, None]),
    ("SUBSCRIBE-topic-list", [SUBSCRIBE, REQ, {}, ["com", "t"]]),
    ("REGISTER-procedure-bool", [REGISTER, REQ, {}, True]),
    ("ERROR-uri-bool", [ERROR, INVOCATION, 1, {}, False]),
    ("GOODBYE-reason-int", [GOODBYE, {}, 1]),
    ("CALL-args-dict", [CALL, REQ, {}, P, {"a": 1}]),
    ("CALL-args-null", [CALL, REQ, {}, P, None]),
    ("PUBLISH-args-string", [PUBLISH, REQ, {}, T, "a"]),
    ("YIELD-args-int", [YIELD, 1, {}, 5]),
    ("ERROR-args-dict", [ERROR, INVOCATION, 1, {}, E, {}]),
    ("CALL-kwargs-list", [CALL, REQ, {}, P, [], []]),
    ("PUBLISH-kwargs-string", [PUBLISH, REQ, {}, T, [], "k"]),
    ("YIELD-kwargs-null", [YIELD, 1, {}, [], None]),
    ("ERROR-kwargs-list", [ERROR, INVOCATION, 1, {}, E, [], [1]]),
]

# Option/detail keys must match [a-z][a-z0-9_]{2,} or _[a-z0-9_]{3,} (spec-notes (c)).
BAD_KEYS = ["Timeout", "ab", "disclose-me", "_ab", "", "1abc", "a.b.c", "key with space", "caf\u00e9", "abc\n"]

BAD_KEY_IN: list[tuple[str, Any]] = [
    ("CALL-options", [CALL, REQ, {"Bad-Key": 1}, P]),
    ("PUBLISH-options", [PUBLISH, REQ, {"acknowledge": True, "Bad-Key": 1}, T]),
    ("SUBSCRIBE-options", [SUBSCRIBE, REQ, {"Bad-Key": 1}, T]),
    ("REGISTER-options", [REGISTER, REQ, {"Bad-Key": 1}, P]),
    ("YIELD-options", [YIELD, 1, {"Bad-Key": 1}]),
    ("CANCEL-options", [CANCEL, 1, {"Bad-Key": 1}]),
    ("ERROR-details", [ERROR, INVOCATION, 1, {"Bad-Key": 1}, E]),
    ("GOODBYE-details", [GOODBYE, {"Bad-Key": 1}, "wamp.close.close_realm"]),
]

# HELLOs the router must refuse as invalid (spec: basic/sessions.md state chart, "invalid HELLO").
INVALID_HELLO: list[tuple[str, Any]] = [
    ("arity-2", [HELLO, "realm1"]),
    ("arity-4", [HELLO, "realm1", {"roles": HELLO_ROLES}, {}]),
    ("details-list", [HELLO, "realm1", []]),
    ("details-null", [HELLO, "realm1", None]),
    ("no-roles", [HELLO, "realm1", {}]),
    ("roles-empty", [HELLO, "realm1", {"roles": {}}]),
    ("roles-list", [HELLO, "realm1", {"roles": ["caller"]}]),
    ("role-not-dict", [HELLO, "realm1", {"roles": {"caller": True}}]),
    ("realm-int", [HELLO, 1, {"roles": HELLO_ROLES}]),
    ("realm-null", [HELLO, None, {"roles": HELLO_ROLES}]),
    ("details-bad-key", [HELLO, "realm1", {"roles": HELLO_ROLES, "Agent": "x"}]),
    ("authmethods-string", [HELLO, "realm1", {"roles": HELLO_ROLES, "authmethods": "anonymous"}]),
    ("authid-int", [HELLO, "realm1", {"roles": HELLO_ROLES, "authid": 7}]),
]

# ERROR may come from a client only in answer to an INVOCATION (spec-notes (a) row 6).
ERROR_REQUEST_TYPES = [PUBLISH, SUBSCRIBE, UNSUBSCRIBE, CALL, REGISTER, UNREGISTER,
                       CANCEL, RESULT, YIELD, HELLO, 0, 999]


def _sized(serializer: Serializer, prefix: list[Any], size: int) -> bytes:
    """``prefix + [[padding]]`` encoded to exactly ``size`` bytes."""
    pad = max(0, size - 64)
    for _ in range(8):
        payload = serializer.encode([*prefix, ["x" * pad]])
        if len(payload) == size:
            return payload
        pad += size - len(payload)
    raise AssertionError(f"cannot pad a {serializer.NAME} message to {size} bytes")


class Trailing(bytes):
    """Marks a payload to append to a *valid* message (HELLO before joining, CALL after), so the
    message itself cannot be what the router objects to."""


def valid_message(joined: bool, request: int) -> list[Any]:
    return [CALL, request, {}, P, ["a", 1], {"k": "v"}] if joined else [HELLO, "realm1", {"roles": HELLO_ROLES}]


def _undecodable() -> list[Any]:
    json, msgpack, cbor = SERIALIZERS["json"], SERIALIZERS["msgpack"], SERIALIZERS["cbor"]
    call = [CALL, 2, {}, P, ["a", 1], {"k": "v"}]
    table: dict[str, list[tuple[str, bytes]]] = {
        "json": [
            ("truncated", json.encode(call)[:-3]),
            ("not-json", b"not json at all"),
            ("trailing-comma", b"[48, 2, {}, \"com.example.pv.nobody\",]"),
            ("empty", b""),
            ("trailing-garbage", Trailing(b" x")),
            ("NaN", b"[48, 2, {}, \"com.example.pv.nobody\", [NaN]]"),
            ("infinite-number", b"[48, 2, {}, \"com.example.pv.nobody\", [1e999]]"),
            ("invalid-utf8", b"[48, 2, {}, \"com.example.\xff\xfe\"]"),
            ("lone-surrogate", b"[48, 2, {}, \"com.example.\\ud800\"]"),
            ("binary-bad-base64", b"[48, 2, {}, \"com.example.pv.nobody\", [\"\\u0000***\"]]"),
            ("deep-nesting", b"[" * 5000 + b"]" * 5000),
        ],
        "msgpack": [
            ("truncated", msgpack.encode(call)[:-3]),
            ("reserved-0xc1", b"\xc1"),
            ("empty", b""),
            ("trailing-garbage", Trailing(b"\x00")),
            ("array32-no-items", b"\xdd\xff\xff\xff\xff"),
            ("str-invalid-utf8", b"\x94\x30\x02\x80\xa2\xff\xfe"),
        ],
        "cbor": [
            ("truncated", cbor.encode(call)[:-3]),
            ("lone-break", b"\xff"),
            ("reserved-info-28", b"\x1c"),
            ("empty", b""),
            ("array64-no-items", b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff"),
            ("text-invalid-utf8", b"\x84\x18\x30\x02\xa0\x62\xff\xfe"),
            ("deep-nesting", b"\x81" * 5000 + b"\x00"),
            ("trailing-garbage", Trailing(b"\x00")),
            ("trailing-second-item", Trailing(b"\x80")),
        ],
    }
    return [
        pytest.param(kind, serializer, payload, id=f"{name}-{kind[:2]}-{serializer}")
        for serializer, rows in table.items()
        for name, payload in rows
        for kind in ("websocket", "rawsocket")
    ]


# -- session-level violations (ABORT protocol_violation) ----------------------------------------


@pytest.mark.parametrize(("kind", "serializer", "message"), cases(BEFORE_HELLO))
async def test_message_before_hello(router: RouterProcess, witness: Witness, kind: str, serializer: str,
                                    message: list[Any]) -> None:
    client, _ = await open_offender(router, kind, serializer, joined=False)
    await client.send(message)
    await expect_abort(client)
    await witness.check()


@pytest.mark.parametrize(("kind", "serializer", "message"), cases(INVALID_HELLO))
async def test_invalid_hello(router: RouterProcess, witness: Witness, kind: str, serializer: str,
                             message: list[Any]) -> None:
    client, _ = await open_offender(router, kind, serializer, joined=False)
    await client.send(message)
    await expect_abort(client)
    await witness.check()


@pytest.mark.parametrize(("kind", "serializer", "realm"), each_channel([("same-realm", "realm1"),
                                                                        ("other-realm", "strict.realm")]))
async def test_hello_twice(router: RouterProcess, witness: Witness, kind: str, serializer: str, realm: str) -> None:
    client, procedure = await open_offender(router, kind, serializer)
    await client.send([HELLO, realm, {"roles": HELLO_ROLES}])
    await expect_abort(client)
    await witness.check(gone=[procedure])


@pytest.mark.parametrize(("kind", "serializer", "message"), cases(NEVER_FROM_CLIENT))
async def test_message_a_client_may_never_send(router: RouterProcess, witness: Witness, kind: str, serializer: str,
                                               message: list[Any]) -> None:
    client, procedure = await open_offender(router, kind, serializer)
    await client.send(message)
    await expect_abort(client)
    await witness.check(gone=[procedure])


@pytest.mark.parametrize("joined", [False, True], ids=["before-hello", "established"])
@pytest.mark.parametrize(("kind", "serializer", "message"), cases(NOT_A_MESSAGE))
async def test_not_a_message(router: RouterProcess, witness: Witness, kind: str, serializer: str, message: Any,
                             joined: bool) -> None:
    client, procedure = await open_offender(router, kind, serializer, joined=joined)
    await client.send(fill(message, client.request_id()))
    await expect_abort(client)
    await witness.check(gone=[procedure])


@pytest.mark.parametrize(("kind", "serializer", "message"), cases(WRONG_ARITY))
async def test_wrong_arity(router: RouterProcess, witness: Witness, kind: str, serializer: str,
                           message: list[Any]) -> None:
    client, procedure = await open_offender(router, kind, serializer)
    await client.send(fill(message, client.request_id()))
    await expect_abort(client)
    await witness.check(gone=[procedure])


@pytest.mark.parametrize(("kind", "serializer", "message"), cases(WRONG_TYPES))
async def test_wrong_element_type(router: RouterProcess, witness: Witness, kind: str, serializer: str,
                                  message: list[Any]) -> None:
    client, procedure = await open_offender(router, kind, serializer)
    await client.send(fill(message, client.request_id()))
    await expect_abort(client)
    await witness.check(gone=[procedure])


@pytest.mark.parametrize(("kind", "serializer", "message"), [
    *cases([("options-int-key", [CALL, REQ, {1: True}, P]), ("kwargs-int-key", [CALL, REQ, {}, P, [], {1: "a"}]),
            ("details-bytes-key", [GOODBYE, {b"message": "x"}, "wamp.close.close_realm"])]),
])
async def test_non_string_dict_key(router: RouterProcess, witness: Witness, kind: str, serializer: str,
                                   message: list[Any]) -> None:
    """Dict keys must be strings (spec-notes (c)); only binary serializers can even carry other keys."""
    if serializer == "json":
        serializer = "msgpack" if kind == "websocket" else "cbor"
    client, procedure = await open_offender(router, kind, serializer)
    await client.send(fill(message, client.request_id()))
    await expect_abort(client)
    await witness.check(gone=[procedure])


@pytest.mark.parametrize(("kind", "serializer", "key"), cases([(f"key-{i}", k) for i, k in enumerate(BAD_KEYS)]))
async def test_invalid_option_key(router: RouterProcess, witness: Witness, kind: str, serializer: str,
                                  key: str) -> None:
    client, procedure = await open_offender(router, kind, serializer)
    await client.send([CALL, client.request_id(), {key: 1}, P])
    await expect_abort(client)
    await witness.check(gone=[procedure])


@pytest.mark.parametrize(("kind", "serializer", "message"), cases(BAD_KEY_IN))
async def test_invalid_option_key_in_each_message(router: RouterProcess, witness: Witness, kind: str,
                                                  serializer: str, message: list[Any]) -> None:
    client, procedure = await open_offender(router, kind, serializer)
    await client.send(fill(message, client.request_id()))
    await expect_abort(client)
    await witness.check(gone=[procedure])


@pytest.mark.parametrize(("kind", "serializer", "request_type"),
                         cases([(f"type-{t}", t) for t in ERROR_REQUEST_TYPES]))
async def test_error_for_a_request_type_other_than_invocation(router: RouterProcess, witness: Witness, kind: str,
                                                              serializer: str, request_type: int) -> None:
    client, procedure = await open_offender(router, kind, serializer)
    await client.send([ERROR, request_type, 1, {}, E, ["not an invocation error"]])
    await expect_abort(client)
    await witness.check(gone=[procedure])


@pytest.mark.parametrize(("kind", "serializer"), [("websocket", "json"), ("rawsocket", "msgpack"),
                                                  ("rawsocket", "cbor")])
async def test_yield_for_an_invocation_never_issued(router: RouterProcess, witness: Witness, kind: str,
                                                    serializer: str) -> None:
    """spec-notes (a) row 14: a YIELD whose INVOCATION.Request the router never sent is a violation.

    The offender gets one real INVOCATION (request n) and answers n + 1, an ID the router has
    never issued to it; the caller of the real invocation then learns that its callee is gone.
    """
    client, procedure = await open_offender(router, kind, serializer)
    assert procedure is not None
    call_request = witness.caller.request_id()
    await witness.caller.send([CALL, call_request, {}, procedure, ["real"]])
    invocation = await recv_or_fail(client, "INVOCATION")
    assert invocation[0] == INVOCATION, invocation
    await client.send([YIELD, invocation[1] + 1, {}, ["forged"]])
    await expect_abort(client)
    canceled = await recv_or_fail(witness.caller, "ERROR for the call whose callee was aborted")
    assert canceled[:3] == [ERROR, CALL, call_request] and canceled[4] == "wamp.error.canceled", canceled
    await witness.check(gone=[procedure])


@pytest.mark.parametrize(("kind", "serializer"), [("websocket", "cbor"), ("rawsocket", "json")])
async def test_yield_without_any_invocation(router: RouterProcess, witness: Witness, kind: str,
                                            serializer: str) -> None:
    """The same, on a session that was never sent an INVOCATION at all: YIELD for request 1."""
    client, procedure = await open_offender(router, kind, serializer)
    await client.send([YIELD, 1, {}, ["forged"]])
    await expect_abort(client)
    await witness.check(gone=[procedure])


@pytest.mark.parametrize("how", ["caller-left", "cancel-killnowait", "cancel-skip"])
@pytest.mark.parametrize("answer", ["yield", "error"])
async def test_late_answer_to_an_issued_invocation_is_not_a_violation(router: RouterProcess, witness: Witness,
                                                                      how: str, answer: str) -> None:
    """Guard for the YIELD check: an answer to an invocation the router *did* issue, arriving after
    the call went away, is discarded quietly (basic/remote_procedure_call.md:463,
    advanced/rpc_call_canceling.md), not punished."""
    callee, procedure = await open_offender(router, "rawsocket", "msgpack")
    caller = await connect(router, "websocket", "json")
    await caller.join()
    call_request = caller.request_id()
    await caller.send([CALL, call_request, {}, procedure, ["slow"]])
    invocation = await recv_or_fail(callee, "INVOCATION")
    if how == "caller-left":
        await caller.close()
    else:
        await caller.send([CANCEL, call_request, {"mode": how.removeprefix("cancel-")}])
        canceled = await recv_or_fail(caller, "ERROR canceled")
        assert canceled[:3] == [ERROR, CALL, call_request] and canceled[4] == "wamp.error.canceled", canceled
    if how != "cancel-skip":
        interrupt = await recv_or_fail(callee, "INTERRUPT")
        assert interrupt[:2] == [INTERRUPT, invocation[1]], interrupt
    if answer == "yield":
        await callee.send([YIELD, invocation[1], {}, ["late"]])
    else:
        await callee.send([ERROR, INVOCATION, invocation[1], {}, "wamp.error.canceled"])
    # The callee's session carries on: its next request is answered normally.
    request = callee.request_id()
    reply = await recv_after(callee, [SUBSCRIBE, request, {}, unique("topic")])
    assert reply[:2] == [SUBSCRIBED, request], f"late {answer} was punished: {reply!r:.200}"
    await callee.close()
    await caller.close()
    await witness.check()


async def test_valid_edge_cases_are_not_violations(router: RouterProcess, witness: Witness) -> None:
    """Controls: what the spec allows must not abort (unknown but well-formed keys are ignored, IDs
    up to 2^53 are valid, an empty payload may be sent as [] and {})."""
    client = await connect(router, "rawsocket", "json")
    await client.join()
    request = client.request_id()
    answer = await recv_after(client, [CALL, request, {"x_custom": 1, "_vendor_key": True}, P])
    assert answer[:3] == [ERROR, CALL, request] and answer[4] == NO_SUCH_PROCEDURE, answer
    request = client.request_id()
    answer = await recv_after(client, [CALL, request, {}, P, [], {}])
    assert answer[:3] == [ERROR, CALL, request] and answer[4] == NO_SUCH_PROCEDURE, answer
    request = client.request_id()
    answer = await recv_after(client, [UNREGISTER, request, MAX_ID])
    assert answer[:3] == [ERROR, UNREGISTER, request] and answer[4] == "wamp.error.no_such_registration", answer
    request = client.request_id()
    answer = await recv_after(client, [PUBLISH, request, {"acknowledge": True}, T, [], {}])
    assert answer[:2] == [PUBLISHED, request], answer
    await client.close()
    await witness.check()


@pytest.mark.parametrize("kind", ["websocket", "rawsocket"])
async def test_nothing_after_the_violation_is_processed(router: RouterProcess, witness: Witness, kind: str) -> None:
    """spec-notes (a) step 2: after the violation the router MUST NOT process the peer's later messages.

    A CALL to the witness's procedure right behind the violation, in the same TCP segment, must
    never reach the witness: its next INVOCATION must be the witness's own call. (One write, so
    the router has read both when it closes; see the RST note at test_garbage_fuzz.)
    """
    client, procedure = await open_offender(router, kind, "json")
    violation = client.serializer.encode([WELCOME, 1, {"roles": {"broker": {}}}])
    later = client.serializer.encode([CALL, client.request_id(), {}, witness.procedure, ["from-offender"]])
    if client._ws is not None:
        data = ws_frame(violation) + ws_frame(later)
    else:
        data = b"".join(struct.pack("!I", len(p)) + p for p in (violation, later))
    write_unframed(client, data)
    await expect_abort(client)
    await witness.check(gone=[procedure])


@pytest.mark.parametrize(("violation", "joined"), [
    pytest.param([CALL, 1, {}, P], False, id="CALL-before-HELLO"),
    pytest.param([HELLO, "realm1", {"roles": HELLO_ROLES}], True, id="HELLO-twice"),
    pytest.param([RESULT, 1, {}], True, id="RESULT-from-client"),
    pytest.param(b"\x00garbage", True, id="undecodable"),
])
async def test_violations_on_the_unix_socket(router: RouterProcess, witness: Witness, violation: Any,
                                             joined: bool) -> None:
    """A few representative cases on the RawSocket-over-Unix transport too."""
    client, procedure = await open_offender(router, "unix", "msgpack", joined=joined)
    if isinstance(violation, bytes):
        await client.send_bytes(violation)
    else:
        await client.send(violation)
    await expect_abort(client)
    await witness.check(gone=[procedure])


# -- undecodable payloads -----------------------------------------------------------------------


@pytest.mark.parametrize("joined", [False, True], ids=["before-hello", "established"])
@pytest.mark.parametrize(("kind", "serializer", "payload"), _undecodable())
async def test_undecodable_payload(router: RouterProcess, witness: Witness, kind: str, serializer: str,
                                   payload: bytes, joined: bool) -> None:
    client, procedure = await open_offender(router, kind, serializer, joined=joined)
    if isinstance(payload, Trailing):
        payload = client.serializer.encode(valid_message(joined, client.request_id())) + payload
    await send_raw(client, payload)
    await expect_abort(client)
    await witness.check(gone=[procedure])


@pytest.mark.parametrize("kind", ["websocket", "rawsocket"])
async def test_deeply_nested_msgpack(fresh_router: RouterProcess, kind: str) -> None:
    """2,000 nested MessagePack arrays (a 2 kB payload) must be a decoding error like any other.

    On its own router: if the decoder's error escapes, the router logs a Traceback.
    """
    healthy = await Witness.open(fresh_router)
    try:
        client, procedure = await open_offender(fresh_router, kind, "msgpack")
        await send_raw(client, b"\x91" * 2000 + b"\x00")
        await expect_abort(client)
        await healthy.check(gone=[procedure])
    finally:
        await healthy.close()
    assert fresh_router.process.poll() is None
    assert "Traceback" not in fresh_router.log(), fresh_router.log()[-3000:]


# -- WebSocket transport ----------------------------------------------------------------------


@pytest.mark.parametrize("joined", [False, True], ids=["before-hello", "established"])
@pytest.mark.parametrize(("serializer", "frame"), [("json", "binary"), ("msgpack", "text"), ("cbor", "text")])
async def test_websocket_wrong_frame_type(router: RouterProcess, witness: Witness, serializer: str, frame: str,
                                          joined: bool) -> None:
    """wamp.2.json uses text frames only, wamp.2.msgpack/cbor binary only (spec-notes (h))."""
    client, procedure = await open_offender(router, "websocket", serializer, joined=joined)
    assert client._ws is not None
    message = [CALL, client.request_id(), {}, P] if joined else [HELLO, "realm1", {"roles": HELLO_ROLES}]
    payload = client.serializer.encode(message)
    await client._ws.send(payload, text=frame == "text")
    code = await expect_connection_failed(client)
    assert code == 1003, f"expected close code 1003 (unsupported data), got {code}"
    await witness.check(gone=[procedure])


@pytest.mark.parametrize("fragmented", [False, True], ids=["one-frame", "fragmented"])
@pytest.mark.parametrize("serializer", ["json", "msgpack"])
async def test_websocket_message_over_the_limit(router: RouterProcess, witness: Witness, serializer: str,
                                                fragmented: bool) -> None:
    """Over max_message_size: close with 1009. A single frame is refused on its header alone, so
    only the header and 4 kB go out: the router then closes with nothing of ours left unread, and
    its close frame cannot be lost to a TCP reset."""
    client, procedure = await open_offender(router, "websocket", serializer)
    assert client._ws is not None
    payload = _sized(client.serializer, [CALL, client.request_id(), {}, P], MAX_MESSAGE + 1)
    text = not client.serializer.BINARY
    if fragmented:
        await client._ws.send([payload[:40000], payload[40000:]], text=text)
    else:
        write_unframed(client, ws_frame(payload, 0x1 if text else 0x2)[:4096])
    code = await expect_connection_failed(client)
    assert code == 1009, f"expected close code 1009 (message too big), got {code}"
    await witness.check(gone=[procedure])


@pytest.mark.parametrize("fragmented", [False, True], ids=["one-frame", "fragmented"])
async def test_websocket_message_at_the_limit_is_accepted(router: RouterProcess, fragmented: bool) -> None:
    client = await connect(router, "websocket", "json")
    await client.join()
    assert client._ws is not None
    request = client.request_id()
    payload = _sized(client.serializer, [CALL, request, {}, P], MAX_MESSAGE)
    await client._ws.send([payload[:30000], payload[30000:]] if fragmented else payload, text=True)
    answer = await recv_or_fail(client, "ERROR no_such_procedure")
    assert answer[:3] == [ERROR, CALL, request] and answer[4] == NO_SUCH_PROCEDURE, answer
    await client.close()


# -- RawSocket transport ----------------------------------------------------------------------


async def _raw_open(router: RouterProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", router.rs_port)


async def _read_to_eof(reader: asyncio.StreamReader) -> bytes:
    data = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), TIMEOUT):
            data += chunk
    except ConnectionError:
        pass
    except TimeoutError:
        pytest.fail(f"the router did not close the connection (received {data[:100]!r})")
    return data


@pytest.mark.parametrize("handshake", [b"\x00\xf1\x00\x00", b"\x7e\xf1\x00\x00", b"\xff\xf1\x00\x00",
                                       b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"],
                         ids=["zero", "0x7e", "0xff", "http"])
async def test_rawsocket_bad_magic(router: RouterProcess, witness: Witness, handshake: bytes) -> None:
    """First octet not 0x7F: fail the connection (spec-notes (f)); no handshake reply."""
    reader, writer = await _raw_open(router)
    writer.write(handshake)
    assert await _read_to_eof(reader) == b""
    writer.close()
    await witness.check()


@pytest.mark.parametrize("serializer_id", [0, 4, 5, 6, 15])
async def test_rawsocket_unsupported_serializer(router: RouterProcess, witness: Witness, serializer_id: int) -> None:
    """Error reply 0x7F 0x10 0x00 0x00 (error 1: serializer unsupported), then close."""
    reader, writer = await _raw_open(router)
    writer.write(bytes((0x7F, 0xF0 | serializer_id, 0, 0)))
    assert await _read_to_eof(reader) == b"\x7f\x10\x00\x00"
    writer.close()
    await witness.check()


@pytest.mark.parametrize("reserved", [b"\x01\x00", b"\x00\x01", b"\x80\x00", b"\xff\xff"])
async def test_rawsocket_reserved_handshake_bytes(router: RouterProcess, witness: Witness, reserved: bytes) -> None:
    """Octets 3 and 4 MUST be 0: error reply 0x7F 0x30 0x00 0x00 (error 3: use of reserved bits), then close."""
    reader, writer = await _raw_open(router)
    writer.write(b"\x7f\xf1" + reserved)
    assert await _read_to_eof(reader) == b"\x7f\x30\x00\x00"
    writer.close()
    await witness.check()


@pytest.mark.parametrize("joined", [False, True], ids=["before-hello", "established"])
@pytest.mark.parametrize("first_octet", [3, 4, 5, 6, 7, 0x10, 0x80, 0xF0, 0x11],
                         ids=["type3", "type4", "type5", "type6", "type7", "R-bit0x10", "R-bit0x80", "R-all",
                              "R-bit-on-ping"])
async def test_rawsocket_reserved_frame_bits(router: RouterProcess, witness: Witness, first_octet: int,
                                             joined: bool) -> None:
    """Frame types 3..7 are reserved and the RRRR bits MUST be 0: fail the connection."""
    client, procedure = await open_offender(router, "rawsocket", "json", joined=joined)
    await client.send_bytes(client.serializer.encode([CALL, client.request_id(), {}, P]), frame_type=first_octet)
    await expect_connection_failed(client)
    await witness.check(gone=[procedure])


async def test_rawsocket_announces_the_configured_maximum(router: RouterProcess) -> None:
    reader, writer = await _raw_open(router)
    writer.write(b"\x7f\xf2\x00\x00")
    reply = await asyncio.wait_for(reader.readexactly(4), TIMEOUT)
    assert reply == b"\x7f\x72\x00\x00", f"expected L=7 (2**16 = {MAX_MESSAGE}) and msgpack, got {reply.hex()}"
    writer.close()


@pytest.mark.parametrize(("length", "send_payload"), [
    pytest.param(MAX_MESSAGE + 1, False, id="65537-header-only"),
    pytest.param(MAX_MESSAGE + 1, True, id="65537-whole-frame"),
    pytest.param(2**24 - 1, False, id="16MiB-header-only"),
])
async def test_rawsocket_frame_over_the_announced_maximum(router: RouterProcess, witness: Witness, length: int,
                                                          send_payload: bool) -> None:
    """A peer receiving a message over its announced limit MUST fail the connection (spec-notes (f));
    the header alone is enough to know."""
    client, procedure = await open_offender(router, "rawsocket", "json")
    assert client._writer is not None
    if send_payload:
        payload = _sized(client.serializer, [CALL, client.request_id(), {}, P], length)
        with contextlib.suppress(ConnectionError):  # the router may close while we are still writing
            await client.send_bytes(payload)
    else:
        client._writer.write(b"\x00" + length.to_bytes(3, "big") + b"[48,")
    await expect_connection_failed(client)
    await witness.check(gone=[procedure])


async def test_rawsocket_frame_at_the_announced_maximum_is_accepted(router: RouterProcess) -> None:
    client = await connect(router, "rawsocket", "json")
    await client.join()
    request = client.request_id()
    await client.send_bytes(_sized(client.serializer, [CALL, request, {}, P], MAX_MESSAGE))
    answer = await recv_or_fail(client, "ERROR no_such_procedure")
    assert answer[:3] == [ERROR, CALL, request] and answer[4] == NO_SUCH_PROCEDURE, answer
    await client.close()


async def test_silent_clients_are_closed_after_the_handshake_timeout(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection that never completes the RawSocket (or WebSocket) handshake is dropped."""
    ws_port, rs_port = conftest.free_port(), conftest.free_port()
    ports = iter((ws_port, rs_port))
    monkeypatch.setattr(conftest, "free_port", lambda: next(ports))
    timeout = 0.5
    transports = [
        {"type": "websocket", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": ws_port}, "path": "/ws",
         "handshake_timeout": timeout},
        {"type": "rawsocket", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": rs_port},
         "handshake_timeout": timeout},
        {"type": "rawsocket", "endpoint": {"type": "unix", "path": str(tmp_path / "router.sock")}},
    ]
    process = start_router(tmp_path, transports=transports)
    try:
        started = time.monotonic()
        silent = await asyncio.open_connection("127.0.0.1", rs_port)
        partial = await asyncio.open_connection("127.0.0.1", rs_port)
        partial[1].write(b"\x7f\xf1")  # half a handshake
        silent_ws = await asyncio.open_connection("127.0.0.1", ws_port)  # no HTTP upgrade request
        for reader, writer in (silent, partial, silent_ws):
            assert await _read_to_eof(reader) == b""
            writer.close()
        elapsed = time.monotonic() - started
        assert timeout * 0.8 <= elapsed < timeout + TIMEOUT, elapsed
        # The router still accepts and serves a well-behaved client.
        client = await RawClient.rawsocket(rs_port, "json")
        await client.join()
        await client.close()
    finally:
        assert process.stop() == 0
    assert "Traceback" not in process.log(), process.log()[-3000:]


# -- garbage fuzz -----------------------------------------------------------------------------

_FUZZ_SEEDS: list[list[Any]] = [
    [HELLO, "realm1", {"roles": HELLO_ROLES, "agent": "fuzz"}],
    [CALL, 1, {"receive_progress": True}, "com.example.fuzz.p", [1, "two", 3.5, None], {"k": [True, {}]}],
    [PUBLISH, 1, {"acknowledge": True, "exclude_me": False}, "com.example.fuzz.t", ["x"]],
    [SUBSCRIBE, 1, {}, "com.example.fuzz.t"],
    [REGISTER, 1, {}, "com.example.fuzz.p"],
    [YIELD, 1, {}, ["y"], {"z": 1}],
    [ERROR, INVOCATION, 1, {}, "com.example.fuzz.error", ["e"]],
    [GOODBYE, {}, "wamp.close.close_realm"],
]


def _mutate(rng: random.Random, payload: bytes) -> bytes:
    data = bytearray(payload)
    for _ in range(rng.randint(1, 4)):
        action = rng.randrange(4)
        if action == 0 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif action == 1 and data:
            del data[rng.randrange(len(data)):]
        elif action == 2:
            position = rng.randrange(len(data) + 1)
            data[position:position] = rng.randbytes(rng.randint(1, 8))
        elif data:
            position = rng.randrange(len(data))
            del data[position : position + rng.randint(1, 8)]
    return bytes(data)


async def test_garbage_fuzz(router: RouterProcess, witness: Witness) -> None:
    """200 seeded random payloads (and mutated valid messages) on fresh sessions: never a crash.

    Pure random bytes must always get ABORT protocol_violation and a close. A mutated message may
    still be valid, so it must only get *some* answer; the router dropping the connection without
    a word would mean an unhandled error.

    Nothing is sent after the payload until the router has had time to answer: a router that
    closes a socket with unread input makes the kernel send a TCP reset, and a reset may discard
    the ABORT before the client reads it.
    """
    rng = random.Random(0xC10FE12)
    failures: list[str] = []
    for index in range(200):
        kind = rng.choice(("websocket", "rawsocket"))
        serializer_name = rng.choice(SERIALIZER_NAMES)
        serializer = SERIALIZERS[serializer_name]
        joined = rng.random() < 0.5
        mutated = index % 5 >= 3
        if mutated:
            payload = _mutate(rng, serializer.encode(rng.choice(_FUZZ_SEEDS)))
        else:
            payload = rng.randbytes(rng.choice((rng.randint(0, 8), rng.randint(0, 64), rng.randint(0, 1024))))
        label = f"#{index} {kind}/{serializer_name} {'established' if joined else 'before-hello'} {payload[:40]!r}"
        client = await connect(router, kind, serializer_name)
        try:
            if joined:
                await client.join()
            await send_raw(client, payload)
            messages = await _fuzz_outcome(client, joined)
        finally:
            await client.close()
        if not mutated:
            if not messages or not is_protocol_violation_abort(messages[0]):
                failures.append(f"{label}: expected an ABORT protocol_violation, got {messages!r:.200}")
        elif not messages:
            failures.append(f"{label}: no answer at all, or the connection dropped without a WAMP message")
    assert not failures, "\n".join(failures)
    assert router.process.poll() is None, "the router process died"
    assert "Traceback" not in router.log(), router.log()[-3000:]
    await witness.check()


async def _fuzz_outcome(client: RawClient, joined: bool) -> list[Any]:
    """What the router sent until it closed, answered a probe CALL, or (before HELLO) sent WELCOME.

    A joined session may rightly ignore a (mutated but valid) message, such as a PUBLISH without
    acknowledge; if it stays quiet, a probe CALL shows whether it still answers. Its request ID is
    2 (the mutated message may have used 1); a wrong guess earns an ABORT, which is an answer too.
    """
    messages: list[Any] = []
    probe: int | None = None
    while True:
        quiet = joined and probe is None and not messages
        try:
            message = await client.recv(0.25 if quiet else TIMEOUT)
        except TimeoutError:
            if not quiet:
                return messages
            probe = 2
            await client.send([CALL, probe, {}, "com.example.fuzz.nobody"])
            continue
        except (websockets.ConnectionClosed, asyncio.IncompleteReadError, ConnectionError):
            return messages
        messages.append(message)
        if message[0] in (ABORT, GOODBYE):
            rest, _code = await rest_of_stream(client)
            return messages + rest
        if not joined and message[0] == WELCOME:
            return messages
        if joined and (probe is None or message[:3] in ([ERROR, CALL, probe], [RESULT, probe, {}])):
            return messages


# -- at the end of the module -------------------------------------------------------------------


def test_router_survived_everything(router: RouterProcess) -> None:
    assert router.process.poll() is None, "the router process died"
    assert "Traceback" not in router.log(), router.log()[-5000:]
