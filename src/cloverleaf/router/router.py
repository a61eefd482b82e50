"""The router: realms by name, joining sessions to them, and shutting everything down."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..wamp import errors
from ..wamp.ids import random_id
from ..wamp.messages import Authenticate, Hello, Message, Welcome
from ..wamp.messages import Challenge as ChallengeMessage
from ..wamp.session import Phase
from ..wamp.uri import is_valid_uri
from .auth import Accept, Authenticator, AuthOutcome, Challenge, HelloInfo, Identity, MaybeAwaitable, Reject
from .broker import BROKER_FEATURES
from .dealer import DEALER_FEATURES
from .interfaces import TransportLink
from .ratelimit import RateLimitedLog
from .realm import TRUSTED_ROLE, Realm
from .session import RouterSession, SessionLimits, SessionOptions, client_features

if TYPE_CHECKING:
    from .internal import ServiceSessions

log = logging.getLogger("cloverleaf.router")
#: join failures: any connection can cause them, so a flood of connections must not flood the log
limited_log = RateLimitedLog(log)


class ClusterSessions(Protocol):
    """What joining needs of a cluster back end (``Router.cluster_sessions``; None on a single
    node): session IDs are claimed cluster-wide before a session is welcomed."""

    def taken(self, session_id: int) -> bool:
        """Whether another node's session has this ID (a fresh ID should avoid it)."""

    def claim(self, realm: str, session_id: int, details: dict[str, Any]) -> Awaitable[bool]:
        """Claim ``session_id`` for a joining session described by ``details`` (as
        ``wamp.session.get`` tells it): True once it is this node's, False if another session of
        the cluster has it (draw another); raises when the cluster cannot be asked."""

    def claim_soon(self, realm: str, session_id: int, details: dict[str, Any]) -> None:
        """Claim in the background: for the router's in-memory sessions, which join at once."""

    def release(self, realm: str, session_id: int) -> None:
        """The session left (or never joined after its claim): free its ID cluster-wide."""


#: attempts at a session ID the cluster has not given out, before the join is refused
MAX_CLAIMS = 5


@dataclass(slots=True)
class PendingJoin:
    """A HELLO being authenticated: the realm asked for, the method chosen, its challenge state."""

    realm: Realm
    hello: HelloInfo
    authenticator: Authenticator
    state: Any = None


