"""A session's output held while a cluster agrees on its SUBSCRIBE or REGISTER: what is sent meanwhile
follows the awaited answer, in order, and counts against the session's outgoing cap."""

from __future__ import annotations

from tests.unit.test_serialize_once import MemoryLink

from cloverleaf.router.auth import Action, AnonymousAuthenticator, Permission, RoleAuthorizer
from cloverleaf.router.realm import Realm
from cloverleaf.router.router import Router
from cloverleaf.router.session import QueuePolicy, RouterSession, SessionLimits, SessionOptions
from cloverleaf.wamp.messages import Event, Subscribed
from cloverleaf.wamp.serializers import JsonSerializer


class AbortingLink(MemoryLink):
    def __init__(self) -> None:
        super().__init__(JsonSerializer())
        self.aborted: str | None = None
        self.closed: list[str] = []

    def abort(self, reason: str) -> None:
        self.aborted = reason

    def close(self, reason: str) -> None:
        self.closed.append(reason)


def _joined(limits: SessionLimits | None = None) -> tuple[RouterSession, AbortingLink]:
    router = Router(limits)
    router.add_realm(Realm("realm1", RoleAuthorizer({"anonymous": [Permission("", "prefix", frozenset(Action))]})))
    link = AbortingLink()
    session = router.open_session(link, SessionOptions([AnonymousAuthenticator()]))
    session.receive(link.serializer.encode([1, "realm1", {"roles": {"subscriber": {}}}]))
    assert link.aborted is None and _types(link) == [2]  # WELCOME
    link.sent.clear()
    return session, link


def _types(link: MemoryLink) -> list[object]:
    return [link.serializer.decode(payload)[0] for payload in link.sent]


def test_what_is_sent_while_held_follows_the_answer_in_order() -> None:
    session, link = _joined()
    session.hold_output()
    for n in range(3):
        session.send(Event(7, n, {}, [n]))
    assert link.sent == []
    session.release_output(lambda: session.send(Subscribed(1, 7)))
    decoded = [link.serializer.decode(payload) for payload in link.sent]
    assert decoded == [[33, 1, 7], [36, 7, 0, {}, [0]], [36, 7, 1, {}, [1]], [36, 7, 2, {}, [2]]]
    session.send(Event(7, 3, {}, [3]))  # flowing again
    assert len(link.sent) == 5


def test_nested_holds_keep_until_the_last_release() -> None:
    session, link = _joined()
    session.hold_output()
    session.hold_output()
    session.send(Event(7, 1, {}))
    session.release_output(lambda: session.send(Subscribed(1, 7)))
    assert _types(link) == [33]  # the answer goes at once; the EVENT waits for the other hold
    session.release_output(lambda: session.send(Subscribed(2, 8)))
    assert _types(link) == [33, 33, 36]


def test_held_events_past_the_cap_are_dropped_under_drop_events() -> None:
    session, link = _joined(SessionLimits(max_outgoing_bytes=2000, queue_policy=QueuePolicy.DROP_EVENTS))
    session.hold_output()
    for n in range(20):
        session.send_payload(link.serializer.encode([36, 7, n, {}, ["x" * 200]]), 36, droppable=True)
    session.release_output(lambda: session.send(Subscribed(1, 7)))
    kept = len(link.sent) - 1
    assert 0 < kept < 20 and session.dropped_events == 20 - kept
    assert link.aborted is None


def test_a_held_message_past_the_cap_that_may_not_be_dropped_closes_the_session() -> None:
    session, link = _joined(SessionLimits(max_outgoing_bytes=2000, queue_policy=QueuePolicy.DROP_EVENTS))
    session.hold_output()
    for n in range(20):
        session.send_payload(link.serializer.encode([68, n, 7, {}, ["x" * 200]]), 68, droppable=False)
    assert link.aborted == "outgoing queue full"


def test_a_session_closed_while_held_still_says_why() -> None:
    """An ABORT (or GOODBYE) written while the output is held goes out, after what was kept, before
    the connection closes."""
    session, link = _joined()
    session.hold_output()
    session.send(Event(7, 1, {}))
    session.abort("wamp.error.protocol_violation", "test")
    assert _types(link) == [36, 3] and link.closed == ["abort"]
