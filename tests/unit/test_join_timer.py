"""The join timer (``hello_timeout``) counts the client's time only.

Router layer without sockets (an in-memory link); the same behaviour over real sockets is in
tests/integration/test_join_timeout.py.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from cloverleaf.router import session as session_module
from cloverleaf.router.auth import (
    Accept,
    Action,
    AnonymousAuthenticator,
    Challenge,
    HelloInfo,
    Identity,
    MaybeAwaitable,
    Permission,
    RoleAuthorizer,
)
from cloverleaf.router.ratelimit import RateLimitedLog
from cloverleaf.router.realm import Realm
from cloverleaf.router.router import Router
from cloverleaf.router.session import SessionLimits, SessionOptions
from cloverleaf.wamp.serializers import JsonSerializer

JSON = JsonSerializer()


class Link:
    kind = "memory"
    peer = "memory:test"
    peer_max_message_size = 0
    serializer = JSON

    def __init__(self) -> None:
        self.sent: list[list[Any]] = []
        self.closed: str | None = None
        #: what the kernel would not take (a slow consumer)
        self.stuck_backlog = 0

    def write(self, payload: bytes) -> None:
        self.sent.append(JSON.decode(payload))

    def backlog(self) -> int:
        return self.stuck_backlog

    def close(self, reason: str) -> None:
        self.closed = reason

    def abort(self, reason: str) -> None:
        self.closed = reason  # the transport reports the loss later (or, here, never)


class SlowAuthenticator:
    """Decides after ``delay`` seconds: with a CHALLENGE (``challenge``) or by accepting."""

    method = "slow"

    def __init__(self, delay: float, challenge: bool) -> None:
        self.delay = delay
        self.challenge = challenge

    def hello(self, hello: HelloInfo) -> MaybeAwaitable:
        return self._decide(Challenge({"nonce": "x"}) if self.challenge else self._accept())

    def authenticate(self, hello: HelloInfo, state: Any, signature: str, extra: dict[str, Any]) -> MaybeAwaitable:
        return self._decide(self._accept())

    @staticmethod
    def _accept() -> Accept:
        return Accept(Identity("joe", "anonymous", "slow", "dynamic"))

    async def _decide(self, outcome: Any) -> Any:
        await asyncio.sleep(self.delay)
        return outcome


def _router(limits: SessionLimits | None = None) -> Router:
    router = Router(limits)
    router.add_realm(Realm("realm1", RoleAuthorizer({"anonymous": [Permission("", "prefix", frozenset(Action))]})))
    return router


def _hello(method: str = "anonymous") -> bytes:
    return JSON.encode([1, "realm1", {"roles": {"subscriber": {}, "publisher": {}}, "authmethods": [method]}])


async def test_the_authenticators_time_is_not_the_clients() -> None:
    router = _router()
    link = Link()
    session = router.open_session(link, SessionOptions([SlowAuthenticator(0.8, challenge=True)], hello_timeout=0.5))
    await asyncio.sleep(0.1)
    session.receive(_hello("slow"))  # 0.1 s of the client's 0.5 s used; the authenticator takes 0.8 s
    await asyncio.sleep(0.85)
    assert [m[0] for m in link.sent] == [4]  # CHALLENGE, no ABORT although 0.95 s have passed
    session.receive(JSON.encode([5, "sig", {}]))  # about 0.15 s of 0.5 s used; again 0.8 s of deciding
    await asyncio.sleep(0.9)
    assert [m[0] for m in link.sent] == [4, 2] and session.is_open, link.sent  # WELCOME
    await asyncio.sleep(0.6)
    assert session.is_open and link.closed is None


async def test_the_clients_time_runs_on_after_a_challenge() -> None:
    router = _router()
    link = Link()
    session = router.open_session(link, SessionOptions([SlowAuthenticator(0.4, challenge=True)], hello_timeout=0.6))
    await asyncio.sleep(0.2)
    session.receive(_hello("slow"))
    await asyncio.sleep(0.5)  # CHALLENGE sent after 0.4 s of deciding: 0.4 s of the client's time was left
    assert [m[0] for m in link.sent] == [4]
    await asyncio.sleep(0.5)
    assert link.sent[-1] == [3, {"message": "no AUTHENTICATE within 0.6 s"}, "wamp.error.timeout"]
    assert link.closed == "abort" and session not in router.sessions


async def test_no_hello_is_aborted_once_and_logged_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a limiter of its own: other tests in this process may have used up the module's
    monkeypatch.setattr(session_module, "limited_log", RateLimitedLog(session_module.log))
    router = _router()
    link = Link()
    caplog.set_level(logging.INFO)
    router.open_session(link, SessionOptions([AnonymousAuthenticator()], hello_timeout=0.1))
    await asyncio.sleep(0.3)
    assert link.sent == [[3, {"message": "no HELLO within 0.1 s"}, "wamp.error.timeout"]]
    assert not router.sessions
    lines = [r for r in caplog.records if "no HELLO within 0.1 s" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
