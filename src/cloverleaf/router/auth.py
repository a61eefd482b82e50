"""Authentication and authorization hooks.

Joining runs the realm's authenticator chain: the first authenticator whose method the client
offers (in the client's order) decides. Every publish, subscribe, call and register passes the
realm's authorizer. Issue-level features (ticket, WAMP-CRA, SCRAM, cryptosign, dynamic
authorizers) plug in here without touching the broker or dealer.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Action(StrEnum):
    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"
    CALL = "call"
    REGISTER = "register"


@dataclass(slots=True, frozen=True)
class Identity:
    """Who a session is once authenticated; carried into WELCOME.Details."""

    authid: str
    authrole: str
    authmethod: str
    authprovider: str
    authextra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class HelloInfo:
    """What an authenticator may look at when a client says HELLO."""

    realm: str
    details: dict[str, Any]
    transport_kind: str
    peer: str


class Authenticator(Protocol):
    method: str

    def authenticate(self, hello: HelloInfo) -> Identity | None:
        """Accept the client (return its identity) or refuse it (None)."""


class AnonymousAuthenticator:
    """Admits anyone under a fresh random authid, with a fixed role."""

    method = "anonymous"

    def __init__(self, role: str = "anonymous") -> None:
        self.role = role

    def authenticate(self, hello: HelloInfo) -> Identity | None:
        # Like Crossbar, an anonymous client gets a random authid (it may not choose one).
        authid = "-".join(secrets.token_hex(2).upper() for _ in range(4))
        return Identity(authid, self.role, self.method, "static")


class Authorizer(Protocol):
    def authorize(self, authrole: str, action: Action, uri: str) -> bool:
        """Whether a session with ``authrole`` may perform ``action`` on ``uri``."""


class RoleAuthorizer:
    """Static roles: a role is either allowed everything or absent (and then allowed nothing).

    Fine-grained per-URI permissions arrive with the authorization issue; the hook stays the same.
    """

    def __init__(self, allow_all_roles: set[str]) -> None:
        self._allowed = frozenset(allow_all_roles)

    def authorize(self, authrole: str, action: Action, uri: str) -> bool:
        return authrole in self._allowed
