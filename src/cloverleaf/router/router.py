"""The router: realms by name, joining sessions to them, and shutting everything down."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..wamp import errors
from ..wamp.ids import random_id
from ..wamp.messages import Challenge, Hello, Message, Welcome
from ..wamp.uri import is_valid_uri
from .auth import HelloInfo
from .broker import BROKER_FEATURES
from .dealer import DEALER_FEATURES
from .interfaces import TransportLink
from .realm import Realm
from .session import RouterSession, SessionLimits, SessionOptions, client_features

log = logging.getLogger("cloverleaf.router")

ROUTER_AGENT = "cloverleaf"


@dataclass(slots=True, frozen=True)
class RouterStats:
    sessions: int
    realms: dict[str, int]


class Router:
    """Holds the realms and every open session; transports open sessions with :meth:`open_session`."""

    def __init__(self, limits: SessionLimits | None = None, agent: str = ROUTER_AGENT) -> None:
        self.realms: dict[str, Realm] = {}
        self.limits = limits or SessionLimits()
        self.agent = agent
        #: every session with an open transport, joined or not
        self.sessions: set[RouterSession] = set()
        self._session_ids: set[int] = set()
        self._roles: dict[str, Any] = {
            "broker": {"features": dict(BROKER_FEATURES)},
            "dealer": {"features": dict(DEALER_FEATURES)},
        }

    def add_realm(self, realm: Realm) -> None:
        if realm.name in self.realms:
            raise ValueError(f"realm {realm.name!r} is defined twice")
        self.realms[realm.name] = realm

    def open_session(self, link: TransportLink, options: SessionOptions) -> RouterSession:
        """A transport accepted a connection: create its (not yet joined) session."""
        session = RouterSession(self, link, self.limits, options)
        self.sessions.add(session)
        return session

    def forget(self, session: RouterSession) -> None:
        self.sessions.discard(session)
        self._session_ids.discard(session.session_id)

    # -- joining -----------------------------------------------------------------------------

    def handle_join_message(self, session: RouterSession, message: Message) -> None:
        """HELLO (and, once challenge-response methods exist, AUTHENTICATE) before WELCOME."""
        if not isinstance(message, Hello):
            session.abort(errors.PROTOCOL_VIOLATION, f"unexpected {message.NAME} while joining")
            return
        if not is_valid_uri(message.realm):
            session.abort(errors.INVALID_URI, f"invalid realm URI {message.realm!r:.100}")
            return
        realm = self.realms.get(message.realm)
        if realm is None:
            session.abort(errors.NO_SUCH_REALM, f"no realm '{message.realm}' exists on this router")
            return
        details = message.details
        offered = details.get("authmethods") or ["anonymous"]
        hello = HelloInfo(message.realm, details, session.link.kind, session.link.peer)
        available = {a.method: a for a in session.authenticators}
        chosen = next((available[m] for m in offered if m in available), None)
        if chosen is None:
            session.abort(
                errors.NO_AUTH_METHOD,
                f"none of the offered authentication methods ({', '.join(offered)}) is available",
            )
            return
        identity = chosen.authenticate(hello)
        if identity is None:
            session.abort(errors.AUTHENTICATION_FAILED, "authentication failed")
            return
        if not realm.authorizer.knows_role(identity.authrole):
            session.abort(errors.NO_SUCH_ROLE, f"role '{identity.authrole}' does not exist on realm '{realm.name}'")
            return
        while (session_id := random_id()) in self._session_ids:
            pass
        self._session_ids.add(session_id)
        session.session_id = session_id
        session.identity = identity
        session.client_features = client_features(details["roles"])
        session.realm = realm
        realm.attach(session)
        welcome_details: dict[str, Any] = {
            "realm": realm.name,
            "authid": identity.authid,
            "authrole": identity.authrole,
            "authmethod": identity.authmethod,
            "authprovider": identity.authprovider,
            "roles": self._roles,
            "router_agent": self.agent,
        }
        if identity.authextra:
            welcome_details["authextra"] = identity.authextra
        session.send(Welcome(session_id, welcome_details))
        session.core.sent_welcome()

    def send_challenge(self, session: RouterSession, challenge: Challenge) -> None:
        session.send(challenge)
        session.core.sent_challenge()

    # -- shutting down -----------------------------------------------------------------------

    def shutdown(self, reason: str = errors.CLOSE_SYSTEM_SHUTDOWN) -> None:
        """Say GOODBYE to every joined session and close every other connection."""
        for session in list(self.sessions):
            session.say_goodbye(reason)

    def stats(self) -> RouterStats:
        return RouterStats(len(self.sessions), {name: len(r.sessions) for name, r in self.realms.items()})
