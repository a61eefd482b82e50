"""One client's session as the router sees it: its transport link, phase and identity."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ..wamp import errors
from ..wamp.errors import ProtocolError, UnencodableError, UnroutableValueError
from ..wamp.ids import SequentialIds
from ..wamp.messages import Abort, Call, Error, Goodbye, Invocation, Message, Publish, Yield
from ..wamp.session import Phase, ServerSessionCore
from .auth import Action, Authenticator, Decision
from .outgoing import OutgoingMessage
from .ratelimit import RateLimitedLog

if TYPE_CHECKING:
    from .auth import Identity
    from .dealer import PendingCall
    from .interfaces import TransportLink
    from .realm import Realm
    from .router import JoinTimer, PendingJoin, Router

log = logging.getLogger("cloverleaf.session")
#: lines that peers which never joined can repeat at will (a flood of connections), and per-recipient ones
limited_log = RateLimitedLog(log)

#: seconds between two "dropping events" warnings for one slow session
DROP_WARNING_INTERVAL = 60.0

#: payloads a session may send while one of its requests awaits a dynamic authorizer
MAX_HELD_MESSAGES = 1000


def client_features(roles: dict[str, Any]) -> frozenset[str]:
    """Flatten HELLO.Details.roles into "role.feature" strings for the features set to true.

    The spec puts them in ``roles.<role>.features``; some clients (wampy, kraftfahrstrasse) put
    them straight into ``roles.<role>``, which is accepted too.
    """
    return frozenset(
        f"{role}.{name}"
        for role, info in roles.items()
        if type(info) is dict
        for flags in (info, info.get("features"))
        if type(flags) is dict
        for name, value in flags.items()
        if value is True
    )


class QueuePolicy(StrEnum):
    """What happens when a session's outgoing backlog reaches its cap (a slow consumer)."""

    #: drop EVENTs (counted per session); close the session if a non-event would overflow
    DROP_EVENTS = "drop_events"
    #: close the session as soon as anything would overflow
    CLOSE = "close"


@dataclass(slots=True, frozen=True)
class SessionOptions:
    """What a transport decides for the sessions it carries."""

    #: authentication methods offered, in the node's order of preference
    authenticators: Sequence[Authenticator] = ()
    #: enforce sequential request IDs (the spec's rule; off by default, as Crossbar); see ServerSessionCore
    sequential_request_ids: bool = False
    #: seconds the router waits for the client while joining: for its HELLO, and for its
    #: AUTHENTICATE after a CHALLENGE (time the router's own authenticator takes is not
    #: counted); then ABORT ``wamp.error.timeout``. 0: no limit (the router's in-memory sessions).
    hello_timeout: float = 10.0
    #: answer a client's GOODBYE with its own reason (Crossbar's habit) instead of the spec's
    #: wamp.close.goodbye_and_out
    echo_goodbye_reason: bool = False


@dataclass(slots=True, frozen=True)
class SessionLimits:
    #: bytes queued for one session (ours plus the kernel's refusal) before the policy applies
    max_outgoing_bytes: int = 4 * 1024 * 1024
    queue_policy: QueuePolicy = QueuePolicy.DROP_EVENTS


class _KeepingLink:
    """Stands in for a session's link while its output is held (:meth:`RouterSession.hold_output`):
    it keeps what is written, in order, and counts it in its backlog, so that the session's queue
    policy applies to it as to what the transport has queued."""

    __slots__ = ("holds", "inner", "kept", "kept_bytes", "kind", "peer", "peer_max_message_size", "serializer")

    def __init__(self, inner: TransportLink) -> None:
        self.inner = inner
        #: how many answers the cluster must agree on hold the output (nested holds)
        self.holds = 1
        self.kept: deque[bytes] = deque()
        self.kept_bytes = 0
        # fixed for a joined session's link
        self.serializer = inner.serializer
        self.peer = inner.peer
        self.kind = inner.kind
        self.peer_max_message_size = inner.peer_max_message_size

    def __getattr__(self, name: str) -> Any:  # what a transport's link has besides (cookie_store)
        return getattr(self.inner, name)

    def write(self, payload: bytes) -> None:
        self.kept.append(payload)
        self.kept_bytes += len(payload)

    def backlog(self) -> int:
        return self.inner.backlog() + self.kept_bytes

    def flush(self) -> None:
        """Write what was kept (it was counted against the cap when it was sent)."""
        kept, self.kept, self.kept_bytes = self.kept, deque(), 0
        for payload in kept:
            self.inner.write(payload)

    def close(self, reason: str) -> None:
        self.flush()  # a GOODBYE or ABORT written while held goes out before the close
        self.inner.close(reason)

    def abort(self, reason: str) -> None:
        self.kept.clear()
        self.inner.abort(reason)


