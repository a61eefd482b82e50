"""A realm: a routing and administrative domain with its own sessions, broker and dealer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..wamp import errors
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
from .auth import ALLOW, DENY, Action, Authorizer, Decision, RolePolicy
from .broker import Broker
from .dealer import Dealer
from .history import EventStore
from .interfaces import ClusterRealm
from .meta import MetaApi
from .patterns import EXACT, PREFIX, WILDCARD
from .ratelimit import RateLimitedLog
from .stats import RealmStats

if TYPE_CHECKING:
    from .session import RouterSession

log = logging.getLogger("cloverleaf.realm")
#: a failing dynamic authorizer fails every request of every session that needs it
limited_log = RateLimitedLog(log)

#: the role of the router's own internal sessions (dynamic authenticators and authorizers call
#: procedures through them); only sessions on the in-memory transport may hold it
TRUSTED_ROLE = "cloverleaf.trusted"


class PendingAuthorization(Exception):
    """Authorizing needs an answer from a dynamic authorizer: route again once it arrives."""

    def __init__(self, action: Action, uri: str, answer: Awaitable[Decision]) -> None:
        super().__init__(f"{action} on {uri}")
        self.action = action
        self.uri = uri
        self.answer = answer


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
        self.stats = RealmStats()
        #: seconds after which a dynamic authorizer's silence denies
        self.authorization_timeout = 5.0
        self._pending_tasks: set[asyncio.Task[None]] = set()
        #: per-role disclosure and trust level policies
        self.role_policies: dict[str, RolePolicy] = {}
        #: where event history is kept, when any is configured (closed by the node on shutdown)
        self.event_store: EventStore | None = None
        #: the realm's link to the other nodes of a cluster (None: a single node)
        self.cluster: ClusterRealm | None = None
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
        """Route one message of an established session (lifecycle messages never get here).

        When authorizing the message needs an answer from a dynamic authorizer, the session is
        held (its later messages wait, in order), the answer is awaited, and the message is routed
        again with that answer.
        """
        handler = self._handlers.get(message.MESSAGE_TYPE)
        if handler is None:  # the session core admits only the types above
            raise ProtocolError(f"{message.NAME} cannot be routed")
        try:
            handler(session, message)
        except PendingAuthorization as pending:
            session.hold()
            task = asyncio.get_running_loop().create_task(self._authorize_then_route(session, message, pending))
            self._pending_tasks.add(task)
            task.add_done_callback(self._pending_tasks.discard)

    async def _authorize_then_route(
        self, session: RouterSession, message: Message, pending: PendingAuthorization
    ) -> None:
        try:
            decision = await asyncio.wait_for(pending.answer, self.authorization_timeout)
        except Exception as exc:
            limited_log.warning("authorizer failed", "authorization of %s on %s for session %d failed (%s): denied",
                                pending.action, pending.uri, session.session_id,
                                exc or type(exc).__name__)  # fmt: skip
            decision = DENY
        if session.realm is self and session.is_open:
            session.preauthorized = (pending.action, pending.uri, decision)
            try:
                self.dispatch(session, message)
            except ProtocolError as exc:
                session.abort(errors.PROTOCOL_VIOLATION, exc.message)
            finally:
                session.preauthorized = None
        session.release()

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

    def authorize(self, session: RouterSession, action: Action, uri: str) -> Decision:
        """The authorizer's decision; raises :class:`PendingAuthorization` when it must be awaited."""
        identity = session.identity
        if identity is None:
            return DENY
        if identity.authrole == TRUSTED_ROLE and session.link.kind == "internal":
            return ALLOW  # the router's own service sessions
        preauthorized = session.preauthorized
        if preauthorized is not None and preauthorized[0] == action and preauthorized[1] == uri:
            return preauthorized[2]
        answer = self.authorizer.authorize(identity, session.session_id, action, uri)
        if isinstance(answer, Decision):
            return answer
        raise PendingAuthorization(action, uri, answer)

    def policy(self, session: RouterSession) -> RolePolicy:
        identity = session.identity
        policy = self.role_policies.get(identity.authrole) if identity is not None else None
        return policy if policy is not None else _NO_POLICY

    def attach(self, session: RouterSession) -> None:
        self.sessions[session.session_id] = session
        self.stats.joins += 1
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
