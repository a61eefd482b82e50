"""Authentication and authorization hooks.

Joining runs the transport's authenticator chain: the first authenticator whose method the client
offers (in the client's order) decides, answering HELLO with an :class:`Accept`, a
:class:`Challenge` or a :class:`Reject` (or an awaitable of one, for dynamic authenticators that
call a WAMP procedure). Every publish, subscribe, call and register passes the realm's authorizer,
which answers with a :class:`Decision` (or an awaitable of one).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from ..wamp import errors
from .patterns import EXACT, PREFIX, WILDCARD, PatternIndex, wildcard_rank


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
    #: the router-assigned session ID the session will have (spec: WAMP-CRA challenge "session")
    session_id: int = 0
    #: TLS channel binding data the transport offers, by type ("tls-unique", "tls-exporter")
    channel_binding: dict[str, bytes] = field(default_factory=dict)
    #: the client's TLS certificate (ssl.SSLSocket.getpeercert()), when it presented one
    peer_certificate: dict[str, Any] | None = None
    #: the same certificate, DER-encoded (for fingerprints)
    peer_certificate_der: bytes | None = None
    #: the WebSocket tracking cookie of the connection, when cookie authentication is on
    cookie: str | None = None

    @property
    def authid(self) -> str | None:
        value = self.details.get("authid")
        return value if isinstance(value, str) else None

    @property
    def authextra(self) -> dict[str, Any]:
        value = self.details.get("authextra")
        return value if isinstance(value, dict) else {}


@dataclass(slots=True, frozen=True)
class Accept:
    identity: Identity


@dataclass(slots=True, frozen=True)
class Challenge:
    """Send CHALLENGE with ``extra``; ``state`` comes back with the AUTHENTICATE."""

    extra: dict[str, Any]
    state: Any = None


@dataclass(slots=True, frozen=True)
class Reject:
    #: the ABORT reason; the message never says which part of the credentials was wrong
    error: str = errors.AUTHENTICATION_FAILED
    message: str = "authentication failed"


AuthOutcome = Accept | Challenge | Reject
MaybeAwaitable = AuthOutcome | Awaitable[AuthOutcome]


class Authenticator(Protocol):
    """One authentication method a transport offers."""

    method: str

    def hello(self, hello: HelloInfo) -> MaybeAwaitable:
        """Answer a HELLO that offers this method."""

    def authenticate(self, hello: HelloInfo, state: Any, signature: str, extra: dict[str, Any]) -> MaybeAwaitable:
        """Answer the AUTHENTICATE that follows our CHALLENGE (``state`` is the challenge's)."""


class AnonymousAuthenticator:
    """Admits anyone under a fresh random authid, with a fixed role."""

    method = "anonymous"

    def __init__(self, role: str = "anonymous", realm: str | None = None) -> None:
        self.role = role
        #: the only realm anonymous clients may join (None: any)
        self.realm = realm

    def hello(self, hello: HelloInfo) -> MaybeAwaitable:
        if self.realm is not None and hello.realm != self.realm:
            return Reject(errors.AUTHENTICATION_FAILED, f"anonymous access is for realm {self.realm} only")
        # Like Crossbar, an anonymous client gets a random authid (it may not choose one).
        authid = "-".join(secrets.token_hex(2).upper() for _ in range(4))
        return Accept(Identity(authid, self.role, self.method, "static"))

    def authenticate(self, hello: HelloInfo, state: Any, signature: str, extra: dict[str, Any]) -> MaybeAwaitable:
        return Reject(errors.PROTOCOL_VIOLATION, "anonymous authentication sends no CHALLENGE")


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


# -- authorization ---------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Decision:
    """An authorization answer: allowed or not, and whether to disclose the caller/publisher."""

    allowed: bool
    disclose: bool = False


ALLOW = Decision(True)
DENY = Decision(False)


class Authorizer(Protocol):
    def authorize(
        self, identity: Identity, session_id: int, action: Action, uri: str
    ) -> Decision | Awaitable[Decision]:
        """May a session act on ``uri``? An awaitable answer suspends that session's later messages."""

    def knows_role(self, authrole: str) -> bool:
        """Whether the realm defines ``authrole`` (joining under an unknown role is refused)."""


@dataclass(slots=True, frozen=True)
class Permission:
    """What a role may do on the URIs one rule matches."""

    uri: str
    #: "exact", "prefix" (plain string prefix; "" matches everything) or "wildcard"
    match: str
    allow: frozenset[Action]
    #: disclose the caller (for call) / the publisher (for publish) when this rule allows
    disclose_caller: bool = False
    disclose_publisher: bool = False


class RoleAuthorizer:
    """Static roles with per-URI permissions (Crossbar's precedence).

    Among a role's rules matching a URI an exact rule wins, then the best wildcard rule, then the
    longest prefix rule. A URI no rule matches is denied, and so is an unknown role. Roles may
    instead name a dynamic authorizer (a WAMP procedure), see :class:`DynamicAuthorizer`.
    Decisions are memoized per (role, action, URI) in a bounded cache.
    """

    _CACHE_LIMIT = 65_536

    def __init__(
        self,
        roles: dict[str, list[Permission]],
        dynamic: dict[str, DynamicAuthorizer] | None = None,
    ) -> None:
        self._rules: dict[str, PatternIndex[Permission]] = {}
        for role, permissions in roles.items():
            index: PatternIndex[Permission] = PatternIndex()
            for permission in permissions:
                index.add(permission.uri, permission.match, permission)
            self._rules[role] = index
        self._dynamic = dynamic or {}
        self._cache: dict[tuple[str, Action, str], Decision] = {}

    def knows_role(self, authrole: str) -> bool:
        return authrole in self._rules or authrole in self._dynamic

    def add_role(self, role: str, permissions: list[Permission]) -> None:
        """Define ``role`` with ``permissions`` (after construction, e.g. a role the node itself needs)."""
        index: PatternIndex[Permission] = PatternIndex()
        for permission in permissions:
            index.add(permission.uri, permission.match, permission)
        self._rules[role] = index
        self._dynamic.pop(role, None)
        self._cache.clear()

    def authorize(
        self, identity: Identity, session_id: int, action: Action, uri: str
    ) -> Decision | Awaitable[Decision]:
        role = identity.authrole
        dynamic = self._dynamic.get(role)
        if dynamic is not None:
            return dynamic.authorize(identity, session_id, action, uri)
        key = (role, action, uri)
        decision = self._cache.get(key)
        if decision is None:
            decision = self._decide(role, action, uri)
            if len(self._cache) >= self._CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = decision
        return decision

    def _decide(self, role: str, action: Action, uri: str) -> Decision:
        index = self._rules.get(role)
        if index is None:
            return DENY
        rule = best_permission(index, uri)
        if rule is None or action not in rule.allow:
            return DENY
        disclose = (action is Action.CALL and rule.disclose_caller) or (
            action is Action.PUBLISH and rule.disclose_publisher
        )
        return Decision(True, disclose)


def best_permission(index: PatternIndex[Permission], uri: str) -> Permission | None:
    """Crossbar's rule precedence: exact, then the best wildcard, then the longest prefix."""
    matches = index.matching(uri)
    if not matches:
        return None
    exact = [value for _, match, value in matches if match == EXACT]
    if exact:
        return exact[0]
    wildcards = [(pattern, value) for pattern, match, value in matches if match == WILDCARD]
    if wildcards:
        return max(wildcards, key=lambda item: wildcard_rank(item[0]))[1]
    prefixes = [(pattern, value) for pattern, match, value in matches if match == PREFIX]
    return max(prefixes, key=lambda item: len(item[0]))[1]


ProcedureCaller = Callable[[str, str, list[Any], dict[str, Any], float], Awaitable[Any]]


class DynamicAuthorizer:
    """Authorization by a WAMP procedure: called with (session details, uri, action, options).

    The procedure answers ``true``/``false`` or ``{"allow": bool, "disclose": bool, "cache": bool}``.
    Answers with ``cache: true`` are kept per (session, action, URI) in a bounded cache; an error,
    a malformed answer or no answer within ``timeout`` seconds denies the action.
    """

    _CACHE_LIMIT = 10_000

    def __init__(self, realm: str, procedure: str, call: ProcedureCaller, timeout: float = 5.0) -> None:
        self.realm = realm
        self.procedure = procedure
        self.timeout = timeout
        self._call = call
        self._cache: dict[tuple[int, Action, str], Decision] = {}

    def authorize(
        self, identity: Identity, session_id: int, action: Action, uri: str
    ) -> Decision | Awaitable[Decision]:
        cached = self._cache.get((session_id, action, uri))
        if cached is not None:
            return cached
        return self._ask(identity, session_id, action, uri)

    async def _ask(self, identity: Identity, session_id: int, action: Action, uri: str) -> Decision:
        details = {"session": session_id, "authid": identity.authid, "authrole": identity.authrole,
                   "authmethod": identity.authmethod, "authprovider": identity.authprovider}  # fmt: skip
        try:
            answer = await self._call(self.realm, self.procedure, [details, uri, str(action), {}], {}, self.timeout)
        except Exception:
            return DENY
        if isinstance(answer, bool):
            decision, cache = Decision(answer), False
        elif isinstance(answer, dict) and isinstance(answer.get("allow"), bool):
            decision = Decision(answer["allow"], answer.get("disclose") is True)
            cache = answer.get("cache") is True
        else:
            return DENY
        if cache:
            if len(self._cache) >= self._CACHE_LIMIT:
                self._cache.clear()
            self._cache[(session_id, action, uri)] = decision
        return decision

    def forget_session(self, session_id: int) -> None:
        for key in [k for k in self._cache if k[0] == session_id]:
            del self._cache[key]