class RouterSession:
    """A session from its HELLO to its close.

    The transport feeds it payloads with :meth:`receive` and reports the connection's loss with
    :meth:`connection_lost`; everything else happens through the router, realm, broker and dealer.
    """

    __slots__ = (
        "_drop_warned_at",
        "_echo_goodbye_reason",
        "_held",
        "_holds",
        "_limits",
        "_we_said_goodbye",
        "authenticators",
        "client_features",
        "core",
        "dropped_events",
        "identity",
        "join",
        "join_timer",
        "link",
        "pending_calls",
        "pending_invocations",
        "preauthorized",
        "realm",
        "request_ids",
        "router",
        "serializer",
        "session_id",
    )

    def __init__(self, router: Router, link: TransportLink, limits: SessionLimits, options: SessionOptions) -> None:
        self.router = router
        self.authenticators = options.authenticators
        self._echo_goodbye_reason = options.echo_goodbye_reason
        self.link = link
        self.serializer = link.serializer
        self.core = ServerSessionCore(link.serializer, options.sequential_request_ids)
        self._limits = limits
        self.session_id = 0
        self.realm: Realm | None = None
        self.identity: Identity | None = None
        #: "role.feature" for every feature the client announced as true (the HELLO itself is not kept)
        self.client_features: frozenset[str] = frozenset()
        #: IDs for the INVOCATIONs this session receives as callee (session scope)
        self.request_ids = SequentialIds()
        #: as caller: CALL request ID -> pending call
        self.pending_calls: dict[int, PendingCall] = {}
        #: as callee: INVOCATION request ID -> pending call
        self.pending_invocations: dict[int, PendingCall] = {}
        self.dropped_events = 0
        self._drop_warned_at = -DROP_WARNING_INTERVAL
        self._we_said_goodbye = False
        #: payloads waiting while an earlier message awaits a dynamic authorizer (None: not held)
        self._held: deque[bytes | bytearray | memoryview] | None = None
        #: how many waits hold this session (a dynamic authorizer's answer, the cluster's registry)
        self._holds = 0
        #: (action, uri, decision) for the message being routed again after an awaited authorization
        self.preauthorized: tuple[Action, str, Decision] | None = None
        #: the join in progress (HELLO answered by CHALLENGE, or decided asynchronously)
        self.join: PendingJoin | None = None
        #: bounds the wait for the client's HELLO and AUTHENTICATE (None: joined, closed, or no limit)
        self.join_timer: JoinTimer | None = None

    # -- receiving ---------------------------------------------------------------------------

    def receive(self, payload: bytes | bytearray | memoryview) -> None:
        """Handle one WAMP payload from the transport."""
        held = self._held
        if held is not None:
            if len(held) >= MAX_HELD_MESSAGES:
                self.abort(errors.AUTHORIZATION_FAILED, "too many requests waiting for authorization")
                return
            held.append(payload)
            return
        message: Message | None = None
        try:
            message = self.core.receive(payload)
            if message is None:
                return
            realm = self.realm
            if realm is not None and self.core.phase is Phase.ESTABLISHED:
                realm.stats.received[message.MESSAGE_TYPE] += 1
                realm.dispatch(self, message)
            else:
                self._handle_lifecycle(message)
        except UnroutableValueError as exc:
            self._refuse(exc.refused, exc.message)
        except ProtocolError as exc:
            self.abort(errors.PROTOCOL_VIOLATION, exc.message)
        except Exception:
            self._internal_error(message)

    def _internal_error(self, message: Message | None) -> None:
        """Handling a message failed inside the router: a bug of ours. The traceback is logged
        (it is needed to fix it; rate-limited, as peers could repeat the trigger at will), this
        session alone is aborted, and the router carries on."""
        what = message.NAME if message is not None else "a payload"
        limited_log.log("internal error", logging.ERROR,
                        "session %s (%s): internal error while handling %s; the session is aborted",
                        self.session_id or "-", self.link.peer, what, exc_info=True)  # fmt: skip
        try:
            self.abort(errors.INTERNAL_ERROR, "the router failed to handle a message of this session")
        except Exception:  # the session's own state may be what broke: at least let go of it
            log.exception("session %s: aborting after an internal error failed too", self.session_id or "-")
            self.link.abort("internal error")
            self._leave("internal error")

    def _refuse(self, message: Message, why: str) -> None:
        """Refuse a request holding values outside the data model (see cloverleaf.wamp.datamodel):
        it is not routed, and whoever waits for an answer gets ``wamp.error.invalid_argument``."""
        realm = self.realm
        assert realm is not None  # the core refuses only in an established session
        realm.stats.received[message.MESSAGE_TYPE] += 1
        log.debug("session %d (%s): %s", self.session_id, self.link.peer, why)
        try:
            if isinstance(message, Call):
                if message.request in self.pending_calls:
                    # a later chunk of a progressive call: the call cannot go on without it
                    raise ProtocolError(why)
                self.error(Call.MESSAGE_TYPE, message.request, errors.INVALID_ARGUMENT, why)
            elif isinstance(message, Publish):
                if message.options.get("acknowledge") is True:
                    self.error(Publish.MESSAGE_TYPE, message.request, errors.INVALID_ARGUMENT, why)
            elif isinstance(message, Yield):
                # the caller gets an ERROR in place of a result it might not be able to read
                refusal = Error(Invocation.MESSAGE_TYPE, message.request, {}, errors.INVALID_ARGUMENT, [why])
                realm.dispatch(self, refusal)
            elif isinstance(message, Error):
                # the callee's error URI goes through, its payload is replaced by the reason
                realm.dispatch(self, Error(Invocation.MESSAGE_TYPE, message.request, {}, message.error, [why]))
        except ProtocolError as exc:
            self.abort(errors.PROTOCOL_VIOLATION, exc.message)

    def hold(self) -> None:
        """Keep later payloads (in order) until :meth:`release`: an answer is awaited (a dynamic
        authorizer's, the cluster's). Holds nest: payloads flow again after the last release."""
        self._holds += 1
        if self._held is None:
            self._held = deque()

    def release(self) -> None:
        """End one hold; after the last, process the payloads kept, in order, until one needs
        holding again."""
        self._holds = max(0, self._holds - 1)
        if self._holds:
            return
        held, self._held = self._held, None
        while held:
            self.receive(held.popleft())
            if self._held is not None:  # held again by that message: the rest waits behind it
                self._held.extend(held)
                return

    def hold_output(self) -> None:
        """Keep what is sent to this session (in order) until :meth:`release_output`.

        A cluster node answers SUBSCRIBE and REGISTER only once every node knows of the new
        subscriber or callee, but its own routing has it already: an EVENT or INVOCATION naming the
        new ID could otherwise reach the client before the SUBSCRIBED or REGISTERED that tells it
        the ID, and Autobahn|Python and AutobahnJS drop the connection on an ID they do not know.
        What is kept counts against ``max_outgoing_bytes`` as the transport's backlog does, under
        the same queue policy. (The link is swapped for one that keeps, so that sending costs
        nothing more when nothing is held.)"""
        if isinstance(self.link, _KeepingLink):
            self.link.holds += 1
        else:
            self.link = _KeepingLink(self.link)

    def release_output(self, answer: Callable[[], None] | None = None) -> None:
        """End one :meth:`hold_output`: ``answer()`` sends the awaited reply (and whatever must
        come before the messages kept) at once; after the last hold, the kept messages follow."""
        keeping = self.link
        if not isinstance(keeping, _KeepingLink):
            if answer is not None:
                answer()
            return
        self.link = keeping.inner
        try:
            if answer is not None:
                answer()
        finally:
            keeping.holds -= 1
            if keeping.holds:
                self.link = keeping
            else:
                keeping.flush()

    def _handle_lifecycle(self, message: Message) -> None:
        if isinstance(message, Goodbye):
            self._on_goodbye(message)
        elif isinstance(message, Abort):
            self._leave(f"client aborted: {message.reason}")
            self.link.close("abort")
        else:
            self.router.handle_join_message(self, message)

    def _on_goodbye(self, message: Goodbye) -> None:
        if self._we_said_goodbye:
            # The reply to our own GOODBYE: the closing handshake is complete.
            self._leave("closed by the router")
            self.link.close("goodbye")
            return
        self.send(Goodbye({}, message.reason if self._echo_goodbye_reason else errors.CLOSE_GOODBYE_AND_OUT))
        self.core.replied_goodbye()
        self._leave(f"client said goodbye ({message.reason})")
        self.link.close("goodbye")

    # -- sending -----------------------------------------------------------------------------

    def send(self, message: Message) -> None:
        """Encode and queue a message for this session alone."""
        self.send_payload(self.serializer.encode(message.marshal()), message.MESSAGE_TYPE, droppable=False)

    def send_outgoing(self, outgoing: OutgoingMessage, droppable: bool) -> None:
        """Queue a message that may be shared with other recipients (encoded once per serializer).

        A payload this session's serializer cannot represent (a CBOR tag for a JSON peer, say)
        skips this recipient only; the others still get it.
        """
        try:
            payload = outgoing.encoded(self.serializer)
        except UnencodableError as exc:
            limited_log.debug("unencodable payload", "session %d: %s not delivered: %s", self.session_id,
                              outgoing.message.NAME, exc)  # fmt: skip
            return
        self.send_payload(payload, outgoing.message.MESSAGE_TYPE, droppable)

    def send_payload(self, payload: bytes, message_type: int, droppable: bool) -> None:
        """Queue an encoded payload (a message of ``message_type``, counted per realm), applying the
        queue policy when the backlog is over its cap.

        ``droppable`` marks EVENTs, which the ``drop_events`` policy may drop; anything else that
        does not fit closes the session. Once the session is closed (condemned as a slow consumer,
        say, while the transport has not reported the loss yet), what does not fit is dropped
        without a word: the close was logged once.
        """
        link = self.link
        limit = self._limits.max_outgoing_bytes
        if link.backlog() + len(payload) > limit:
            if self.core.phase is Phase.CLOSED:
                return
            if droppable and self._limits.queue_policy is QueuePolicy.DROP_EVENTS:
                self.dropped_events += 1
                if self.realm is not None:
                    self.realm.stats.dropped_events += 1
                now = time.monotonic()
                if now - self._drop_warned_at >= DROP_WARNING_INTERVAL:
                    self._drop_warned_at = now
                    log.warning(
                        "session %d (%s) is a slow consumer: dropping events (%d dropped so far)",
                        self.session_id,
                        link.peer,
                        self.dropped_events,
                    )
                return
            log.warning(
                "session %d (%s) closed: outgoing queue over %d bytes (slow consumer)",
                self.session_id,
                link.peer,
                limit,
            )
            # No detaching here: we may be inside the broker's loop over this very subscription.
            # Aborting the link makes the transport report the loss on the next loop pass.
            self.core.sent_abort()
            link.abort("outgoing queue full")
            return
        link.write(payload)
        if self.realm is not None:
            self.realm.stats.sent[message_type] += 1

    def fits(self, payload_size: int) -> bool:
        """Whether the peer accepts a payload of this size (RawSocket peers announce a limit)."""
        peer_max = self.link.peer_max_message_size
        return peer_max == 0 or payload_size <= peer_max

    # -- closing -----------------------------------------------------------------------------

    def abort(self, reason: str, message: str, logged: bool = False) -> None:
        """Send ABORT with ``reason`` and close: used for protocol violations and refused joins.

        One line is logged (rate-limited per reason while the session has not joined: any
        connection can get there), unless the caller ``logged`` the cause itself.
        """
        if not logged:
            if self.realm is None:
                limited_log.info(f"{reason} before joining", "session %s (%s) aborted: %s: %s",
                                 self.session_id or "-", self.link.peer, reason, message)  # fmt: skip
            else:
                log.info("session %d (%s) aborted: %s: %s", self.session_id, self.link.peer, reason, message)
        if self.realm is not None:
            self.realm.stats.aborts += 1
        self.link.write(self.serializer.encode(Abort({"message": message}, reason).marshal()))
        if self.realm is not None:
            self.realm.stats.sent[Abort.MESSAGE_TYPE] += 1
        self.core.sent_abort()
        self._leave(reason)
        self.link.close("abort")

    def say_goodbye(self, reason: str = errors.CLOSE_SYSTEM_SHUTDOWN, message: str | None = None) -> None:
        """Start the closing handshake from the router's side (e.g. on shutdown)."""
        if self.core.phase is not Phase.ESTABLISHED:
            self.link.close(reason)
            return
        self._we_said_goodbye = True
        details = {"message": message} if message else {}
        self.send(Goodbye(details, reason))
        self.core.sent_goodbye()

    def connection_lost(self, why: str = "transport lost") -> None:
        """The transport is gone (``why``: the reason its link was aborted, if it was): forget
        everything this session held."""
        self.core.sent_abort()
        self._leave(why)

    def _leave(self, why: str) -> None:
        realm = self.realm
        if realm is not None:
            self.realm = None
            if self.dropped_events:
                why = f"{why} ({self.dropped_events} events dropped as a slow consumer)"
            realm.detach(self, why)
        self.router.forget(self)

    # -- helpers for broker and dealer ------------------------------------------------------

    def error(self, request_type: int, request: int, error: str, message: str | None = None) -> None:
        """Answer a request with an ERROR carrying an explanatory first argument."""
        if self.realm is not None:
            self.realm.stats.errors_sent += 1
        self.send(Error(request_type, request, {}, error, [message] if message else None))

    def supports(self, role: str, feature: str) -> bool:
        """Whether the client announced ``feature`` for ``role`` in its HELLO."""
        return f"{role}.{feature}" in self.client_features

    @property
    def link_closed(self) -> bool:
        return self.core.phase is Phase.CLOSED

    @property
    def supports_canceling(self) -> bool:
        """Whether the client announced call canceling as callee (the spec spells it both ways)."""
        return "callee.call_canceling" in self.client_features or "callee.call_cancelling" in self.client_features

    @property
    def is_open(self) -> bool:
        return self.core.phase is Phase.ESTABLISHED

    def describe(self) -> dict[str, Any]:
        """The session as the meta API tells it (``wamp.session.get``, ``on_join``): the spec's keys,
        plus ``realm`` and ``authextra`` (the router's, as in WELCOME), which Crossbar gives too."""
        identity = self.identity
        return {
            "session": self.session_id,
            "realm": self.realm.name if self.realm is not None else None,
            "authid": identity.authid if identity else None,
            "authrole": identity.authrole if identity else None,
            "authmethod": identity.authmethod if identity else None,
            "authprovider": identity.authprovider if identity else None,
            "authextra": identity.authextra if identity else {},
            "transport": {"type": self.link.kind, "peer": self.link.peer, "serializer": self.serializer.NAME},
        }
