"""Routing state: who subscribed to which topic and who registered which procedure.

The broker and dealer reach this state only through :class:`SubscriptionStore` and
:class:`RegistrationStore`, so a cluster back end (NATS) can stand behind the same interface. The
in-process stores here keep everything in dictionaries; a subscriber or callee is any object with a
``session_id`` (a local session or, in a cluster, a handle for a session on another node).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from ..wamp.ids import random_id


class Member(Protocol):
    """A subscriber or callee as the routing state sees it."""

    @property
    def session_id(self) -> int: ...


M = TypeVar("M", bound=Member)


@dataclass(slots=True, eq=False)
class Subscription(Generic[M]):
    id: int
    topic: str
    match: str
    #: subscribers by session ID, in subscription order
    subscribers: dict[int, M] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class Registration(Generic[M]):
    id: int
    procedure: str
    match: str
    invoke: str
    #: callees by session ID, in registration order
    callees: dict[int, M] = field(default_factory=dict)


class SubscriptionStore(Protocol[M]):
    def subscribe(self, topic: str, match: str, member: M) -> tuple[Subscription[M], bool]:
        """Add ``member`` to the subscription for (topic, match); return it and whether it is new."""

    def unsubscribe(self, subscription_id: int, member: M) -> tuple[Subscription[M], bool] | None:
        """Remove ``member``; return the subscription and whether it was deleted, or None if
        ``member`` was not subscribed to it."""

    def matching(self, topic: str) -> Iterable[Subscription[M]]:
        """Subscriptions that receive an event published to ``topic``."""

    def remove_member(self, member: M) -> list[tuple[Subscription[M], bool]]:
        """Drop ``member`` from everything; return each subscription touched and whether it was deleted."""


class RegistrationStore(Protocol[M]):
    def register(self, procedure: str, match: str, invoke: str, member: M) -> Registration[M]:
        """Register ``member``; raise :class:`AlreadyRegistered` if (procedure, match) is taken."""

    def unregister(self, registration_id: int, member: M) -> tuple[Registration[M], bool] | None: ...

    def lookup(self, procedure: str) -> Registration[M] | None:
        """The registration a CALL to ``procedure`` is routed to, if any."""

    def remove_member(self, member: M) -> list[tuple[Registration[M], bool]]: ...


class AlreadyRegistered(Exception):
    """The procedure already has a registration whose policy does not admit another callee."""


class LocalSubscriptionStore(Generic[M]):
    """In-process subscription state (exact matching)."""

    __slots__ = ("_by_id", "_exact", "_member_subscriptions", "_new_id")

    def __init__(self, new_id: Callable[[], int] = random_id) -> None:
        self._exact: dict[str, Subscription[M]] = {}
        self._by_id: dict[int, Subscription[M]] = {}
        self._member_subscriptions: dict[int, set[int]] = {}
        self._new_id = new_id

    def subscribe(self, topic: str, match: str, member: M) -> tuple[Subscription[M], bool]:
        subscription = self._exact.get(topic)
        created = subscription is None
        if subscription is None:
            subscription = Subscription(self._unused_id(), topic, match)
            self._exact[topic] = subscription
            self._by_id[subscription.id] = subscription
        subscription.subscribers[member.session_id] = member
        self._member_subscriptions.setdefault(member.session_id, set()).add(subscription.id)
        return subscription, created

    def unsubscribe(self, subscription_id: int, member: M) -> tuple[Subscription[M], bool] | None:
        subscription = self._by_id.get(subscription_id)
        if subscription is None or subscription.subscribers.pop(member.session_id, None) is None:
            return None
        mine = self._member_subscriptions.get(member.session_id)
        if mine is not None:
            mine.discard(subscription_id)
        return subscription, self._delete_if_empty(subscription)

    def matching(self, topic: str) -> Iterable[Subscription[M]]:
        subscription = self._exact.get(topic)
        return () if subscription is None else (subscription,)

    def get(self, subscription_id: int) -> Subscription[M] | None:
        return self._by_id.get(subscription_id)

    def remove_member(self, member: M) -> list[tuple[Subscription[M], bool]]:
        touched = []
        for subscription_id in self._member_subscriptions.pop(member.session_id, ()):
            subscription = self._by_id.get(subscription_id)
            if subscription is not None and subscription.subscribers.pop(member.session_id, None) is not None:
                touched.append((subscription, self._delete_if_empty(subscription)))
        return touched

    def _delete_if_empty(self, subscription: Subscription[M]) -> bool:
        if subscription.subscribers:
            return False
        del self._by_id[subscription.id]
        del self._exact[subscription.topic]
        return True

    def _unused_id(self) -> int:
        while (new := self._new_id()) in self._by_id:
            pass
        return new

    def __len__(self) -> int:
        return len(self._by_id)


class LocalRegistrationStore(Generic[M]):
    """In-process registration state (exact matching, ``single`` invocation policy)."""

    __slots__ = ("_by_id", "_exact", "_member_registrations", "_new_id")

    def __init__(self, new_id: Callable[[], int] = random_id) -> None:
        self._exact: dict[str, Registration[M]] = {}
        self._by_id: dict[int, Registration[M]] = {}
        self._member_registrations: dict[int, set[int]] = {}
        self._new_id = new_id

    def register(self, procedure: str, match: str, invoke: str, member: M) -> Registration[M]:
        if procedure in self._exact:
            raise AlreadyRegistered(procedure)
        while (new := self._new_id()) in self._by_id:
            pass
        registration = Registration(new, procedure, match, invoke, {member.session_id: member})
        self._exact[procedure] = registration
        self._by_id[registration.id] = registration
        self._member_registrations.setdefault(member.session_id, set()).add(registration.id)
        return registration

    def unregister(self, registration_id: int, member: M) -> tuple[Registration[M], bool] | None:
        registration = self._by_id.get(registration_id)
        if registration is None or registration.callees.pop(member.session_id, None) is None:
            return None
        mine = self._member_registrations.get(member.session_id)
        if mine is not None:
            mine.discard(registration_id)
        return registration, self._delete_if_empty(registration)

    def lookup(self, procedure: str) -> Registration[M] | None:
        return self._exact.get(procedure)

    def get(self, registration_id: int) -> Registration[M] | None:
        return self._by_id.get(registration_id)

    def remove_member(self, member: M) -> list[tuple[Registration[M], bool]]:
        touched = []
        for registration_id in self._member_registrations.pop(member.session_id, ()):
            registration = self._by_id.get(registration_id)
            if registration is not None and registration.callees.pop(member.session_id, None) is not None:
                touched.append((registration, self._delete_if_empty(registration)))
        return touched

    def _delete_if_empty(self, registration: Registration[M]) -> bool:
        if registration.callees:
            return False
        del self._by_id[registration.id]
        del self._exact[registration.procedure]
        return True

    def __len__(self) -> int:
        return len(self._by_id)
