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


@dataclass(slots=True, frozen=True)
class RolePolicy:
    """What a realm does for every session of a role, beyond permissions."""

    #: disclose the identity of this role's callers to callees / publishers to subscribers,
    #: whether or not they ask (caller_identification / publisher_identification)
    disclose_caller: bool = False
    disclose_publisher: bool = False
    #: the trust level put into INVOCATION/EVENT details for this role's calls and publications
    #: (call_trustlevels / publication_trustlevels); None: no trust level
    trustlevel: int | None = None


class Authorizer(Protocol):
    def authorize(self, authrole: str, action: Action, uri: str) -> bool:
        """Whether a session with ``authrole`` may perform ``action`` on ``uri``."""

    def knows_role(self, authrole: str) -> bool:
        """Whether the realm defines ``authrole`` (joining under an unknown role is refused)."""


@dataclass(slots=True, frozen=True)
class Permission:
    """What a role may do on the URIs one rule matches."""

    uri: str
    #: "exact" or "prefix" (a plain string prefix; "" with prefix matches everything)
    match: str
    allow: frozenset[Action]


class RoleAuthorizer:
    """Static roles with per-URI permissions.

    Among a role's rules matching a URI, an exact rule wins over prefix rules, and the longest
    prefix wins among those; a URI no rule matches is denied, and so is an unknown role.
    Decisions are memoized per (role, action, URI) in a bounded cache.
    """

    _CACHE_LIMIT = 65_536

    def __init__(self, roles: dict[str, list[Permission]]) -> None:
        self._exact: dict[str, dict[str, Permission]] = {}
        self._prefix: dict[str, list[Permission]] = {}
        for role, permissions in roles.items():
            self._exact[role] = {p.uri: p for p in permissions if p.match == "exact"}
            self._prefix[role] = sorted(
                (p for p in permissions if p.match == "prefix"), key=lambda p: len(p.uri), reverse=True
            )
        self._cache: dict[tuple[str, Action, str], bool] = {}

    def knows_role(self, authrole: str) -> bool:
        return authrole in self._exact

    def authorize(self, authrole: str, action: Action, uri: str) -> bool:
        key = (authrole, action, uri)
        decision = self._cache.get(key)
        if decision is None:
            decision = self._decide(authrole, action, uri)
            if len(self._cache) >= self._CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = decision
        return decision

    def _decide(self, authrole: str, action: Action, uri: str) -> bool:
        exact = self._exact.get(authrole)
        if exact is None:
            return False
        rule = exact.get(uri)
        if rule is None:
            rule = next((p for p in self._prefix[authrole] if uri.startswith(p.uri)), None)
        return rule is not None and action in rule.allow
