"""The broker: SUBSCRIBE / UNSUBSCRIBE / PUBLISH, delivering each EVENT encoded once per serializer.

Exact, prefix and wildcard subscriptions; black/white-listing by session ID, authid and authrole;
publisher exclusion and disclosure; event retention (the last retained event per topic).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..wamp import errors
from ..wamp.errors import ProtocolError
from ..wamp.ids import fast_random_id
from ..wamp.messages import Event, Publish, Published, Subscribe, Subscribed, Unsubscribe, Unsubscribed, integral_id
from .auth import DENY, Action, Identity
from .history import EventStore, HistoryRecorder
from .outgoing import OutgoingMessage
from .patterns import EXACT, MATCH_POLICIES, PREFIX, passthru_keys, wildcard_matches
from .ratelimit import RateLimitedLog
from .registry import LocalSubscriptionStore, Subscription, SubscriptionStore

if TYPE_CHECKING:
    from .realm import Realm
    from .session import RouterSession

#: Features announced in WELCOME.Details.roles.broker (only what is implemented).
BROKER_FEATURES: dict[str, Any] = {
    "pattern_based_subscription": True,
    "publisher_exclusion": True,
    "publisher_identification": True,
    "subscriber_blackwhite_listing": True,
    "event_retention": True,
    "subscription_meta_api": True,
    "event_history": True,
    "payload_passthru_mode": True,
    "subscription_revocation": True,
    "publication_trustlevels": True,
    "session_meta_api": True,
}


class Subscriber(Protocol):
    """A subscription member: a session, or a history recorder."""

    @property
    def session_id(self) -> int: ...

    @property
    def identity(self) -> Identity | None: ...

    def send_outgoing(self, outgoing: OutgoingMessage, droppable: bool) -> None: ...


log = logging.getLogger("cloverleaf.broker")
limited_log = RateLimitedLog(log)

_ID_LISTS = ("exclude", "eligible")
#: retained events kept per topic: the one for everybody plus restricted ones published after it
_MAX_RETAINED_PER_TOPIC = 16
#: topics with retained events kept per realm by default; past it the topic retained longest ago
#: is forgotten (the realm config's max_retained_topics)
MAX_RETAINED_TOPICS = 10_000
_STRING_LISTS = ("exclude_authid", "exclude_authrole", "eligible_authid", "eligible_authrole")
_FILTER_KEYS = frozenset(_ID_LISTS + _STRING_LISTS)


@dataclass(slots=True, frozen=True)
class Audience:
    """Who may receive a publication: the publisher's exclusion and black/white lists."""

    publisher: int
    exclude_me: bool
    exclude: frozenset[int] | None = None
    eligible: frozenset[int] | None = None
    exclude_authid: frozenset[str] | None = None
    exclude_authrole: frozenset[str] | None = None
    eligible_authid: frozenset[str] | None = None
    eligible_authrole: frozenset[str] | None = None

    @property
    def unrestricted(self) -> bool:
        """No black or white list: only publisher exclusion applies."""
        return (
            self.exclude is None and self.eligible is None and self.exclude_authid is None
            and self.exclude_authrole is None and self.eligible_authid is None and self.eligible_authrole is None
        )  # fmt: skip

    def admits(self, subscriber: Subscriber) -> bool:
        session_id = subscriber.session_id
        if session_id == self.publisher and self.exclude_me:
            return False
        if self.exclude is not None and session_id in self.exclude:
            return False
        if self.eligible is not None and session_id not in self.eligible:
            return False
        identity = subscriber.identity
        authid = identity.authid if identity else None
        authrole = identity.authrole if identity else None
        if self.exclude_authid is not None and authid in self.exclude_authid:
            return False
        if self.exclude_authrole is not None and authrole in self.exclude_authrole:
            return False
        if self.eligible_authid is not None and authid not in self.eligible_authid:
            return False
        return self.eligible_authrole is None or authrole in self.eligible_authrole


def _audience(publisher: int, options: dict[str, Any]) -> Audience:
    """Read and type-check the publish options that restrict delivery; raise ValueError if malformed."""
    exclude_me = options.get("exclude_me", True)
    if type(exclude_me) is not bool:
        raise ValueError("option 'exclude_me' must be a boolean")
    if _FILTER_KEYS.isdisjoint(options):  # the common case: no black or white list
        return Audience(publisher, exclude_me)
    lists: dict[str, frozenset[Any]] = {}
    for key in _ID_LISTS:
        value = options.get(key)
        if value is not None:
            if type(value) is list:
                value = [integral_id(item) for item in value]
            if type(value) is not list or any(type(item) is not int for item in value):
                raise ValueError(f"option {key!r} must be a list of session IDs")
            lists[key] = frozenset(value)
    for key in _STRING_LISTS:
        value = options.get(key)
        if value is not None:
            if type(value) is not list or any(type(item) is not str for item in value):
                raise ValueError(f"option {key!r} must be a list of strings")
            lists[key] = frozenset(value)
    return Audience(publisher, exclude_me, **lists)


