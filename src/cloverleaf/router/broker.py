"""The broker: SUBSCRIBE / UNSUBSCRIBE / PUBLISH, delivering each EVENT encoded once per serializer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..wamp import errors
from ..wamp.ids import fast_random_id
from ..wamp.messages import Event, Publish, Published, Subscribe, Subscribed, Unsubscribe, Unsubscribed
from .auth import Action
from .outgoing import OutgoingMessage
from .registry import LocalSubscriptionStore, SubscriptionStore

if TYPE_CHECKING:
    from .realm import Realm
    from .session import RouterSession

#: Features announced in WELCOME.Details.roles.broker (only what is implemented).
BROKER_FEATURES: dict[str, Any] = {
    "publisher_exclusion": True,
    "publisher_identification": True,
    "subscriber_blackwhite_listing": True,
}


def _id_list(options: dict[str, Any], key: str) -> frozenset[int] | None:
    value = options.get(key)
    if value is None:
        return None
    if type(value) is not list or any(type(item) is not int for item in value):
        raise ValueError(f"option {key!r} must be a list of session IDs")
    return frozenset(value)


class Broker:
    __slots__ = ("realm", "subscriptions")

    def __init__(self, realm: Realm, subscriptions: SubscriptionStore[RouterSession] | None = None) -> None:
        self.realm = realm
        self.subscriptions: SubscriptionStore[RouterSession] = subscriptions or LocalSubscriptionStore()

    def subscribe(self, session: RouterSession, message: Subscribe) -> None:
        realm = self.realm
        match = message.options.get("match", "exact")
        if match != "exact":
            session.error(
                Subscribe.MESSAGE_TYPE,
                message.request,
                errors.INVALID_ARGUMENT,
                f"match policy {match!r:.40} is not supported (supported: 'exact')",
            )
            return
        if not realm.valid_uri(message.topic):
            session.error(
                Subscribe.MESSAGE_TYPE, message.request, errors.INVALID_URI, f"invalid topic URI {message.topic!r:.200}"
            )
            return
        if not realm.authorize(session, Action.SUBSCRIBE, message.topic):
            session.error(
                Subscribe.MESSAGE_TYPE,
                message.request,
                errors.NOT_AUTHORIZED,
                f"session is not authorized to subscribe to topic '{message.topic}'",
            )
            return
        subscription, _created = self.subscriptions.subscribe(message.topic, match, session)
        session.send(Subscribed(message.request, subscription.id))

    def unsubscribe(self, session: RouterSession, message: Unsubscribe) -> None:
        if self.subscriptions.unsubscribe(message.subscription, session) is None:
            session.error(
                Unsubscribe.MESSAGE_TYPE,
                message.request,
                errors.NO_SUCH_SUBSCRIPTION,
                f"session has no subscription {message.subscription}",
            )
            return
        session.send(Unsubscribed(message.request))

    def publish(self, session: RouterSession, message: Publish) -> None:
        realm = self.realm
        topic = message.topic
        options = message.options
        acknowledge = options.get("acknowledge", False)
        if not realm.valid_uri(topic):
            if acknowledge is True:
                session.error(
                    Publish.MESSAGE_TYPE, message.request, errors.INVALID_URI, f"invalid topic URI {topic!r:.200}"
                )
            return
        if topic.startswith("wamp.") or not realm.authorize(session, Action.PUBLISH, topic):
            if acknowledge is True:
                session.error(
                    Publish.MESSAGE_TYPE,
                    message.request,
                    errors.NOT_AUTHORIZED,
                    f"session is not authorized to publish to topic '{topic}'",
                )
            return
        exclude_me = options.get("exclude_me", True)
        try:
            if type(acknowledge) is not bool or type(exclude_me) is not bool:
                raise ValueError("options 'acknowledge' and 'exclude_me' must be booleans")
            exclude = _id_list(options, "exclude")
            eligible = _id_list(options, "eligible")
        except ValueError as exc:
            session.error(Publish.MESSAGE_TYPE, message.request, errors.INVALID_ARGUMENT, str(exc))
            return

        publication = fast_random_id()
        details: dict[str, Any] = {}
        if options.get("disclose_me") is True and session.identity is not None:
            details["publisher"] = session.session_id
            details["publisher_authid"] = session.identity.authid
            details["publisher_authrole"] = session.identity.authrole
        publisher_id = session.session_id
        for subscription in self.subscriptions.matching(topic):
            outgoing = OutgoingMessage(Event(subscription.id, publication, details, message.args, message.kwargs))
            for subscriber_id, subscriber in subscription.subscribers.items():
                if subscriber_id == publisher_id and exclude_me:
                    continue
                if exclude is not None and subscriber_id in exclude:
                    continue
                if eligible is not None and subscriber_id not in eligible:
                    continue
                subscriber.send_outgoing(outgoing, droppable=True)
        if acknowledge:
            session.send(Published(message.request, publication))

    def detach(self, session: RouterSession) -> None:
        self.subscriptions.remove_member(session)
