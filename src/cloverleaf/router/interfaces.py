"""The seams between the router and what plugs into it: transports and cluster back ends."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..wamp.serializers import Serializer

if TYPE_CHECKING:
    from .broker import Audience, RetainedEvent
    from .registry import Registration, Subscription
    from .session import RouterSession


class TransportLink(Protocol):
    """What the router needs of one client connection; implemented by each transport adapter.

    The router hands it ready WAMP payloads (already serialized with ``serializer``); the link
    frames them and writes them, joining everything queued in one event-loop pass into one write.
    """

    serializer: Serializer
    #: a description of the remote end for logs, e.g. "tcp:127.0.0.1:50312"
    peer: str
    #: the transport kind for session details, e.g. "websocket" or "rawsocket"
    kind: str
    #: the largest payload the peer accepts (0 when it did not say)
    peer_max_message_size: int

    def write(self, payload: bytes) -> None:
        """Queue one payload for sending; never blocks."""

    def backlog(self) -> int:
        """Bytes queued for this peer and not yet accepted by the kernel."""

    def close(self, reason: str) -> None:
        """Close the connection after writing what is already queued."""

    def abort(self, reason: str) -> None:
        """Drop the connection at once, discarding anything queued."""


class ClusterRealm(Protocol):
    """What a realm needs of a cluster back end (``Realm.cluster``; None on a single node).

    The broker and dealer call it after they have done their local work; it must never block
    them: whatever goes to other nodes is queued and sent by the back end.
    """

    def forward_publication(
        self,
        topic: str,
        publication: int,
        details: dict[str, Any],
        args: list[Any] | None,
        kwargs: dict[str, Any] | None,
        audience: Audience,
    ) -> None:
        """Send a publication, once, to every other node with a subscription matching ``topic``
        (the local subscribers already have it)."""

    def interest_changed(self, subscription: Subscription[Any], then: Callable[[], None] | None = None) -> None:
        """The local subscribers of ``subscription`` changed (none left: it was deleted here).
        ``then``, when given, is called once every live node knows (the subscribing session's
        later messages are held until then)."""

    def retained_changed(self, topic: str, events: list[RetainedEvent], then: Callable[[], None] | None = None) -> None:
        """The retained events of ``topic`` are now ``events`` (this node published one): share
        them with every node; ``then``, when given, is called once all have them."""

    def subscription_elsewhere(self, topic: str, match: str) -> bool:
        """Whether another node has subscribers to (topic, match)."""

    def remote_subscriptions(self) -> list[Subscription[Any]]:
        """The subscriptions other nodes have (their IDs are the cluster-wide ones)."""

    def remote_subscription(self, subscription_id: int) -> Subscription[Any] | None: ...

    def remote_lookup(self, topic: str, match: str) -> Subscription[Any] | None: ...

    def remote_matching(self, topic: str) -> tuple[Subscription[Any], ...]: ...

    def remote_subscribers(self, subscription_id: int) -> list[int]:
        """Session IDs subscribed on other nodes to this subscription."""

    def register(
        self, session: RouterSession, request: int, procedure: str, match: str, invoke: str, options: dict[str, Any]
    ) -> None:
        """Register ``session`` as a callee of (procedure, match) cluster-wide. The REGISTER has been
        validated and authorized; the back end answers it later through ``Dealer.registered`` or
        ``Dealer.refused``, holding the session's later messages until then."""

    def callees_changed(self, registration: Registration[Any], then: Callable[[], None] | None = None) -> None:
        """A local callee left ``registration`` (unregistered, revoked or gone); ``then``, when
        given, is called once every live node has stopped routing to it."""
