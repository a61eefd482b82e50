"""A realm: a routing and administrative domain with its own sessions, broker and dealer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..wamp.errors import ProtocolError
from ..wamp.messages import (
    Call,
    Cancel,
    Error,
    Message,
    Publish,
    Register,
    Subscribe,
    Unregister,
    Unsubscribe,
    Yield,
)
from ..wamp.uri import UriCheck, is_valid_uri
from .auth import Action, Authorizer, RolePolicy
from .broker import Broker
from .dealer import Dealer
from .history import EventStore
from .meta import MetaApi
from .patterns import EXACT, PREFIX, WILDCARD

if TYPE_CHECKING:
    from .session import RouterSession

log = logging.getLogger("cloverleaf.realm")

_NO_POLICY = RolePolicy()


class Realm:
    """Sessions joined to one realm and the broker and dealer that route between them."""

    def __init__(
        self,
        name: str,
        authorizer: Authorizer,
        uri_check: UriCheck = UriCheck.LOOSE,
    ) -> None:
        self.name = name
        self.uri_check = uri_check
        self.authorizer = authorizer
        self.sessions: dict[int, RouterSession] = {}
        self.broker = Broker(self)
        self.dealer = Dealer(self)
        self.meta = MetaApi(self)
        #: per-role disclosure and trust level policies
        self.role_policies: dict[str, RolePolicy] = {}
        #: where event history is kept, when any is configured (closed by the node on shutdown)
        self.event_store: EventStore | None = None
        self._valid_uris: dict[str, bool] = {}
        dealer, broker = self.dealer, self.broker
        # One dispatch table, built once: message type -> handler.
        self._handlers: dict[int, Callable[[RouterSession, Message], None]] = {
            Publish.MESSAGE_TYPE: broker.publish,  # type: ignore[dict-item]
            Subscribe.MESSAGE_TYPE: broker.subscribe,  # type: ignore[dict-item]
            Unsubscribe.MESSAGE_TYPE: broker.unsubscribe,  # type: ignore[dict-item]
            Call.MESSAGE_TYPE: dealer.call,  # type: ignore[dict-item]
            Cancel.MESSAGE_TYPE: dealer.cancel,  # type: ignore[dict-item]
            Yield.MESSAGE_TYPE: dealer.yield_,  # type: ignore[dict-item]
            Error.MESSAGE_TYPE: dealer.invocation_error,  # type: ignore[dict-item]
            Register.MESSAGE_TYPE: dealer.register,  # type: ignore[dict-item]
            Unregister.MESSAGE_TYPE: dealer.unregister,  # type: ignore[dict-item]
        }

    def dispatch(self, session: RouterSession, message: Message) -> None:
        """Route one message of an established session (lifecycle messages never get here)."""
        handler = self._handlers.get(message.MESSAGE_TYPE)
        if handler is None:  # the session core admits only the types above
            raise ProtocolError(f"{message.NAME} cannot be routed")
        handler(session, message)

    def valid_uri(self, uri: str, pattern: str = EXACT) -> bool:
        """Whether ``uri`` is valid under this realm's rule (memoized: URIs repeat a lot).

        A wildcard pattern may have empty components ("a..c"); a prefix pattern may also end with
        a dot ("com.example.", matching every URI below it).
        """
        if pattern == WILDCARD:
            return is_valid_uri(uri, self.uri_check, allow_empty_components=True)
        if pattern == PREFIX and uri.endswith("."):
            return is_valid_uri(uri[:-1], self.uri_check)
        known = self._valid_uris.get(uri)
        if known is None:
            known = is_valid_uri(uri, self.uri_check)
            if len(self._valid_uris) >= 100_000:  # bounded: forget everything rather than grow
                self._valid_uris.clear()
            self._valid_uris[uri] = known
        return known

    def authorize(self, session: RouterSession, action: Action, uri: str) -> bool:
        identity = session.identity
        return identity is not None and self.authorizer.authorize(identity.authrole, action, uri)

    def policy(self, session: RouterSession) -> RolePolicy:
        identity = session.identity
        policy = self.role_policies.get(identity.authrole) if identity is not None else None
        return policy if policy is not None else _NO_POLICY

    def attach(self, session: RouterSession) -> None:
        self.sessions[session.session_id] = session
        identity = session.identity
        assert identity is not None
        self.meta.joined(session)
        log.info(
            "session %d joined realm %s as %s/%s (%s) from %s via %s/%s",
            session.session_id,
            self.name,
            identity.authid,
            identity.authrole,
            identity.authmethod,
            session.link.peer,
            session.link.kind,
            session.serializer.NAME,
        )

    def detach(self, session: RouterSession, why: str) -> None:
        if self.sessions.pop(session.session_id, None) is None:
            return
        self.broker.detach(session)
        self.dealer.detach(session)
        self.meta.left(session)
        log.info("session %d left realm %s (%s): %s", session.session_id, self.name, session.link.peer, why)
