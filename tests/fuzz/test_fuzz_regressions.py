"""Minimal reproducers of what the fuzz suite found, one test each (F1-F5 of issue 10).

A test is marked ``xfail(strict=True)`` while its bug is open: when a fix lands the test passes,
the strict marker turns that into a failure, and the marker (and the matching entry of
``gen.KNOWN_ISSUE_FEATURES``, if any) is to be removed. F2-F5 are fixed (32cc7e2), F1 by a depth
probe before cbor2 encodes; all are plain regression tests now.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from cloverleaf.router.auth import Action, AnonymousAuthenticator, Permission, RoleAuthorizer
from cloverleaf.router.history import MemoryEventStore
from cloverleaf.router.realm import Realm
from cloverleaf.router.router import Router
from cloverleaf.router.session import RouterSession, SessionOptions
from cloverleaf.wamp.serializers import CBOR, JSON, MSGPACK, Serializer


class Link:
    """The smallest TransportLink: records payloads, and closing as a marker."""

    kind = "memory"
    peer = "memory"
    peer_max_message_size = 0

    def __init__(self, serializer: Serializer) -> None:
        self.serializer = serializer
        self.sent: list[Any] = []

    def write(self, payload: bytes) -> None:
        try:
            self.sent.append(self.serializer.decode(payload))
        except Exception as exc:  # what the peer would fail on
            self.sent.append(("undecodable", str(exc), payload[:40]))

    def backlog(self) -> int:
        return 0

    def close(self, reason: str) -> None:
        self.sent.append(("closed", reason))

    def abort(self, reason: str) -> None:
        self.sent.append(("aborted", reason))


def _router() -> Router:
    router = Router()
    router.add_realm(Realm("realm1", RoleAuthorizer({"anonymous": [Permission("", "prefix", frozenset(Action))]})))
    return router


def _join(router: Router, serializer: Serializer, roles: dict[str, Any]) -> tuple[RouterSession, Link]:
    link = Link(serializer)
    session = router.open_session(link, SessionOptions([AnonymousAuthenticator()]))
    session.receive(serializer.encode([1, "realm1", {"roles": roles}]))
    assert link.sent[-1][0] == 2, link.sent  # WELCOME
    return session, link


async def test_caller_is_answered_when_its_callee_is_aborted_for_a_passthru_yield() -> None:
    """F3: Dealer.yield_ forgot the pending call before raising ProtocolError for an unannounced
    ppt_scheme, so the caller never got an answer (not even its timeout)."""
    router = _router()
    callee, callee_link = _join(router, JSON, {"callee": {}})  # no payload_passthru_mode announced
    caller, caller_link = _join(router, JSON, {"caller": {}})
    callee.receive(b'[64,1,{},"com.example.proc"]')
    caller.receive(b'[48,1,{"timeout":50},"com.example.proc",[1]]')
    callee.receive(b'[70,1,{"ppt_scheme":"x"},[2]]')  # a final YIELD using payload passthru

    assert callee_link.sent[-2][0] == 3 and callee_link.sent[-2][2] == "wamp.error.protocol_violation"
    # The callee is gone: the caller must hear so (ERROR for its CALL 1), as when any callee leaves.
    answers = [m for m in caller_link.sent[1:] if m[0] in (8, 50) and m[2] == 1]
    assert answers, f"the caller got nothing: {caller_link.sent[1:]}"


async def test_json_nul_map_key_is_not_routed_to_binary_peers() -> None:
    """F2: a JSON map key starting with NUL was routed to MessagePack/CBOR peers, which could not
    send the same key back."""
    router = _router()
    callee, callee_link = _join(router, MSGPACK, {"callee": {}})
    caller, caller_link = _join(router, JSON, {"caller": {}})
    callee.receive(MSGPACK.encode([64, 1, {}, "com.example.echo"]))
    caller.receive(b'[48,1,{},"com.example.echo",[],{"\\u0000":1}]')
    for message in callee_link.sent:  # the callee echoes every INVOCATION
        if message[0] == 68:
            callee.receive(MSGPACK.encode([70, message[1], {}, *message[4:]]))

    answer = caller_link.sent[-1]
    # Either the CALL is refused up front, or the echo is routed back: not a refused YIELD.
    reason = str(answer[5][0]) if answer[0] == 8 and len(answer) > 5 and answer[5] else ""
    refused_up_front = answer[0] == 8 and not reason.startswith("YIELD refused")
    echoed = answer[0] == 50 and answer[4] == {"\x00": 1}
    assert refused_up_front or echoed, answer


async def test_message_at_the_depth_limit_decodes_in_every_serializer() -> None:
    """F4: the CBOR decoder (max_depth=MAX_DEPTH - 1) refused a message of exactly MAX_DEPTH levels,
    which the data model admitted and the router routed."""
    router = _router()
    subscriber, subscriber_link = _join(router, CBOR, {"subscriber": {}})
    publisher, publisher_link = _join(router, JSON, {"publisher": {}})
    subscriber.receive(CBOR.encode([32, 1, {}, "com.example.topic"]))
    deep: Any = 1
    for _ in range(126):  # PUBLISH's own list is level 1, its Arguments list level 2: 128 levels in all
        deep = [deep]
    publisher.receive(JSON.encode([16, 1, {"acknowledge": True}, "com.example.topic", [deep]]))

    assert publisher_link.sent[-1][0] == 17, publisher_link.sent[-1]  # routed: PUBLISHED
    assert subscriber_link.sent[-1][0] == 36, subscriber_link.sent[-1]  # and readable by the CBOR peer


async def test_event_history_result_stays_within_the_depth_limit() -> None:
    """F5: wamp.subscription.get_events nests each kept event 3 levels deeper than it was published,
    so an admitted event came back deeper than a CBOR peer could read."""
    router = _router()
    subscription = router.realms["realm1"].broker.enable_history("com.example.topic", "exact", 10, MemoryEventStore())
    publisher, publisher_link = _join(router, JSON, {"publisher": {}})
    caller, caller_link = _join(router, CBOR, {"caller": {}})
    deep: Any = 1
    for _ in range(124):  # 126 levels: PUBLISH's own list, its Arguments, 124 more (the result: 129)
        deep = [deep]
    publisher.receive(JSON.encode([16, 1, {"acknowledge": True}, "com.example.topic", [deep]]))
    caller.receive(CBOR.encode([48, 1, {}, "wamp.subscription.get_events", [subscription]]))

    assert publisher_link.sent[-1][0] == 17, publisher_link.sent[-1]  # routed: PUBLISHED
    # the kept event comes back (or the call is refused), in a RESULT the CBOR caller can read
    assert caller_link.sent[-1][0] in (50, 8), caller_link.sent[-1]


def test_cbor_encoding_deep_nesting_raises_instead_of_crashing() -> None:
    code = (
        "from cloverleaf.wamp.serializers import CBOR\n"
        "from cloverleaf.wamp.errors import UnencodableError\n"
        "v = 1\n"
        "for _ in range(100_000): v = [v]\n"
        "try:\n"
        "    CBOR.encode([16, 1, {}, 'com.example.topic', [v]])\n"
        "except UnencodableError:\n"
        "    print('refused')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "refused" in result.stdout, f"exit {result.returncode}: {result.stderr[-500:]}"