@dataclass(slots=True)
class RetainedEvent:
    publication: int
    details: dict[str, Any]
    args: list[Any] | None
    kwargs: dict[str, Any] | None
    audience: Audience


class Broker:
    __slots__ = ("_awaiting_cluster", "history", "max_retained_topics", "realm", "retained", "subscriptions")

    def __init__(self, realm: Realm, subscriptions: SubscriptionStore[Subscriber] | None = None) -> None:
        self.realm = realm
        self.subscriptions: SubscriptionStore[Subscriber] = subscriptions or LocalSubscriptionStore()
        #: per topic, oldest first: the last retained event for everybody, then later retained events
        #: with a restricted audience (event_retention: each subscriber gets the newest it may receive)
        self.retained: dict[str, list[RetainedEvent]] = {}
        #: bounds ``retained``: a publisher allowed to retain could otherwise grow it topic by topic
        self.max_retained_topics = MAX_RETAINED_TOPICS
        #: subscription ID -> the recorder keeping its event history
        self.history: dict[int, HistoryRecorder] = {}
        #: in a cluster, subscription ID -> how many of its subscribers on this node await their
        #: SUBSCRIBED (every node must learn of this node's interest first)
        self._awaiting_cluster: dict[int, int] = {}

    def enable_history(self, uri: str, match: str, limit: int, store: EventStore) -> int:
        """Keep the last ``limit`` events published to (uri, match); return the subscription ID."""
        recorder = HistoryRecorder(store, uri, match, limit)
        subscription, _created = self.subscriptions.subscribe(uri, match, recorder)
        self.history[subscription.id] = recorder
        return subscription.id

    def subscribe(self, session: RouterSession, message: Subscribe) -> None:
        realm = self.realm
        options = message.options
        match = options.get("match", EXACT)
        if match not in MATCH_POLICIES:
            session.error(Subscribe.MESSAGE_TYPE, message.request, errors.INVALID_ARGUMENT,
                          f"match policy {match!r:.40} is not one of {', '.join(MATCH_POLICIES)}")  # fmt: skip
            return
        if not realm.valid_uri(message.topic, pattern=match):
            session.error(Subscribe.MESSAGE_TYPE, message.request, errors.INVALID_URI,
                          f"invalid topic URI {message.topic!r:.200}")  # fmt: skip
            return
        if not realm.authorize(session, Action.SUBSCRIBE, message.topic).allowed:
            session.error(Subscribe.MESSAGE_TYPE, message.request, errors.NOT_AUTHORIZED,
                          f"session is not authorized to subscribe to topic '{message.topic}'")  # fmt: skip
            return
        already = False
        existing = self.subscriptions.lookup(message.topic, match)
        if existing is not None:
            already = session.session_id in existing.subscribers
        subscription, created = self.subscriptions.subscribe(message.topic, match, session)
        if created and realm.cluster is not None and realm.cluster.subscription_elsewhere(message.topic, match):
            created = False  # new on this node only: the subscription exists on another node
        get_retained = options.get("get_retained") is True
        if not already and realm.cluster is not None and (
                len(subscription.subscribers) == 1 or subscription.id in self._awaiting_cluster):  # fmt: skip
            # this node's first subscriber (or one beside it while it waits): SUBSCRIBED once every
            # node knows this node's interest, so that a publication on any node after it reaches
            # the subscriber (docs/cluster.md). Events routed to it meanwhile wait behind SUBSCRIBED.
            session.hold()
            session.hold_output()
            awaiting = self._awaiting_cluster
            awaiting[subscription.id] = awaiting.get(subscription.id, 0) + 1

            def known_everywhere() -> None:
                left = awaiting.pop(subscription.id, 1) - 1
                if left:
                    awaiting[subscription.id] = left
                session.release_output(
                    lambda: self._subscribed(session, message.request, subscription, created, get_retained))
                session.release()

            realm.cluster.interest_changed(subscription, known_everywhere)
            return
        self._subscribed(session, message.request, subscription, created if not already else None, get_retained)
        if not already and realm.cluster is not None:
            realm.cluster.interest_changed(subscription)

    def _subscribed(self, session: RouterSession, request: int, subscription: Subscription[Subscriber],
                    created: bool | None, get_retained: bool) -> None:  # fmt: skip
        """Answer a SUBSCRIBE (``created``: None when the session was subscribed already)."""
        if not session.is_open:
            return
        session.send(Subscribed(request, subscription.id))
        if created is not None:
            self.realm.meta.subscribed(session, subscription, created)
        if get_retained:
            self._send_retained(session, subscription)

    def _send_retained(self, session: RouterSession, subscription: Subscription[Subscriber]) -> None:
        for topic, kept in list(self.retained.items()):
            if not _matches(subscription, topic):
                continue
            retained = next((event for event in reversed(kept) if event.audience.admits(session)), None)
            if retained is None:
                continue
            details = dict(retained.details)
            details["retained"] = True
            if subscription.match != EXACT:
                details["topic"] = topic
            session.send_outgoing(
                OutgoingMessage(Event(subscription.id, retained.publication, details, retained.args, retained.kwargs)),
                droppable=True,
            )

    def unsubscribe(self, session: RouterSession, message: Unsubscribe) -> None:
        removed = self.subscriptions.unsubscribe(message.subscription, session)
        if removed is None:
            session.error(Unsubscribe.MESSAGE_TYPE, message.request, errors.NO_SUCH_SUBSCRIPTION,
                          f"session has no subscription {message.subscription}")  # fmt: skip
            return
        subscription, deleted_here = removed
        cluster = self.realm.cluster
        if cluster is not None and deleted_here:
            # this node's last subscriber: UNSUBSCRIBED once every node has stopped sending here
            session.hold()
            deleted = self._deleted_everywhere(subscription, deleted_here)

            def withdrawn_everywhere() -> None:
                if session.is_open:
                    session.send(Unsubscribed(message.request))
                    self.realm.meta.unsubscribed(session, subscription, deleted)
                session.release()

            cluster.interest_changed(subscription, withdrawn_everywhere)
            return
        session.send(Unsubscribed(message.request))
        self.realm.meta.unsubscribed(session, subscription, self._deleted_everywhere(subscription, deleted_here))
        if cluster is not None:
            cluster.interest_changed(subscription)

    def publish(self, session: RouterSession, message: Publish) -> None:
        realm = self.realm
        topic = message.topic
        options = message.options
        acknowledge = options.get("acknowledge", False)
        if not realm.valid_uri(topic):
            if acknowledge is True:
                session.error(Publish.MESSAGE_TYPE, message.request, errors.INVALID_URI,
                              f"invalid topic URI {topic!r:.200}")  # fmt: skip
            return
        decision = DENY if topic.startswith("wamp.") else realm.authorize(session, Action.PUBLISH, topic)
        if not decision.allowed:
            if acknowledge is True:
                session.error(Publish.MESSAGE_TYPE, message.request, errors.NOT_AUTHORIZED,
                              f"session is not authorized to publish to topic '{topic}'")  # fmt: skip
            return
        try:
            if type(acknowledge) is not bool:
                raise ValueError("option 'acknowledge' must be a boolean")
            audience = _audience(session.session_id, options)
        except ValueError as exc:
            session.error(Publish.MESSAGE_TYPE, message.request, errors.INVALID_ARGUMENT, str(exc))
            return
        publication = fast_random_id()
        details: dict[str, Any] = passthru_keys(options)
        if "ppt_scheme" in details and not session.supports("publisher", "payload_passthru_mode"):
            raise ProtocolError("PUBLISH uses payload passthru, which the publisher did not announce")
        policy = realm.policy(session)
        disclose = options.get("disclose_me") is True or policy.disclose_publisher or decision.disclose
        if disclose and session.identity is not None:
            details["publisher"] = session.session_id
            details["publisher_authid"] = session.identity.authid
            details["publisher_authrole"] = session.identity.authrole
        if policy.trustlevel is not None:
            details["trustlevel"] = policy.trustlevel
        self.deliver(topic, publication, details, message.args, message.kwargs, audience)
        if realm.cluster is not None:
            realm.cluster.forward_publication(topic, publication, details, message.args, message.kwargs, audience)
        if options.get("retain") is True:
            self._retain(topic, RetainedEvent(publication, details, message.args, message.kwargs, audience))
            if realm.cluster is not None:
                # every node keeps the retained events; an acknowledged PUBLISH is answered once all have it
                if acknowledge:
                    session.hold()

                    def retained_everywhere() -> None:
                        if session.is_open:
                            session.send(Published(message.request, publication))
                        session.release()

                    realm.cluster.retained_changed(topic, self.retained.get(topic, []), retained_everywhere)
                    return
                realm.cluster.retained_changed(topic, self.retained.get(topic, []))
        if acknowledge:
            session.send(Published(message.request, publication))

    def set_retained(self, topic: str, events: list[RetainedEvent]) -> None:
        """Replace the retained events of ``topic`` (none: forget them), as a cluster's shared
        state says, within ``max_retained_topics``."""
        self.retained.pop(topic, None)
        if not events:
            return
        while len(self.retained) >= self.max_retained_topics and self.retained:
            del self.retained[next(iter(self.retained))]
        if self.max_retained_topics > 0:
            self.retained[topic] = events[-_MAX_RETAINED_PER_TOPIC:]

    def _retain(self, topic: str, event: RetainedEvent) -> None:
        # the dict is kept in the order topics were last retained on, so the first is the stalest
        kept = self.retained.pop(topic, None)
        if kept is None and len(self.retained) >= self.max_retained_topics:
            stalest = next(iter(self.retained), None)
            if stalest is None:  # max_retained_topics is 0: nothing is retained
                return
            del self.retained[stalest]
            limited_log.info("retained topics full",
                             "realm %s: %d topics with retained events: forgot the one retained longest ago (%s)",
                             self.realm.name, self.max_retained_topics, stalest)  # fmt: skip
        if event.audience.unrestricted or kept is None:
            self.retained[topic] = [event]  # an event for everybody replaces everything older
            return
        self.retained[topic] = kept
        kept.append(event)
        if len(kept) > _MAX_RETAINED_PER_TOPIC:  # bounded: drop the oldest restricted one
            del kept[1 if kept[0].audience.unrestricted else 0]

    def deliver(
        self,
        topic: str,
        publication: int,
        details: dict[str, Any],
        args: list[Any] | None,
        kwargs: dict[str, Any] | None,
        audience: Audience | None = None,
    ) -> None:
        """Send one publication to every eligible subscriber of every matching subscription."""
        unrestricted = audience is None or audience.unrestricted
        publisher = audience.publisher if audience is not None and audience.exclude_me else 0
        for subscription in self.subscriptions.matching(topic):
            event_details = details
            if subscription.match != EXACT:
                event_details = dict(details)
                event_details["topic"] = topic
            outgoing = OutgoingMessage(Event(subscription.id, publication, event_details, args, kwargs))
            delivered = 0
            if unrestricted:
                for subscriber_id, subscriber in subscription.subscribers.items():
                    if subscriber_id != publisher:
                        subscriber.send_outgoing(outgoing, droppable=True)
                        delivered += 1
            else:
                assert audience is not None
                for subscriber in subscription.subscribers.values():
                    if audience.admits(subscriber):
                        subscriber.send_outgoing(outgoing, droppable=True)
                        delivered += 1
            self.realm.stats.events_delivered += delivered

    def revoke(self, subscriber: Subscriber, subscription: Subscription[Subscriber], reason: str | None) -> None:
        """Remove a subscriber from a subscription on the router's initiative (subscription_revocation)."""
        removed = self.subscriptions.unsubscribe(subscription.id, subscriber)
        session = self.realm.sessions.get(subscriber.session_id)
        if removed is None or session is None:
            return
        if session.supports("subscriber", "subscription_revocation"):
            details: dict[str, Any] = {"subscription": subscription.id}
            if reason:
                details["reason"] = reason
            session.send(Unsubscribed(0, details))
        self.realm.meta.unsubscribed(session, removed[0], self._deleted_everywhere(*removed))
        if self.realm.cluster is not None:
            self.realm.cluster.interest_changed(removed[0])

    def _deleted_everywhere(self, subscription: Subscription[Subscriber], deleted: bool) -> bool:
        """Whether a subscription deleted on this node is gone from the whole cluster too."""
        cluster = self.realm.cluster
        return deleted and (cluster is None or not cluster.subscription_elsewhere(subscription.topic,
                                                                                   subscription.match))

    def detach(self, session: RouterSession) -> None:
        cluster = self.realm.cluster
        for subscription, deleted in self.subscriptions.remove_member(session):
            self.realm.meta.unsubscribed(session, subscription, self._deleted_everywhere(subscription, deleted))
            if cluster is not None:
                cluster.interest_changed(subscription)


def _matches(subscription: Subscription[Any], topic: str) -> bool:
    if subscription.match == EXACT:
        return subscription.topic == topic
    if subscription.match == PREFIX:
        return topic.startswith(subscription.topic)
    return wildcard_matches(subscription.topic, topic)
