"""The broker encodes an EVENT once per serializer, however many subscribers receive it."""

from __future__ import annotations

from typing import Any

from cloverleaf.router.auth import Action, AnonymousAuthenticator, Permission, RoleAuthorizer
from cloverleaf.router.realm import Realm
from cloverleaf.router.router import Router
from cloverleaf.router.session import RouterSession, SessionOptions
from cloverleaf.wamp.serializers import CborSerializer, JsonSerializer, Serializer


class CountingJson(JsonSerializer):
    __slots__ = ()
    encoded: list[int] = []

    def encode(self, wmsg: list[Any]) -> bytes:
        self.encoded.append(wmsg[0])
        return super().encode(wmsg)


class CountingCbor(CborSerializer):
    __slots__ = ()
    encoded: list[int] = []

    def encode(self, wmsg: list[Any]) -> bytes:
        self.encoded.append(wmsg[0])
        return super().encode(wmsg)


class MemoryLink:
    """An in-memory TransportLink: the router layer tested without sockets."""

    kind = "memory"
    peer = "memory"
    peer_max_message_size = 0

    def __init__(self, serializer: Serializer) -> None:
        self.serializer = serializer
        self.sent: list[bytes] = []

    def write(self, payload: bytes) -> None:
        self.sent.append(payload)

    def backlog(self) -> int:
        return 0

    def close(self, reason: str) -> None:
        pass

    def abort(self, reason: str) -> None:
        pass


def _joined(router: Router, serializer: Serializer) -> tuple[RouterSession, MemoryLink]:
    link = MemoryLink(serializer)
    session = router.open_session(link, SessionOptions([AnonymousAuthenticator()]))
    session.receive(serializer.encode([1, "realm1", {"roles": {"subscriber": {}, "publisher": {}}}]))
    return session, link


def test_event_for_many_subscribers_is_encoded_once_per_serializer() -> None:
    router = Router()
    everything = [Permission("", "prefix", frozenset(Action))]
    router.add_realm(Realm("realm1", RoleAuthorizer({"anonymous": everything})))
    json_ser, cbor_ser = CountingJson(), CountingCbor()
    subscribers = [_joined(router, json_ser if i % 2 else cbor_ser) for i in range(1000)]
    for session, link in subscribers:
        session.receive(link.serializer.encode([32, 1, {}, "com.example.fanout"]))
    publisher, _ = _joined(router, json_ser)
    CountingJson.encoded.clear()
    CountingCbor.encoded.clear()

    publisher.receive(json_ser.encode([16, 1, {}, "com.example.fanout", ["payload"]]))

    assert CountingJson.encoded.count(36) == 1
    assert CountingCbor.encoded.count(36) == 1
    events = [link.sent[-1] for _, link in subscribers]
    assert len(events) == 1000
    # every subscriber of one serializer got the very same bytes object
    assert len({id(e) for e in events}) == 2
