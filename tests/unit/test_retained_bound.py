"""Retained events are bounded per realm: a publisher allowed to retain cannot grow the router's
memory topic by topic; the topic retained on longest ago is forgotten first."""

from __future__ import annotations

from tests.unit.test_serialize_once import MemoryLink

from cloverleaf.router.auth import Action, AnonymousAuthenticator, Permission, RoleAuthorizer
from cloverleaf.router.realm import Realm
from cloverleaf.router.router import Router
from cloverleaf.router.session import SessionOptions
from cloverleaf.wamp.serializers import JSON


async def test_retained_topics_are_bounded_oldest_first() -> None:
    router = Router()
    realm = Realm("realm1", RoleAuthorizer({"anonymous": [Permission("", "prefix", frozenset(Action))]}))
    realm.broker.max_retained_topics = 3
    router.add_realm(realm)
    link = MemoryLink(JSON)
    session = router.open_session(link, SessionOptions([AnonymousAuthenticator()]))
    session.receive(JSON.encode([1, "realm1", {"roles": {"publisher": {}, "subscriber": {}}}]))
    request = 0

    def publish(topic: str, value: str) -> None:
        nonlocal request
        request += 1
        session.receive(JSON.encode([16, request, {"retain": True, "acknowledge": True}, topic, [value]]))
        assert JSON.decode(link.sent[-1])[0] == 17  # PUBLISHED

    for name in ("a", "b", "c"):
        publish(f"com.example.{name}", name)
    publish("com.example.a", "a2")  # retained again: now the newest
    publish("com.example.d", "d")  # one topic too many: "b" was retained on longest ago
    assert list(realm.broker.retained) == ["com.example.c", "com.example.a", "com.example.d"]
    assert realm.broker.retained["com.example.a"][0].args == ["a2"]
    for number in range(1000):
        publish(f"com.example.flood.{number}", "x")
    assert len(realm.broker.retained) == 3

    realm.broker.max_retained_topics = 0
    realm.broker.retained.clear()
    publish("com.example.e", "e")
    assert realm.broker.retained == {}
