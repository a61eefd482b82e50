"""A bug inside the router while it handles one message costs that session alone: ABORT, one log
record with the traceback (needed to fix the bug), and every other session carries on."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from tests.unit.test_serialize_once import MemoryLink

from cloverleaf.router.auth import Action, AnonymousAuthenticator, Permission, RoleAuthorizer
from cloverleaf.router.realm import Realm
from cloverleaf.router.router import Router
from cloverleaf.router.session import RouterSession, SessionOptions
from cloverleaf.wamp.errors import INTERNAL_ERROR
from cloverleaf.wamp.messages import Message
from cloverleaf.wamp.serializers import JSON

ROLES = {"roles": {"caller": {}, "callee": {}, "publisher": {}, "subscriber": {}}}


def _joined(router: Router) -> tuple[RouterSession, MemoryLink]:
    link = MemoryLink(JSON)
    session = router.open_session(link, SessionOptions([AnonymousAuthenticator()]))
    session.receive(JSON.encode([1, "realm1", ROLES]))
    assert JSON.decode(link.sent[-1])[0] == 2  # WELCOME
    return session, link


async def test_internal_error_aborts_that_session_only(caplog: pytest.LogCaptureFixture) -> None:
    router = Router()
    realm = Realm("realm1", RoleAuthorizer({"anonymous": [Permission("", "prefix", frozenset(Action))]}))
    router.add_realm(realm)
    victim, victim_link = _joined(router)
    bystander, bystander_link = _joined(router)
    victim.receive(JSON.encode([64, 1, {}, "com.example.victims"]))
    assert realm.dealer.registrations.best("com.example.victims") is not None

    def broken(session: RouterSession, message: Message) -> Any:
        raise RuntimeError("a bug in the broker")

    publish = realm._handlers[16]
    realm._handlers[16] = broken
    with caplog.at_level(logging.ERROR, logger="cloverleaf.session"):
        victim.receive(JSON.encode([16, 2, {"acknowledge": True}, "com.example.topic", ["x"]]))
    realm._handlers[16] = publish

    abort = JSON.decode(victim_link.sent[-1])
    assert abort[0] == 3 and abort[2] == INTERNAL_ERROR
    assert not victim.is_open
    records = [r for r in caplog.records if "internal error while handling PUBLISH" in r.getMessage()]
    assert len(records) == 1 and records[0].exc_info is not None
    # the victim's registration is gone with it; the bystander is undisturbed
    registration = realm.dealer.registrations.best("com.example.victims")
    assert registration is None or not registration.callees
    bystander.receive(JSON.encode([16, 1, {"acknowledge": True}, "com.example.topic", ["y"]]))
    assert JSON.decode(bystander_link.sent[-1])[0] == 17  # PUBLISHED