class JoinTimer:
    """The clock of one session's join: runs while the router waits for the client (its HELLO,
    its AUTHENTICATE after a CHALLENGE), stands still while the router itself decides (a dynamic
    authenticator, a delayed ABORT), and calls ``expired`` once ``timeout`` seconds have run."""

    __slots__ = ("_expired", "_handle", "_left", "_loop", "_since", "timeout")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float, expired: Callable[[], None]) -> None:
        self.timeout = timeout
        self._expired = expired
        self._left = timeout
        self._loop = loop
        self._since = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self.run()

    def run(self) -> None:
        """Start (or go on) counting the time the client takes."""
        if self._handle is None:
            self._since = self._loop.time()
            self._handle = self._loop.call_later(max(0.0, self._left), self._expired)

    def pause(self) -> None:
        """The router is deciding: this time is not the client's."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self._left -= self._loop.time() - self._since

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def _peer_host(peer: str) -> str:
    """The host part of "tcp:127.0.0.1:50312" (failures are counted per host, not per port)."""
    parts = peer.split(":")
    return ":".join(parts[1:-1]) if len(parts) > 2 else peer


class FailureDelays:
    """Slows down repeated authentication failures from one host.

    After ``free`` failures the ABORT is delayed by ``base`` seconds, doubling with every further
    failure up to ``maximum``; a success or ``window`` seconds without failure forgets the host.
    At most 10,000 hosts are remembered (the oldest are forgotten first).
    """

    def __init__(self, free: int = 3, base: float = 0.5, maximum: float = 10.0, window: float = 300.0) -> None:
        self.free = free
        self.base = base
        self.maximum = maximum
        self.window = window
        self._hosts: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def record(self, host: str) -> float:
        now = time.monotonic()
        count, last = self._hosts.pop(host, (0, now))
        count = 1 if now - last > self.window else count + 1
        self._hosts[host] = (count, now)
        if len(self._hosts) > 10_000:
            self._hosts.popitem(last=False)
        if count <= self.free:
            return 0.0
        return float(min(self.maximum, self.base * 2 ** min(count - self.free - 1, 30)))

    def forget(self, host: str) -> None:
        self._hosts.pop(host, None)


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
        self._join_tasks: set[asyncio.Task[None]] = set()
        #: session IDs claimed cluster-wide before WELCOME (None: a single node, joins never wait for it)
        self.cluster_sessions: ClusterSessions | None = None
        #: while set, every HELLO is answered ABORT (reason, message): a cluster node rejoining its
        #: cluster must not welcome sessions it could only route on its own
        self.refusing_joins: tuple[str, str] | None = None
        #: more WELCOME details, the same for every session: where it landed in a cluster or a node
        #: with workers (``x_cb_node``, ``x_cb_worker``, as Crossbar.io names them)
        self.welcome_extra: dict[str, Any] = {}
        #: seconds a (dynamic) authenticator may take before the join is refused
        self.auth_timeout = 10.0
        self.failures = FailureDelays()
        #: the router's own callers (dynamic authenticators and authorizers are procedures)
        from .internal import ServiceSessions  # the service sessions need the router first

        self.services: ServiceSessions = ServiceSessions(self)
        self._roles: dict[str, Any] = {
            "broker": {"features": dict(BROKER_FEATURES)},
            "dealer": {"features": dict(DEALER_FEATURES)},
        }

    def add_realm(self, realm: Realm) -> None:
        if realm.name in self.realms:
            raise ValueError(f"realm {realm.name!r} is defined twice")
        self.realms[realm.name] = realm

    def open_session(self, link: TransportLink, options: SessionOptions) -> RouterSession:
        """A transport accepted a connection: create its (not yet joined) session, which must join
        within ``options.hello_timeout`` seconds of waiting for the client."""
        session = RouterSession(self, link, self.limits, options)
        self.sessions.add(session)
        if options.hello_timeout > 0:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # a session driven by hand, without a loop (unit tests): no clock
                return session
            session.join_timer = JoinTimer(loop, options.hello_timeout, lambda: self._join_timed_out(session))
        return session

    def forget(self, session: RouterSession) -> None:
        self._stop_join_timer(session)
        self.sessions.discard(session)
        self._session_ids.discard(session.session_id)

    @staticmethod
    def _stop_join_timer(session: RouterSession) -> None:
        timer, session.join_timer = session.join_timer, None
        if timer is not None:
            timer.cancel()

    @staticmethod
    def _join_timed_out(session: RouterSession) -> None:
        """The client took ``hello_timeout`` seconds of the join: ABORT ``wamp.error.timeout``.

        The join timer stands still while the router decides (phase JOINING), so only these two
        phases are left where it can run out.
        """
        timer, session.join_timer = session.join_timer, None
        if timer is None:
            return
        phase = session.core.phase
        if phase is Phase.WAITING_HELLO:
            session.abort(errors.TIMEOUT, f"no HELLO within {timer.timeout:g} s")
        elif phase is Phase.AUTHENTICATING:
            session.join = None
            session.abort(errors.TIMEOUT, f"no AUTHENTICATE within {timer.timeout:g} s")

    # -- joining -----------------------------------------------------------------------------

    def handle_join_message(self, session: RouterSession, message: Message) -> None:
        """HELLO, then AUTHENTICATE for challenge-response methods, until WELCOME or ABORT."""
        if isinstance(message, Authenticate):
            join = session.join
            if join is None:
                session.abort(errors.PROTOCOL_VIOLATION, "AUTHENTICATE without a CHALLENGE")
                return
            outcome = join.authenticator.authenticate(join.hello, join.state, message.signature, message.extra)
            self._continue_join(session, outcome)
            return
        if not isinstance(message, Hello):
            session.abort(errors.PROTOCOL_VIOLATION, f"unexpected {message.NAME} while joining")
            return
        if not is_valid_uri(message.realm):
            session.abort(errors.INVALID_URI, f"invalid realm URI {message.realm!r:.100}")
            return
        if self.refusing_joins is not None:
            session.abort(*self.refusing_joins)
            return
        realm = self.realms.get(message.realm)
        if realm is None:
            session.abort(errors.NO_SUCH_REALM, f"no realm '{message.realm}' exists on this router")
            return
        details = message.details
        offered = details.get("authmethods") or ["anonymous"]
        available = {a.method: a for a in session.authenticators}
        chosen = next((available[m] for m in offered if m in available), None)
        if chosen is None:
            session.abort(
                errors.NO_AUTH_METHOD,
                f"none of the offered authentication methods ({', '.join(offered)}) is available",
            )
            return
        session.session_id = session_id = self._new_session_id()
        link = session.link
        hello = HelloInfo(
            message.realm, details, link.kind, link.peer, session_id,
            getattr(link, "channel_binding", None) or {}, getattr(link, "peer_certificate", None),
            getattr(link, "peer_certificate_der", None), getattr(link, "cookie", None),
        )  # fmt: skip
        session.join = PendingJoin(realm, hello, chosen)
        self._continue_join(session, chosen.hello(hello))

    def _new_session_id(self) -> int:
        """An ID no session of this router has (nor, in a cluster, any session known elsewhere)."""
        ids = self._session_ids
        cluster = self.cluster_sessions
        while (session_id := random_id()) in ids or (cluster is not None and cluster.taken(session_id)):
            pass
        ids.add(session_id)
        return session_id

    def _continue_join(self, session: RouterSession, outcome: MaybeAwaitable) -> None:
        if not isinstance(outcome, (Accept, Challenge, Reject)):
            session.core.joining()
            if session.join_timer is not None:
                session.join_timer.pause()  # the authenticator's time is bounded by auth_timeout
            task = asyncio.get_running_loop().create_task(self._await_join(session, outcome))
            self._join_tasks.add(task)
            task.add_done_callback(self._join_tasks.discard)
            return
        join = session.join
        if join is None or session.core.phase is Phase.CLOSED:
            return  # the client went away meanwhile
        if isinstance(outcome, Challenge):
            join.state = outcome.state
            session.send(ChallengeMessage(join.authenticator.method, outcome.extra))
            session.core.sent_challenge()
            if session.join_timer is not None:
                session.join_timer.run()  # waiting for the client again
        elif isinstance(outcome, Reject):
            self._refuse(session, outcome)
        else:
            self._welcome(session, join, outcome.identity)

    async def _await_join(self, session: RouterSession, outcome: Awaitable[AuthOutcome]) -> None:
        try:
            result = await asyncio.wait_for(outcome, self.auth_timeout)
        except Exception as exc:
            limited_log.warning("authenticator failed", "authenticator failed for %s: %s", session.link.peer,
                                exc or type(exc).__name__)  # fmt: skip
            result = Reject()
        self._continue_join(session, result)

    def _refuse(self, session: RouterSession, reject: Reject) -> None:
        """ABORT a failed join, later and later for a peer that keeps failing."""
        session.join = None
        delay = self.failures.record(_peer_host(session.link.peer))
        limited_log.info("join refused", "refused %s: %s: %s%s", session.link.peer, reject.error, reject.message,
                         f" (ABORT in {delay:g} s: repeated failures)" if delay > 0 else "")  # fmt: skip
        if delay <= 0:
            session.abort(reject.error, reject.message, logged=True)
            return
        session.core.joining()
        if session.join_timer is not None:
            session.join_timer.pause()  # the ABORT is on its way; the delay is the router's
        asyncio.get_running_loop().call_later(delay, self._abort_if_open, session, reject)

    @staticmethod
    def _abort_if_open(session: RouterSession, reject: Reject) -> None:
        if not session.link_closed:
            session.abort(reject.error, reject.message, logged=True)

    def _welcome(self, session: RouterSession, join: PendingJoin, identity: Identity) -> None:
        realm = join.realm
        session.join = None
        self._stop_join_timer(session)
        trusted = identity.authrole == TRUSTED_ROLE and session.link.kind == "internal"
        if not trusted and not realm.authorizer.knows_role(identity.authrole):
            session.abort(errors.NO_SUCH_ROLE, f"role '{identity.authrole}' does not exist on realm '{realm.name}'")
            return
        self.failures.forget(_peer_host(session.link.peer))
        cookie_store = getattr(session.link, "cookie_store", None)
        cookie = join.hello.cookie
        if cookie_store is not None and cookie and identity.authmethod != "cookie":
            rebound = cookie_store.remember(cookie, identity, time.monotonic())
            if not rebound:  # the cookie proves someone else: it may have been planted (session fixation)
                limited_log.warning("cookie of another identity",
                                    "session %d: its tracking cookie proves another identity; not rebound to %s",
                                    session.session_id, identity.authid)  # fmt: skip
        session.identity = identity
        session.client_features = client_features(join.hello.details["roles"])
        cluster = self.cluster_sessions
        if cluster is not None:
            if session.link.kind != "internal":
                # the ID must be this session's cluster-wide before anything is routed for it
                session.core.joining()
                task = asyncio.get_running_loop().create_task(self._claim_then_enter(session, realm, cluster))
                self._join_tasks.add(task)
                task.add_done_callback(self._join_tasks.discard)
                return
            # the router's in-memory sessions join at once (their callers expect it): a clash among
            # 2^53 IDs is left to the background claim to report
            cluster.claim_soon(realm.name, session.session_id, self._details(session, realm))
        self._enter(session, realm)

    @staticmethod
    def _details(session: RouterSession, realm: Realm) -> dict[str, Any]:
        details = session.describe()
        details["realm"] = realm.name  # the session is not attached yet
        return details

    async def _claim_then_enter(self, session: RouterSession, realm: Realm, cluster: ClusterSessions) -> None:
        """Claim the session's ID cluster-wide (drawing another while it clashes), then WELCOME."""
        for _attempt in range(MAX_CLAIMS):
            session_id = session.session_id
            try:
                claimed = await asyncio.wait_for(cluster.claim(realm.name, session_id, self._details(session, realm)),
                                                 self.auth_timeout)  # fmt: skip
            except Exception as exc:
                limited_log.warning("session claim failed", "session %d (%s): claiming its ID cluster-wide failed: %s",
                                    session_id, session.link.peer, exc or type(exc).__name__)  # fmt: skip
                if session.core.phase is not Phase.CLOSED:
                    session.abort(errors.CLOSE_SYSTEM_SHUTDOWN, "the cluster is unavailable: try another node")
                return
            if session.core.phase is Phase.CLOSED:  # the client went away meanwhile
                if claimed:
                    cluster.release(realm.name, session_id)
                return
            if claimed:
                self._enter(session, realm)
                return
            self._session_ids.discard(session_id)
            session.session_id = self._new_session_id()
        session.abort(errors.CLOSE_SYSTEM_SHUTDOWN, "no free session ID in the cluster")

    def _enter(self, session: RouterSession, realm: Realm) -> None:
        """Attach a session to its realm and WELCOME it."""
        identity = session.identity
        assert identity is not None
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
        if self.welcome_extra:
            welcome_details.update(self.welcome_extra)
        session.send(Welcome(session.session_id, welcome_details))
        session.core.sent_welcome()

    # -- shutting down -----------------------------------------------------------------------

    def shutdown(self, reason: str = errors.CLOSE_SYSTEM_SHUTDOWN) -> None:
        """Say GOODBYE to every joined session and close every other connection."""
        for session in list(self.sessions):
            session.say_goodbye(reason)

    def stats(self) -> RouterStats:
        return RouterStats(len(self.sessions), {name: len(r.sessions) for name, r in self.realms.items()})
